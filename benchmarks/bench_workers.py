"""Benchmark: `skflow run CONFIG --workers 2` against `skflow run CONFIG` (one process), end to end.

Workload: scikit-learn's digits (1,797 rows, 64 features), DNNClassifier [64, 32], `fit.steps`
(default 300) at batch 64, the model logged; each run a fresh `python -m flows.cli run` in its own project
directory (its own local Prefect server and SQLite MLflow store), so both variants pay the same start-up.
Variants alternate ABBA over `--rounds`:
  one      `skflow run CONFIG`                (train_flow in the command's process)
  two      `skflow run CONFIG --workers 2`    (the command launches 2 worker processes; the chief runs train_flow)
Measured from the command's merged output, each line stamped when it arrives: the wall time of the
command, when the flow run began, when its fit began (the "loss = ..., step = 1" line) and ended
("Loss for final step"), when the cluster was up (two), and the held-out accuracy. JSON:
``benchmarks/results/workers.json``. The machine is shared: the load average is recorded with each run.

Usage::

    .venv/bin/python benchmarks/bench_workers.py               # 2 ABBA rounds: 8 runs (~10 min, 2 cores)
    .venv/bin/python benchmarks/bench_workers.py --quick       # 1 round of one each, 100 steps
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKERS = {
    "cluster_up": "the cluster is up",
    "flow_began": "Beginning flow run",
    "fit_began": "step = 1",
    "fit_ended": "Loss for final step",
    "flow_ended": "prefect.flow_runs: Finished in state",
}


def one_run(workers: int, steps: int) -> dict:
    """One `skflow run` in a fresh project directory; the seconds at which each marker line arrived."""
    project = Path(tempfile.mkdtemp(prefix="bench_workers_"))
    config = {
        "experiment": "digits-bench",
        "source": "sklearn:digits",
        "target": "target",
        "estimator": {"name": "DNNClassifier", "params": {"hidden_units": [64, 32], "learning_rate": 0.01}},
        "fit": {"steps": steps, "batch_size": 64},
        "tracking": {"log_every_n_steps": 50},
        "retries": {"fit": 0},
    }
    (project / "pipeline.yaml").write_text(json.dumps(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING_", "PREFECT_API_"))}
    env.update(PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    command = [sys.executable, "-m", "flows.cli", "run", "pipeline.yaml"]
    if workers > 1:
        command += ["--workers", str(workers)]
    load = os.getloadavg()[0]
    started = time.monotonic()
    process = subprocess.Popen(
        command, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    seen: dict[str, float] = {}
    accuracy = None
    for line in process.stdout:
        now = time.monotonic() - started
        for name, marker in MARKERS.items():
            if marker in line and name not in seen:
                seen[name] = now
        match = re.search(r"eval_accuracy\s*\S?\s*([0-9.]+)", line)
        if match:
            accuracy = float(match.group(1))
    code = process.wait()
    wall = time.monotonic() - started
    shutil.rmtree(project, ignore_errors=True)
    if code != 0:
        raise RuntimeError(f"skflow run --workers {workers} exited {code}")
    fit = seen["fit_ended"] - seen["fit_began"] if {"fit_began", "fit_ended"} <= set(seen) else None
    return {"workers": workers, "wall_s": wall, "fit_s": fit, "marks": seen, "eval_accuracy": accuracy, "load1": load}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "workers.json"))
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.steps = 1, 100
        orders = [[1, 2]]
    else:
        orders = [[1, 2, 2, 1]] * args.rounds
    runs = []
    for order in orders:
        for workers in order:
            run = one_run(workers, args.steps)
            runs.append(run)
            print(json.dumps(run), flush=True)
    summary = {}
    for workers in (1, 2):
        mine = [r for r in runs if r["workers"] == workers]
        summary[workers] = {
            "wall_s_median": statistics.median(r["wall_s"] for r in mine),
            "fit_s_median": statistics.median(r["fit_s"] for r in mine),
            "flow_began_s_median": statistics.median(r["marks"]["flow_began"] for r in mine),
        }
    ratios = {
        "wall two/one": summary[2]["wall_s_median"] / summary[1]["wall_s_median"],
        "fit two/one": summary[2]["fit_s_median"] / summary[1]["fit_s_median"],
    }
    result = {"steps": args.steps, "runs": runs, "summary": summary, "ratios": ratios, "load_after": os.getloadavg()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps({"summary": summary, "ratios": ratios}, indent=2))


if __name__ == "__main__":
    main()
