"""Benchmark: what a retrain costs over a training on the same data, and a retrain with nothing new.

Figures (docs/benchmarks.md, "Retraining (issue [4/5])"):

1. `retrain_flow` / `train_flow` wall time on the same rows and settings. Data: `--days` days of
   `--rows-per-day` rows (y = x0 + x1 > 0, two more numeric features, a categorical one) as Parquet
   partitions; a champion is trained once (`train_flow`) on the first partition into a template
   SQLite store. Each round copies the template store twice and, on the directory of every
   partition (the first and the new one), runs `train_flow` in one copy and `retrain_flow` in the
   other: both ingest, split, train `--steps` steps of a DNNClassifier (64, 64), evaluate, log and
   register the model; the retrain also fingerprints the data, checks the schema against the
   champion's signature, writes the drift report, scores champion and challenger from their logged
   models on the same held-out rows and records the decision. ABBA order, one untimed warm-up of
   each, median of the per-round ratios retrain / train. Target: <= 1.3.
2. `retrain_flow` with no new data (the fingerprint equals the last retrain's): wall time of the
   call and the flow's own time (`RetrainResult.seconds`), median of `--skips`. Target: <= 3 s.
3. The champion's share of the extra work: `flows.promotion.score_model` (load the logged model,
   predict and score the held-out rows) timed alone.

Flows run as `skflow` runs them (a local Prefect server, `flows.foreground.without_heartbeats`).

Usage::

    .venv/bin/python benchmarks/bench_retrain.py            # ~5 min on 2 busy cores
    .venv/bin/python benchmarks/bench_retrain.py --quick    # smoke run (~2 min)
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TARGETS = {"retrain_ratio": 1.3, "no_new_data_flow_s": 3.0}


def partition(day0: int, days: int, rows_per_day: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = days * rows_per_day
    x = rng.normal(size=(n, 4))
    return pd.DataFrame(
        {
            "day": pd.Timestamp("2026-01-01") + pd.to_timedelta(day0 + np.arange(n) // rows_per_day, unit="D"),
            **{f"x{i}": x[:, i] for i in range(4)},
            "color": rng.choice(["red", "green", "blue"], size=n),
            "y": (x[:, 0] + x[:, 1] + 0.3 * rng.normal(size=n) > 0).astype("int64"),
        }
    )


def pipeline(source: Path, root: Path, tracking: str, steps: int) -> dict:
    return {
        "experiment": "bench-retrain",
        "source": str(source),
        "target": "y",
        "split": {"kind": "time", "column": "day", "test_size": 0.2},
        "estimator": {"name": "DNNClassifier", "params": {"hidden_units": [64, 64], "learning_rate": 0.01}},
        "fit": {"steps": steps, "batch_size": 128},
        "metrics": ["accuracy"],
        "tracking": {"uri": tracking, "log_every_n_steps": 100},
        "retries": {"ingest": 0, "fit": 0, "delay_seconds": 0},
        "model_root": str(root / "models"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=40)
    parser.add_argument("--rows-per-day", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=4, help="ABBA rounds (each: one train, one retrain)")
    parser.add_argument("--skips", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "retrain.json"))
    args = parser.parse_args()
    if args.quick:
        args.days, args.rows_per_day, args.steps, args.rounds, args.skips = 20, 200, 200, 2, 3
        args.out = args.out.replace("retrain.json", "retrain-quick.json")

    from flows.foreground import start_local_server, without_heartbeats

    server = start_local_server()
    if server is not None:
        server.wait()
    import mlflow  # noqa: F401

    from flows.config import load_config
    from flows.pipelines import train_flow
    from flows.promotion import score_model
    from flows.retrain import find_champion, retrain_flow

    results: dict = {"args": vars(args), "load_average_before": os.getloadavg()}
    work = Path(tempfile.mkdtemp(prefix="bench_retrain_"))
    try:
        first, everything = work / "first", work / "all"
        first.mkdir()
        everything.mkdir()
        old_days = args.days * 3 // 4
        partition(0, old_days, args.rows_per_day, 0).to_parquet(first / "part-000.parquet", index=False)
        shutil.copy(first / "part-000.parquet", everything / "part-000.parquet")
        new = partition(old_days, args.days - old_days, args.rows_per_day, 1)
        new.to_parquet(everything / "part-001.parquet", index=False)
        template = work / "template.db"
        from mlflow import MlflowClient

        MlflowClient(f"sqlite:///{template}").search_experiments()
        with without_heartbeats():
            champion = train_flow(load_config(pipeline(first, work, f"sqlite:///{template}", args.steps)))
        print(f"champion: version {champion.model_version}, eval_accuracy {champion.metrics['eval_accuracy']:.4f}")

        def store(tag: str) -> str:
            db = work / f"{tag}-{time.monotonic_ns()}.db"
            shutil.copy(template, db)
            return f"sqlite:///{db}"

        def train() -> float:
            config = load_config(pipeline(everything, work, store("train"), args.steps))
            started = time.perf_counter()
            with without_heartbeats():
                train_flow(config)
            return time.perf_counter() - started

        last: dict = {}

        def retrain() -> float:
            config = load_config(pipeline(everything, work, store("retrain"), args.steps))
            started = time.perf_counter()
            with without_heartbeats():
                last["result"] = retrain_flow(config)
            last["config"] = config
            return time.perf_counter() - started

        train(), retrain()  # warm-up
        seconds: dict[str, list[float]] = {"train": [], "retrain": []}
        ratios = []
        for i in range(args.rounds):
            order = [("train", train), ("retrain", retrain)]
            if i % 2:
                order.reverse()
            got = {name: fn() for name, fn in order}
            for name, value in got.items():
                seconds[name].append(value)
            ratios.append(got["retrain"] / got["train"])
            print(f"  round {i + 1}: train {got['train']:.2f} s, retrain {got['retrain']:.2f} s")
        result = last["result"]
        results["retrain"] = {
            "seconds": seconds,
            "ratios": ratios,
            "median_ratio": statistics.median(ratios),
            "decision": result.summary,
        }
        print(f"retrain / train: median {statistics.median(ratios):.3f} (per round {[round(r, 3) for r in ratios]})")
        print(f"  last decision: {result.summary}")

        # 2. no new data: the last retrain's store, the same data
        config = last["config"]
        walls, flows = [], []
        for _ in range(args.skips):
            started = time.perf_counter()
            with without_heartbeats():
                skipped = retrain_flow(config)
            walls.append(time.perf_counter() - started)
            flows.append(skipped.seconds)
            assert skipped.skipped, skipped
        results["no_new_data"] = {"wall_s": walls, "flow_s": flows, "median_wall_s": statistics.median(walls)}
        print(
            f"no new data: median {statistics.median(walls):.2f} s per call (flow body {statistics.median(flows):.2f} s)"
        )

        # 3. the champion's evaluation alone
        uri = config.tracking.uri
        found = find_champion(config.registered_model_name, uri)
        rows = pd.read_parquet(Path(result.model_dir) / "data" / "eval.parquet")
        timings = []
        for _ in range(3):
            started = time.perf_counter()
            score_model(found.model_uri, rows, "y", "accuracy", uri)
            timings.append(time.perf_counter() - started)
        results["champion_scoring_s"] = timings
        print(f"champion scoring ({len(rows)} held-out rows): median {statistics.median(timings):.2f} s")
        results["load_average_after"] = os.getloadavg()
        results["targets"] = TARGETS
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2))
        print(f"load average before {results['load_average_before']}, after {results['load_average_after']}")
        print(f"wrote {args.out}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if server is not None:
            server.stop()


if __name__ == "__main__":
    from flows.foreground import exit_now

    main()
    exit_now(0)
