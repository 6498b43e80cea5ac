"""Benchmark: the cost of skflow's training monitors (defaults, ValidationMonitor) on Estimator.fit.

Workload (issue 3/4): the issue-1 data, ``make_classification(200_000, n_features=28, n_informative=20,
random_state=0)`` as float32 X / int32 y, split into 180,000 training rows and 20,000 held-out rows
(the last 10 %; make_classification shuffles its rows); MLP 28->256->256->2, Adam(1e-3), batch 256
(the model_fn of bench_estimator.py). Every timed call is ``fit(X_train, y_train, steps=S)`` with
S = 2 epochs = 1,406 steps, on one Estimator per variant:
  A none        ``RunConfig(log_step_count_steps=0, save_summary_steps=0, verbose=0)``: no optional
                monitors (the built-in NaN check, every 100 steps, cannot be switched off).
  B defaults    ``RunConfig()``: NaN check, loss logging and TensorBoard scalars every 100 steps (the
                progress bar only draws on a terminal; the log lines are dropped unless the application
                configures logging, as Python does by default).
  C validation  B plus ``ValidationMonitor(X_val, y_val, every_n_steps=1000)`` (a new one per fit, as
                a user writes it): a full evaluation of the 20,000 rows at every multiple of 1,000 steps,
                i.e. 1 or 2 per round.
All variants use ``tf_random_seed=0``. Method: one process, one untimed warm-up fit each, then ABBA
rounds; medians (examples/s = S * 256 / wall s), and the median of per-round ratios (each
round's fits run back to back, so it cancels slow drifts of the machine). JSON: ``benchmarks/results/monitors.json``.

Usage::

    .venv/bin/python benchmarks/bench_monitors.py              # full run, 15 rounds (~3-4 min, 2 cores)
    .venv/bin/python benchmarks/bench_monitors.py --quick      # smoke run: 20k rows, 1 round
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import glob  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from bench_estimator import ROOT, abba, machine_info, summary  # noqa: E402  (also puts the repo on sys.path)
from sklearn.datasets import make_classification  # noqa: E402

from estimators import Estimator, RunConfig, optimize_loss  # noqa: E402
from estimators.monitors import ValidationMonitor  # noqa: E402

BATCH = 256
TARGETS = {"defaults_vs_none": 0.95, "validation_vs_none": 0.85}


def model_fn(features, targets, mode, params):  # the same as bench_estimator.model_fn
    h = keras.layers.Dense(256, activation="relu")(features)
    h = keras.layers.Dense(256, activation="relu")(h)
    logits = keras.layers.Dense(2)(h)
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits))
    train_op = optimize_loss(loss, optimizer="Adam", learning_rate=1e-3)
    return {"class": tf.argmax(logits, 1)}, loss, train_op


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15, help="timed ABBA rounds (2 epochs per variant); default 15")
    parser.add_argument("--quick", action="store_true", help="smoke run: 20k rows, 1 round")
    parser.add_argument("--out", help="JSON path; default benchmarks/results/monitors[-quick].json")
    args = parser.parse_args()
    n_rows, rounds = (20_000, 1) if args.quick else (200_000, args.rounds)
    every = 100 if args.quick else 1000
    info = machine_info()
    print(f"machine: {info['cpu_count']} CPUs, TF {info['tensorflow']}, load {info['loadavg_start'][0]:.2f}")
    if info["loadavg_start"][0] > 0.5 * (os.cpu_count() or 1):
        print("WARNING: other processes are busy on this machine; expect contended, noisier figures.")
    x, y = make_classification(n_rows, n_features=28, n_informative=20, random_state=0)
    x, y = x.astype(np.float32), y.astype(np.int32)
    n_val = n_rows // 10
    x_tr, y_tr, x_val, y_val = x[:-n_val], y[:-n_val], x[-n_val:], y[-n_val:]
    steps = 2 * (len(x_tr) // BATCH)
    keras.utils.set_random_seed(0)
    with tempfile.TemporaryDirectory(prefix="bench_mon_") as tmp:
        configs = {
            "A_none": RunConfig(tf_random_seed=0, log_step_count_steps=0, save_summary_steps=0, verbose=0),
            "B_defaults": RunConfig(tf_random_seed=0),
            "C_validation": RunConfig(tf_random_seed=0),
        }
        est = {k: Estimator(model_fn, model_dir=os.path.join(tmp, k), config=c) for k, c in configs.items()}
        validators: list[ValidationMonitor] = []

        def fit_c() -> None:
            validators.append(ValidationMonitor(x_val, y_val, every_n_steps=every))
            est["C_validation"].fit(x_tr, y_tr, steps=steps, batch_size=BATCH, monitors=validators[-1:])

        train = {
            "A_none": lambda: est["A_none"].fit(x_tr, y_tr, steps=steps, batch_size=BATCH),
            "B_defaults": lambda: est["B_defaults"].fit(x_tr, y_tr, steps=steps, batch_size=BATCH),
            "C_validation": fit_c,
        }
        cpu: dict[str, list[float]] = {
            k: [] for k in train
        }  # process CPU seconds per fit: less sensitive to contention

        def with_cpu(name: str, fn):
            def run() -> None:
                c0 = time.process_time()
                fn()
                cpu[name].append(time.process_time() - c0)

            return run

        train = {k: with_cpu(k, fn) for k, fn in train.items()}
        print(f"fit: warm-up, then {rounds} ABBA rounds of {steps} steps x {BATCH} rows (examples/s)")
        fit, warm = abba(train, dict.fromkeys(train, steps * BATCH), rounds)
        n_evals = [len(v.history) for v in validators[1:]]  # the warm-up fit's monitor left out
        eval_ms = []
        for _ in range(5):  # what one validation costs: evaluate() on the held-out rows, as the monitor calls it
            t0 = time.perf_counter()
            est["C_validation"].evaluate(x=validators[-1]._feeder)
            eval_ms.append((time.perf_counter() - t0) * 1e3)
        event_files = {
            k: len(glob.glob(os.path.join(tmp, k, "**", "events.out.tfevents.*"), recursive=True)) for k in est
        }
        accuracy = {k: float(np.mean(e.predict(x_val)["class"] == y_val)) for k, e in est.items()}

    fit_s = summary(fit)
    med = {k: v["median"] for k, v in fit_s.items()}
    ratios = {
        "defaults_vs_none": med["B_defaults"] / med["A_none"],
        "validation_vs_none": med["C_validation"] / med["A_none"],
    }
    best = {k: v["best"] for k, v in fit_s.items()}
    ratios_best = {
        "defaults_vs_none": best["B_defaults"] / best["A_none"],
        "validation_vs_none": best["C_validation"] / best["A_none"],
    }
    # Each round's variants ran back to back: the median of per-round ratios cancels slow drifts of the machine.
    paired = {k: statistics.median(b / a for a, b in zip(fit["A_none"], fit[v])) for k, v in
              (("defaults_vs_none", "B_defaults"), ("validation_vs_none", "C_validation"))}  # fmt: skip
    cpu_s = {k: statistics.median(v[1:]) for k, v in cpu.items()}  # the warm-up fit left out
    cpu_ratio = {
        "defaults_vs_none": cpu_s["A_none"] / cpu_s["B_defaults"],
        "validation_vs_none": cpu_s["A_none"] / cpu_s["C_validation"],
    }
    fit_time_a = steps * BATCH / med["A_none"]
    print("\nwarm-up s: " + ", ".join(f"{k} {v:.2f}" for k, v in warm.items()))
    print(f"\n{'variant':<14}{'examples/s':>12}{'s / fit':>9}{'vs A':>8}{'best round':>12}{'CPU s / fit':>13}")
    for k, v in fit_s.items():
        print(
            f"{k:<14}{v['median']:>12,.0f}{steps * BATCH / v['median']:>9.2f}{v['median'] / med['A_none']:>8.3f}{v['best']:>12,.0f}{cpu_s[k]:>13.2f}"
        )
    print(
        f"\nvalidations per timed C fit: {n_evals}; one evaluate() of {n_val:,} rows: "
        f"median {statistics.median(eval_ms):.0f} ms ({statistics.median(eval_ms) / 1e3 / fit_time_a:.1%} of A's fit time)"
    )
    print(f"event files left in model_dir (incl. eval/): {event_files}; held-out accuracy: {accuracy}")
    met = {"defaults_vs_none": ratios["defaults_vs_none"] >= TARGETS["defaults_vs_none"],
           "validation_vs_none": ratios["validation_vs_none"] >= TARGETS["validation_vs_none"]}  # fmt: skip
    print()
    for k, r in ratios.items():
        verdict = "met   " if met[k] else "MISSED"
        print(
            f"{k:<22}{r:>7.3f}  {verdict}  (target >= {TARGETS[k]}; of best rounds {ratios_best[k]:.3f}; "
            f"median of per-round ratios {paired[k]:.3f}; CPU-time ratio {cpu_ratio[k]:.3f})"
        )
    result = {
        "workload": {
            "n_train": len(x_tr),
            "n_val": n_val,
            "batch_size": BATCH,
            "steps_per_fit": steps,
            "validation_every_n_steps": every,
            "model": "MLP 28-256-256-2",
        },  # fmt: skip
        "method": {"rounds": rounds, "order": "ABBA", "statistic": "median", "warmup": "one untimed fit each"},
        "machine": info | {"loadavg_end": os.getloadavg()},
        "targets": TARGETS,
        "fit_examples_per_s": fit_s | {"warmup_s": warm},
        "ratios": ratios,
        "ratios_of_best": ratios_best,
        "ratios_paired_median": paired,
        "cpu_s_per_fit": {k: {"median": cpu_s[k], "rounds": v} for k, v in cpu.items()},
        "ratios_cpu_time": cpu_ratio,
        "validations_per_fit": n_evals,
        "evaluate_ms": eval_ms,
        "event_files": event_files,
        "heldout_accuracy": accuracy,
        "met": met,
    }
    out = args.out or ROOT / "benchmarks" / "results" / ("monitors-quick.json" if args.quick else "monitors.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as fh:
        fh.write(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
