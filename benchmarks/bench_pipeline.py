"""Benchmark: what the Prefect pipeline costs over the same work done by direct library calls.

Four figures (docs/benchmarks.md, "Prefect pipelines"):

1. `train_flow` wall time against the same work without Prefect, MLflow logging on in both. The
   workload is the Estimator benchmark's: ``make_classification(200_000, n_features=28)`` written to
   Parquet, MLP 28->256->256->2 (`bench_estimator.model_fn`), batch 256, `--steps` steps (default
   25,000: a ~30 s fit here), 10 % held out. Direct: read the Parquet file, `train_test_split`,
   `Estimator(model_fn).fit(max_steps=...)` with an `MlflowMonitor` on a run of its own,
   `log_evaluation`, `log_model`, `end_run`. Flow: `train_flow` on the same file and settings (its
   tasks also write the split to Parquet, log the flow's artifacts and tags). One process, the
   local Prefect server started first, flows run as `skflow run` runs them (`flows.foreground.
   without_heartbeats`: no flow heartbeats), one untimed warm-up of each, then rounds in ABBA order; the
   median of the per-round ratios flow / direct. Start-up costs are reported apart: the
   Prefect server (fresh and existing database), a new MLflow SQLite store, the first flow call.
2. `skflow run` on embedded defaults (Prefect's local server, MLflow on SQLite in the project): time
   from the command to the first training step, in a subprocess, reading the step-1 line of the
   training log; where the time goes (from the log's timestamps and separate measurements).
3. `skflow --help`: wall time of the subprocess (median of 7).
4. `batch_predict_flow` rows/s against `Estimator.predict` on the whole table plus writing the same
   Parquet by hand (restoring the Estimator and reading the input included), on `--predict-rows`
   rows (default 3,000,000; 1,000,000 as well), flows run as `skflow predict` runs them, ABBA,
   median of the per-round ratios.

Usage::

    .venv/bin/python benchmarks/bench_pipeline.py            # ~8 min
    .venv/bin/python benchmarks/bench_pipeline.py --quick    # smoke run (~2 min)
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

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
TARGETS = {"flow_ratio": 1.15, "first_step_s": 15.0, "help_s": 1.5, "predict_ratio": 0.8}


def _cli(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "flows.cli", *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------- 3. --help
def help_seconds(runs: int = 7) -> list[float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "flows.cli", "--help"], env=env, capture_output=True, check=True)
        out.append(time.perf_counter() - started)
    return out


# ---------------------------------------------------------------------------------------- 2. first step
_STAMP = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d{3}) \|")


def _clock(line: str, day: datetime) -> float | None:
    match = _STAMP.match(line)
    if not match:
        return None
    h, m, s, ms = (int(g) for g in match.groups())
    return day.replace(hour=h, minute=m, second=s, microsecond=ms * 1000).timestamp()


def first_step(project: Path, prefect_home: Path, steps: int) -> dict[str, float]:
    """Launch `skflow run configs/digits.yaml` in `project`; seconds from launch to each milestone."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PREFECT_HOME": str(prefect_home), "PREFECT_LOGGING_LEVEL": "INFO"}
    for name in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL", "PREFECT_PROFILE"):
        env.pop(name, None)
    args = ["run", str(ROOT / "configs" / "digits.yaml"), "--set", f"fit.steps={steps}", "--set", "predict=null"]
    launched, day = time.time(), datetime.now()
    process = _cli(args, project, env)
    marks: dict[str, float] = {}
    milestones = {
        "flow_started": "Beginning flow run",
        "mlflow_run_created": "skflow - MLflow run ",
        "data_ready": "Task run 'build-feeders",
        "first_step": "step = 1",
    }
    for line in process.stdout:
        for name, text in milestones.items():
            if name not in marks and text in line:
                stamp = _clock(line, day) if name != "first_step" else time.time()
                marks[name] = (stamp or time.time()) - launched
    process.wait()
    marks["exit"] = time.time() - launched
    marks["returncode"] = process.returncode
    return marks


