"""Benchmark: what multi-worker training costs on one machine: the lockstep agreement, and throughput.

Workload: bench_estimator.py's MLP 28->256->256->2 on ``make_classification(200_000, n_features=28)``,
global batch 256, ``steps_per_execution=32``; each timed fit is ``fit(x, y, steps=STEPS)`` continuing
the same model (its input pipeline reused, its final checkpoint included).

Variants, each a launch of `estimators.launcher.launch_local_workers` (fresh processes, TF_CONFIG on
127.0.0.1), alternated ABBA over `--launches`:
  one_worker    1 process (a one-worker cluster: no strategy, the loop of one machine).
  two_workers   2 processes under MultiWorkerMirroredStrategy, in lockstep.
Measured in each process after an untimed warm-up fit: examples/s of each timed fit (global rows
trained / wall s), and in two_workers the latency of one agreement (`Runtime.gather_fn()`, the
all-gather the loop runs after every compiled call) over 300 calls. JSON:
``benchmarks/results/multiworker.json``.

Usage::

    .venv/bin/python benchmarks/bench_multiworker.py            # 4 launches, 5 fits each (~3 min, 2 cores)
    .venv/bin/python benchmarks/bench_multiworker.py --quick    # 2 launches, 2 small fits each
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

BATCH = 256


def worker(out: str, fits: int, steps: int, rows: int) -> None:
    """One worker process: join the cluster first (before any TF op), then measure."""
    import estimators

    estimators.cluster_strategy()  # None in a one-worker cluster
    import numpy as np
    from bench_estimator import model_fn
    from sklearn.datasets import make_classification

    task = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    x, y = make_classification(rows, n_features=28, n_informative=20, random_state=0)
    x, y = x.astype(np.float32), y.astype(np.int32)
    config = estimators.RunConfig(tf_random_seed=0, log_step_count_steps=0, verbose=0, save_summary_steps=0)
    model_dir = tempfile.mkdtemp(prefix="bench_multiworker_")  # the chief's; a non-chief writes none
    est = estimators.Estimator(model_fn, model_dir=model_dir, config=config)
    est.fit(x, y, steps=steps, batch_size=BATCH)  # warm-up: tracing, the first checkpoint
    rates = []
    for _ in range(fits):
        started = time.perf_counter()
        est.fit(x, y, steps=steps, batch_size=BATCH)
        rates.append(steps * BATCH / (time.perf_counter() - started))
    record = {"examples_per_s": rates}
    runtime = est._state.runtime
    if runtime.distributed:
        gather, values, calls = runtime.gather_fn(), np.zeros(6, np.int64), []
        for _ in range(330):
            started = time.perf_counter()
            gather(values).numpy()
            calls.append(time.perf_counter() - started)
        record["agreement_ms"] = [c * 1e3 for c in calls[30:]]
    with open(os.path.join(out, f"worker-{task}.json"), "w") as f:
        json.dump(record, f)


def launch(workers: int, fits: int, steps: int, rows: int) -> dict:
    from estimators.launcher import launch_local_workers

    with tempfile.TemporaryDirectory(prefix="bench_multiworker_out_") as out:
        command = [sys.executable, __file__, "--worker", out, str(fits), str(steps), str(rows)]
        launch_local_workers(command, workers=workers, startup_timeout=120, timeout=900, stream=io.StringIO())
        chief = json.loads(Path(out, "worker-0.json").read_text())
    return chief


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--launches", type=int, default=4)
    parser.add_argument("--worker", nargs=4, metavar=("OUT", "FITS", "STEPS", "ROWS"))
    args = parser.parse_args()
    if args.worker:
        out, fits, steps, rows = args.worker
        worker(out, int(fits), int(steps), int(rows))
        return
    launches, fits, steps, rows = (2, 2, 64, 20_000) if args.quick else (args.launches, 5, 384, 200_000)
    results: dict[str, list] = {"one_worker": [], "two_workers": []}
    agreement: list[float] = []
    for i in range(launches):
        order = ("one_worker", "two_workers") if i % 2 == 0 else ("two_workers", "one_worker")
        for variant in order:
            chief = launch(1 if variant == "one_worker" else 2, fits, steps, rows)
            results[variant].extend(chief["examples_per_s"])
            agreement.extend(chief.get("agreement_ms", []))
            print(f"{variant:12s} launch {i}: {statistics.median(chief['examples_per_s']):,.0f} examples/s", flush=True)
    summary = {
        "examples_per_s": {
            k: {"median": statistics.median(v), "best": max(v), "n": len(v)} for k, v in results.items()
        },
        "agreement_ms": {
            "median": statistics.median(agreement),
            "p90": statistics.quantiles(agreement, n=10)[-1],
            "n": len(agreement),
        },
        "workload": {
            "rows": rows,
            "batch": BATCH,
            "steps_per_fit": steps,
            "fits_per_launch": fits,
            "launches": launches,
        },
        "loadavg": os.getloadavg(),
    }
    print(json.dumps(summary, indent=2))
    results_dir = ROOT / "benchmarks" / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    name = "multiworker-quick.json" if args.quick else "multiworker.json"
    (results_dir / name).write_text(json.dumps({"summary": summary, "rounds": results, "agreement_ms": agreement}))


if __name__ == "__main__":
    main()
