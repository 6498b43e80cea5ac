"""Benchmark: how long `fit` takes to return after its last training step, over many short fits.

Workload: ``make_classification(200_000, n_features=28, n_informative=20, random_state=0)``, the
MLP 28->256->256->2 of bench_estimator.py, 200 steps of batch 256 per fit, each fit from scratch
(a new Estimator and model_dir), as a hyper-parameter search runs them.

Measured per fit: the time from the end of the last training step (a monitor's ``after_run`` at
the final step) to the return of ``fit``. What is left in it is the final checkpoint and closing
the input pipeline. Two variants, alternated fit by fit:
  feeders      ``fit(x, y, steps=200)``: skflow's feeder (tf.data autotuning off).
  autotuned    ``fit(input_fn=...)`` over the same feeder's dataset with tf.data's default options
               (autotuning on), as a hand-written input_fn has it: the baseline. Its optimisation
               thread made iterator teardown take ~150 ms in 5 of 12 fits when measured here.
JSON: ``benchmarks/results/fit_latency.json``.

Usage::

    .venv/bin/python benchmarks/bench_fit_latency.py             # 22 fits per variant (~2 min)
    .venv/bin/python benchmarks/bench_fit_latency.py --quick     # 4 fits per variant
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from bench_estimator import BATCH, ROOT, machine_info, model_fn  # noqa: E402  (puts the repo on sys.path)
from sklearn.datasets import make_classification  # noqa: E402

from estimators import Estimator, RunConfig  # noqa: E402
from estimators.monitors import BaseMonitor  # noqa: E402
from feeders import DataFeeder  # noqa: E402

STEPS = 200


class LastStepClock(BaseMonitor):
    """Records when the final training step of the fit has run."""

    def after_run(self, step, loss):
        if step == self._max_steps:
            float(loss)  # the step has finished
            self.at = time.perf_counter()


def _fit(x: np.ndarray, y: np.ndarray, autotuned: bool, seed: int) -> float:
    """One fit from scratch; returns seconds from its last step to its return."""
    clock = LastStepClock()
    config = RunConfig(tf_random_seed=seed, log_step_count_steps=0, verbose=0)
    with tempfile.TemporaryDirectory(prefix="bench_latency_") as model_dir:
        est = Estimator(model_fn, model_dir=model_dir, config=config)
        if autotuned:
            feeder = DataFeeder(x, y, batch_size=BATCH, seed=seed)
            est.fit(input_fn=lambda: feeder.dataset().with_options(_autotuned()), steps=STEPS, monitors=[clock])
        else:
            est.fit(x, y, steps=STEPS, batch_size=BATCH, monitors=[clock])
        return time.perf_counter() - clock.at


def _autotuned() -> tf.data.Options:
    """tf.data's default: autotuning on (the feeder turns it off; this turns it back on)."""
    options = tf.data.Options()
    options.autotune.enabled = True
    return options


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fits", type=int, default=22, help="fits per variant; default 22")
    parser.add_argument("--quick", action="store_true", help="smoke run: 4 fits per variant")
    parser.add_argument("--out", help="JSON path; default benchmarks/results/fit_latency[-quick].json")
    args = parser.parse_args()
    fits = 4 if args.quick else args.fits
    info = machine_info()
    x, y = make_classification(200_000, n_features=28, n_informative=20, random_state=0)
    x, y = x.astype(np.float32), y.astype(np.int32)
    _fit(x, y, autotuned=False, seed=0)  # warm-up: TF start-up, first traces
    out: dict[str, list[float]] = {"feeders": [], "autotuned": []}
    for i in range(fits):
        for name in ("feeders", "autotuned") if i % 2 == 0 else ("autotuned", "feeders"):
            out[name].append(_fit(x, y, autotuned=name == "autotuned", seed=i) * 1e3)
        print(f"  fit {i + 1}/{fits}: " + ", ".join(f"{k} {v[-1]:.0f} ms" for k, v in out.items()), flush=True)
    result = {
        k: {"median_ms": statistics.median(v), "max_ms": max(v), "over_100ms": sum(t > 100 for t in v), "ms": v}
        for k, v in out.items()
    }
    print(f"\n{'variant':<12}{'median ms':>10}{'max ms':>9}{'fits > 100 ms':>15}")
    for k, v in result.items():
        print(f"{k:<12}{v['median_ms']:>10.1f}{v['max_ms']:>9.1f}{v['over_100ms']:>10} / {fits}")
    record = {"workload": {"steps": STEPS, "batch_size": BATCH, "fits": fits}, "machine": info, "results": result}
    path = args.out or ROOT / "benchmarks" / "results" / (
        "fit_latency-quick.json" if args.quick else "fit_latency.json"
    )
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(record, f, indent=2)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
