"""Benchmark: `skflow sweep` with 4 trials on 2 local Dask workers against the same 4 trials one after another.

The figure (docs/benchmarks.md, "Sweeps (issue [5/5])") is the ratio of wall times
`skflow sweep --workers 2` / `skflow sweep --workers 0` (0: the trials run one after another in the
command's own process, no Dask), each the whole command as a user runs it, in a subprocess: the
same config, the same 4 trials (a grid of 4 learning rates), the same Prefect server (started once,
before both) and a fresh copy of one migrated MLflow SQLite store each. Both pay for importing
TensorFlow: once in the sequential process, once per worker in parallel (the workers import it at
the same time). The workload: scikit-learn's digits (1,797 rows x 64), DNNClassifier 64-32,
batch 64, `--steps` steps per trial (default 30,000), each trial logging its model (the best is
registered as challenger). Rounds alternate the order (AB, BA, ...); the median ratio is reported,
with each run's wall time, the sweep's own time (from its output) and the load average (the
machine's cores are shared: the figures are noisy).

Usage::

    .venv/bin/python benchmarks/bench_sweep.py                  # 1 round (~3-5 min on 2 shared cores)
    .venv/bin/python benchmarks/bench_sweep.py --rounds 2 --steps 600
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import datetime  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
LEARNING_RATES = "0.001,0.003,0.01,0.03"
CONFIG = """experiment: digits-sweep
source: sklearn:digits
target: target
split: {kind: random, test_size: 0.25, seed: 0}
estimator: {name: DNNClassifier, params: {hidden_units: [64, 32]}}
fit: {steps: STEPS, batch_size: 64}
metrics: [accuracy]
tracking: {log_every_n_steps: 100}
"""


def _sweep(project: Path, template: Path, workers: int, env: dict[str, str]) -> dict[str, float | str]:
    store = project / f"mlruns-w{workers}-{time.monotonic_ns()}"
    store.mkdir()
    shutil.copy(template, store / "mlflow.db")
    args = [
        sys.executable, "-m", "flows.cli", "sweep", "sweep.yaml", "--grid", f"estimator.params.learning_rate={LEARNING_RATES}",
        "--workers", str(workers), "--set", f"tracking.uri=sqlite:///{store / 'mlflow.db'}",
        "--set", f"model_root={project / 'models'}",
    ]  # fmt: skip
    load = os.getloadavg()[0]
    started = time.perf_counter()
    done = subprocess.run(args, cwd=project, env=env, capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"--workers {workers} exited {done.returncode}:\n{done.stdout}\n{done.stderr[-4000:]}")
    sweep_s = float(re.search(r"finished in ([\d.]+) s", done.stdout).group(1))
    best = re.search(r"best: (.+?) \(", done.stdout).group(1)
    print(
        f"  --workers {workers}: {wall:6.1f} s wall ({sweep_s:.1f} s in the sweep flow), best {best}, load {load:.1f}"
    )
    return {"workers": workers, "wall_s": round(wall, 2), "sweep_s": sweep_s, "best": best, "load_before": load}


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and write its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30000, help="training steps per trial")
    parser.add_argument("--rounds", type=int, default=1, help="rounds (each runs both, alternating the order)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "sweep.json"))
    args = parser.parse_args(argv)

    from mlflow import MlflowClient

    from flows.foreground import LocalPrefectServer

    project = Path(tempfile.mkdtemp(prefix="bench_sweep_"))
    server = LocalPrefectServer()
    try:
        template = project / "template.db"
        MlflowClient(f"sqlite:///{template}").search_experiments()  # migrated once
        (project / "sweep.yaml").write_text(CONFIG.replace("STEPS", str(args.steps)))
        server.wait()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING_", "PREFECT_API_"))},
            "PYTHONPATH": str(ROOT), "PREFECT_API_URL": server.api_url, "TF_CPP_MIN_LOG_LEVEL": "3",
        }  # fmt: skip
        runs, ratios = [], []
        for index in range(args.rounds):
            order = (0, 2) if index % 2 == 0 else (2, 0)
            print(f"round {index + 1}: " + ", then ".join(f"--workers {w}" for w in order))
            pair = {w: _sweep(project, template, w, env) for w in order}
            runs += list(pair.values())
            ratios.append(pair[2]["wall_s"] / pair[0]["wall_s"])
    finally:
        server.stop()
        shutil.rmtree(project, ignore_errors=True)
    result = {
        "date": datetime.now().isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "steps_per_trial": args.steps,
        "trials": 4,
        "learning_rates": LEARNING_RATES,
        "runs": runs,
        "ratio_parallel_over_sequential": [round(r, 3) for r in ratios],
        "median_ratio": round(statistics.median(ratios), 3),
        "load_after": os.getloadavg()[0],
    }
    print(json.dumps(result, indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