def import_seconds() -> float:
    code = (
        "import time; t = time.perf_counter(); import flows.pipelines, flows.training; print(time.perf_counter() - t)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def server_seconds(prefect_home: Path) -> float:
    code = "from flows.foreground import LocalPrefectServer\ns = LocalPrefectServer(); print(s.wait()); s.stop()\n"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PREFECT_HOME": str(prefect_home)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------- 1 and 4
def make_data(root: Path, rows: int) -> Path:
    import numpy as np
    import pandas as pd
    from sklearn.datasets import make_classification

    x, y = make_classification(rows, n_features=28, n_informative=20, random_state=0)
    frame = pd.DataFrame(x.astype(np.float32), columns=[f"x{i}" for i in range(28)])
    frame.insert(0, "row", np.arange(rows))
    frame["y"] = y.astype(np.int64)
    path = root / "train.parquet"
    frame.to_parquet(path, index=False)
    return path


def pipeline_config(source: Path, root: Path, tracking: str, steps: int):
    from flows.config import load_config

    return load_config(
        {
            "experiment": "bench-flow",
            "source": str(source),
            "target": "y",
            "id_column": "row",
            "split": {"kind": "random", "test_size": 0.1, "seed": 0, "stratify": False},
            "estimator": {"model_fn": "benchmarks.bench_estimator:model_fn", "task": "classification"},
            "fit": {"steps": steps, "batch_size": 256},
            "metrics": ["accuracy"],
            "tracking": {"uri": tracking, "log_every_n_steps": 100},
            "model_root": str(root / "models"),
        }
    )


def direct(source: Path, root: Path, tracking: str, steps: int) -> str:
    """The flow's work by hand: read, split, fit with MLflow, evaluate, log the model."""
    import pandas as pd
    from sklearn.model_selection import train_test_split

    from benchmarks.bench_estimator import model_fn
    from estimators import Estimator, RunConfig
    from flows.tracking import MlflowMonitor, create_run, end_run, log_evaluation, log_model

    frame = pd.read_parquet(source)
    features = [f"x{i}" for i in range(28)]
    train, held_out = train_test_split(frame, test_size=0.1, random_state=0)
    run = create_run("bench-direct", tracking_uri=tracking)
    model_dir = root / "direct" / run.run_id
    config = RunConfig(log_step_count_steps=100, verbose="auto")
    est = Estimator(model_fn, model_dir=str(model_dir), config=config)
    monitor = MlflowMonitor(run=run, tracking_uri=tracking, every_n_steps=100)
    est.fit(train[features], train["y"].to_numpy(), max_steps=steps, batch_size=256, monitors=[monitor])
    monitor.close(timeout=30)
    log_evaluation(run, est, held_out[features], held_out["y"].to_numpy(), metrics=["accuracy"])
    log_model(run, est, input_example=held_out[features].head(5), step=steps)
    end_run(run)
    return run.run_id


def ratio_rounds(variants: dict, rounds: int) -> tuple[dict[str, list[float]], list[float]]:
    """Seconds per call of each variant (ABBA after one warm-up each) and per-round ratios second/first."""
    names = list(variants)
    for name in names:
        variants[name]()
    seconds: dict[str, list[float]] = {k: [] for k in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            started = time.perf_counter()
            variants[name]()
            seconds[name].append(time.perf_counter() - started)
        print(f"  round {r + 1}/{rounds}: " + ", ".join(f"{k} {seconds[k][-1]:.2f} s" for k in names), flush=True)
    ratios = [b / a for a, b in zip(seconds[names[0]], seconds[names[1]])]
    return seconds, ratios


def predict_by_hand(model_dir: str, source: Path, output: Path) -> None:
    import pandas as pd

    from benchmarks.bench_estimator import model_fn
    from estimators import Estimator, RunConfig

    est = Estimator(model_fn, model_dir=model_dir, config=RunConfig(verbose=0))
    frame = pd.read_parquet(source)
    predictions = est.predict(frame[[f"x{i}" for i in range(28)]])
    out = pd.DataFrame({"row": frame["row"].to_numpy(), "class": predictions["class"]})
    out.to_parquet(output, index=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=25_000, help="training steps of figure 1 (default ~30 s)")
    parser.add_argument("--rounds", type=int, default=2, help="ABBA rounds of figures 1 and 4")
    parser.add_argument("--predict-rows", type=int, nargs="+", default=[1_000_000, 3_000_000])
    parser.add_argument("--quick", action="store_true", help="smoke run: 800 steps, 100k rows to predict")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.quick:
        args.steps, args.predict_rows, args.rounds = 800, [100_000], 1
    results: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "targets": TARGETS}
    from benchmarks.bench_estimator import machine_info

    results["machine"] = machine_info()
    print(f"machine: {results['machine']['cpu_count']} CPUs, load {results['machine']['loadavg_start'][0]:.2f}")

    work = Path(tempfile.mkdtemp(prefix="skflow_bench_pipeline_"))
    try:
        # 3. --help
        helps = help_seconds()
        results["help_s"] = {"median": statistics.median(helps), "runs": helps}
        print(f"skflow --help: median {statistics.median(helps):.2f} s {[round(h, 2) for h in helps]}")

        # 2. first step: a fresh PREFECT_HOME, then an existing one; a new project, then the same one again
        home = work / "prefect_home"
        results["server_fresh_db_s"] = server_seconds(home)
        results["server_existing_db_s"] = server_seconds(home)
        results["import_flows_s"] = import_seconds()
        print(f"Prefect server healthy after: fresh DB {results['server_fresh_db_s']:.1f} s, existing DB "
              f"{results['server_existing_db_s']:.1f} s; `import flows.pipelines` {results['import_flows_s']:.1f} s")  # fmt: skip
        project = work / "project"
        project.mkdir()
        runs = {}
        for name in ("new_project", "same_project"):
            runs[name] = first_step(project, home, steps=200)
            print(f"skflow run ({name.replace('_', ' ')}): " + ", ".join(f"{k} {v:.1f}" for k, v in runs[name].items()))
        results["first_step"] = runs

        # 1. train_flow vs direct calls
        import mlflow  # noqa: F401  (imported before timing, like the flow's process has it)

        from flows.foreground import start_local_server, without_heartbeats

        server = start_local_server()
        started = time.perf_counter()
        if server is not None:
            server.wait()
        results["server_in_process_s"] = time.perf_counter() - started
        from flows.pipelines import batch_predict_flow, train_flow

        source = make_data(work, 200_000)
        db = work / "mlruns" / "mlflow.db"
        db.parent.mkdir()
        tracking = f"sqlite:///{db}"
        started = time.perf_counter()
        from mlflow import MlflowClient

        MlflowClient(tracking).search_experiments()
        results["mlflow_new_store_s"] = time.perf_counter() - started
        config = pipeline_config(source, work, tracking, args.steps)
        last = {}

        def flow() -> None:
            with without_heartbeats():
                last["flow"] = train_flow(config)

        def by_hand() -> None:
            direct(source, work, tracking, args.steps)

        print(f"train_flow vs direct calls, {args.steps} steps:")
        started = time.perf_counter()
        with without_heartbeats():
            train_flow(pipeline_config(source, work, tracking, 50))
        results["first_flow_call_s"] = time.perf_counter() - started
        seconds, ratios = ratio_rounds({"direct": by_hand, "flow": flow}, args.rounds)
        results["flow"] = {"seconds": seconds, "ratios": ratios, "median_ratio": statistics.median(ratios)}
        print(f"  flow / direct: median {statistics.median(ratios):.3f} (per round {[round(r, 3) for r in ratios]})")

        # 4. batch_predict_flow vs Estimator.predict + to_parquet
        trained = last["flow"]
        results["predict"] = {}
        for rows in args.predict_rows:
            folder = work / f"predict-{rows}"
            folder.mkdir()
            big = make_data(folder, rows)

            def predict_flow(big: Path = big) -> None:
                with without_heartbeats():
                    batch_predict_flow(
                        trained.model_uri, str(big), str(work / "flow.parquet"), id_column="row", tracking_uri=tracking
                    )

            print(f"batch_predict_flow vs Estimator.predict + to_parquet, {rows:,} rows:")
            predict_seconds, predict_ratios = ratio_rounds(
                {"by_hand": lambda big=big: predict_by_hand(trained.model_dir, big, work / "by_hand.parquet"),
                 "flow": predict_flow},
                args.rounds + 1,
            )  # fmt: skip
            per_row = [1 / r for r in predict_ratios]
            results["predict"][rows] = {
                "seconds": predict_seconds,
                "rows_per_s": {k: [rows / s for s in v] for k, v in predict_seconds.items()},
                "ratios_rows_per_s": per_row,
                "median_ratio": statistics.median(per_row),
            }
            print(f"  rows/s flow / by hand: median {statistics.median(per_row):.3f}")
            shutil.rmtree(folder)
        if server is not None:
            server.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["machine"]["loadavg_end"] = os.getloadavg()
    out = args.out or ROOT / "benchmarks" / "results" / f"pipeline{'-quick' if args.quick else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, default=str))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
