"""Benchmark: skflow `Estimator` training and serving speed against Keras and a hand-written loop.

Workload: ``make_classification(200_000, n_features=28, n_informative=20, random_state=0)`` as
float32 X / int32 y; MLP 28->256->256->2 (relu), Adam(1e-3), sparse softmax cross-entropy from
logits, batch 256 (781 steps per epoch).

Training variants, each timed on one epoch of data per round (examples/s = rows trained / wall s):
  estimator    ``Estimator.fit(X, y, steps=781, batch_size=256)`` with a custom model_fn; the call
               includes building its input pipeline and its end-of-fit checkpoint.
  keras_spe1   ``model.fit(X, y, batch_size=256, epochs=1)`` with ``steps_per_execution=1``.
  keras_spe32  the same with ``steps_per_execution=32``.
  hand_loop    a ``tf.function`` running 32 GradientTape/Adam steps per call over a tf.data iterator
               (per-epoch index permutation -> batches of indices -> ``map(tf.gather)``); the
               iterator is built once, outside the timing (the loop's best case).
Serving: ``partial_fit(xb, yb, steps=1)`` calls/s on 256 rows and ``predict(X[:1])`` latency, each
next to a reference: the same Keras MLP as a bare ``tf.function`` train step / forward pass.

Method: one process. Every variant gets one untimed warm-up round (tracing, first checkpoint)
before timing. Rounds alternate the order ABBA-style (a b c d, d c b a, a b c d, ...)
so that drifts of a noisy machine hit every variant alike; figures are medians over rounds. The
predict latencies interleave the two callers call by call. Results go to stdout and, as JSON, to
``benchmarks/results/estimator.json`` (with machine info and the git state of the sources).

Usage::

    .venv/bin/python benchmarks/bench_estimator.py              # full run, 9 rounds (~3 min on 2 cores)
    .venv/bin/python benchmarks/bench_estimator.py --rounds 5
    .venv/bin/python benchmarks/bench_estimator.py --quick      # smoke run: 20k rows, 1 round
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from sklearn.datasets import make_classification  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from estimators import Estimator, RunConfig, optimize_loss  # noqa: E402

BATCH = 256
TARGETS = {"fit_ratio": 0.9, "partial_fit_calls_per_s": 200.0, "predict_1row_ms": 2.0}


def model_fn(features, targets, mode, params):
    h = keras.layers.Dense(256, activation="relu")(features)
    h = keras.layers.Dense(256, activation="relu")(h)
    logits = keras.layers.Dense(2)(h)
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits))
    train_op = optimize_loss(loss, optimizer="Adam", learning_rate=1e-3)
    return {"class": tf.argmax(logits, 1)}, loss, train_op


def keras_mlp() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((28,)),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(2),
        ]
    )


def estimator_fit(est, x, y):
    steps = len(x) // BATCH

    def run() -> int:
        est.fit(x, y, steps=steps, batch_size=BATCH)
        return steps * BATCH

    return run


def keras_fit(x, y, spe: int):
    model = keras_mlp()
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        steps_per_execution=spe,
        jit_compile=False,
    )  # no XLA, like the Estimator (and "auto" on CPU)

    def run() -> int:
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, shuffle=True)
        return len(x)

    return run


class HandModel:
    """The reference: a Keras MLP trained by hand-written `tf.function`s."""

    def __init__(self) -> None:
        self.model, self.opt = keras_mlp(), keras.optimizers.Adam(1e-3)
        self.opt.build(self.model.trainable_variables)
        self.predict = tf.function(lambda xb: tf.argmax(self.model(xb, training=False), 1))

    def _step(self, xb, yb):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(yb, self.model(xb, training=True)))
        variables = self.model.trainable_variables
        self.opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    @tf.function
    def train_step(self, xb, yb):
        return self._step(xb, yb)

    @tf.function
    def train_many(self, iterator, k):
        loss = tf.constant(0.0)
        for _ in tf.range(k):
            xb, yb = next(iterator)
            loss = self._step(xb, yb)
        return loss

    def fit_loop(self, x, y, steps_per_call: int = 32):
        n, steps = len(x), len(x) // BATCH
        xt, yt = tf.constant(x), tf.constant(y)

        def epoch_batches(epoch):
            seed = tf.stack([tf.constant(0, tf.int64), epoch])
            perm = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), seed=seed)
            return tf.data.Dataset.from_tensor_slices(tf.reshape(perm[: steps * BATCH], [-1, BATCH]))

        gather = lambda idx: (tf.gather(xt, idx), tf.gather(yt, idx))  # noqa: E731
        ds = tf.data.Dataset.range(2**62).flat_map(epoch_batches)
        iterator = iter(ds.map(gather, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE))

        def run() -> int:
            done, loss = 0, None
            while done < steps:
                k = min(steps_per_call, steps - done)
                loss = self.train_many(iterator, tf.constant(k))
                done += k
            float(loss)  # wait for the last step
            return steps * BATCH

        return run


def repeat_calls(fn, calls: int):
    def run() -> int:
        for _ in range(calls):
            fn()
        return calls

    return run


def abba(variants: dict, rounds: int) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Per-round rates (units/s) of each variant in ABBA order, after one untimed warm-up call each."""
    names, warm = list(variants), {}
    for name in names:
        t0 = time.perf_counter()
        variants[name]()
        warm[name] = time.perf_counter() - t0
    out: dict[str, list[float]] = {k: [] for k in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            t0 = time.perf_counter()
            units = variants[name]()
            out[name].append(units / (time.perf_counter() - t0))
        print(f"  round {r + 1}/{rounds}: " + ", ".join(f"{k} {out[k][-1]:,.0f}" for k in names), flush=True)
    return out, warm


def interleaved_latency_ms(fns: dict, calls: int) -> dict[str, list[float]]:
    """Per-call latencies (ms) of each function, alternating ABBA call by call, after 20 warm-up calls each."""
    for fn in fns.values():
        for _ in range(20):
            fn()
    out: dict[str, list[float]] = {k: [] for k in fns}
    for i in range(calls):
        for name in list(fns) if i % 2 == 0 else list(fns)[::-1]:
            t0 = time.perf_counter()
            fns[name]()
            out[name].append((time.perf_counter() - t0) * 1e3)
    return out


def machine_info() -> dict:
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    models = [ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")]
    git = lambda *a: subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout.rstrip()  # noqa: E731
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": models[0] if models else platform.processor(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "gpus": len(tf.config.list_physical_devices("GPU")),
        "git_commit": git("rev-parse", "--short", "HEAD"),
        "git_dirty_sources": git("status", "--porcelain", "estimators", "feeders").splitlines(),
        "loadavg_start": os.getloadavg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=9, help="timed ABBA rounds (one epoch per variant); default 9")
    parser.add_argument("--quick", action="store_true", help="smoke run: 20k rows, 1 round, few calls")
    parser.add_argument("--out", type=Path, help="JSON path; default benchmarks/results/estimator[-quick].json")
    args = parser.parse_args()
    n_rows, rounds = (20_000, 1) if args.quick else (200_000, args.rounds)
    pf_calls, pred_calls = (50, 20) if args.quick else (300, 200)
    info = machine_info()
    dirty = " (sources modified)" if info["git_dirty_sources"] else ""
    print(
        f"machine: {info['cpu_count']} CPUs ({info['cpu_model']}), Python {info['python']}, TF {info['tensorflow']}, "
        f"Keras {info['keras']}, git {info['git_commit']}{dirty}, load {info['loadavg_start'][0]:.2f}"
    )

    x, y = make_classification(n_rows, n_features=28, n_informative=20, random_state=0)
    x, y = x.astype(np.float32), y.astype(np.int32)
    xb, yb, x1 = x[:BATCH], y[:BATCH], x[:1]
    keras.utils.set_random_seed(0)
    with tempfile.TemporaryDirectory(prefix="bench_est_") as model_dir:
        est = Estimator(model_fn, model_dir=model_dir, config=RunConfig(tf_random_seed=0, log_step_count_steps=0))
        hand = HandModel()
        print(f"training: warm-up, then {rounds} ABBA rounds of {n_rows // BATCH} steps x {BATCH} rows (examples/s)")
        fit, warm = abba(
            {
                "estimator": estimator_fit(est, x, y),
                "keras_spe1": keras_fit(x, y, 1),
                "keras_spe32": keras_fit(x, y, 32),
                "hand_loop": hand.fit_loop(x, y),
            },
            rounds,
        )
        print("warm-up s: " + ", ".join(f"{k} {v:.2f}" for k, v in warm.items()))
        print(f"partial_fit: {pf_calls} calls per round (calls/s)")
        pf, _ = abba(
            {
                "estimator": repeat_calls(lambda: est.partial_fit(xb, yb, steps=1), pf_calls),
                "tf_function_step": repeat_calls(lambda: float(hand.train_step(xb, yb)), pf_calls),
            },
            max(rounds, 3),
        )
        pred = interleaved_latency_ms(
            {"estimator": lambda: est.predict(x1), "tf_function_forward": lambda: hand.predict(x1).numpy()}, pred_calls
        )

    med = lambda d: {k: statistics.median(v) for k, v in d.items()}  # noqa: E731
    fit_med, pf_med, pred_med = med(fit), med(pf), med(pred)
    best = max((k for k in fit_med if k != "estimator"), key=fit_med.get)
    ratio = fit_med["estimator"] / fit_med[best]
    print(f"\n{'training variant':<18}{'examples/s':>12}{'ms/step':>10}{'vs ' + best:>16}")
    for k, v in fit_med.items():
        print(f"{k:<18}{v:>12,.0f}{BATCH / v * 1e3:>10.3f}{v / fit_med[best]:>16.3f}")
    checks = [  # (what, measured, reference text, met)
        (f"fit: estimator / {best}", f"{ratio:.3f}", f">= {TARGETS['fit_ratio']}", ratio >= TARGETS["fit_ratio"]),
        (
            "partial_fit(256 rows, steps=1) calls/s",
            f"{pf_med['estimator']:,.0f}",
            f">= {TARGETS['partial_fit_calls_per_s']:.0f}; bare tf.function step {pf_med['tf_function_step']:,.0f}",
            pf_med["estimator"] >= TARGETS["partial_fit_calls_per_s"],
        ),
        (
            "predict(X[:1]) ms, median",
            f"{pred_med['estimator']:.3f}",
            f"<= {TARGETS['predict_1row_ms']}; bare tf.function forward {pred_med['tf_function_forward']:.3f}",
            pred_med["estimator"] <= TARGETS["predict_1row_ms"],
        ),
    ]
    print()
    for what, value, ref, met in checks:
        print(f"{what:<40}{value:>9}  {'met   ' if met else 'MISSED'}  (target {ref})")

    result = {
        "workload": {
            "n_rows": n_rows,
            "n_features": 28,
            "batch_size": BATCH,
            "steps_per_round": n_rows // BATCH,
            "model": "MLP 28-256-256-2 relu, Adam 1e-3, sparse softmax CE from logits",
        },
        "method": {
            "rounds": rounds,
            "order": "ABBA",
            "statistic": "median over rounds",
            "warmup": "one untimed round per variant; predict: 20 calls each",
        },
        "machine": {**info, "loadavg_end": os.getloadavg()},
        "fit": {
            "examples_per_s_median": fit_med,
            "examples_per_s_rounds": fit,
            "warmup_s": warm,
            "ratio": ratio,
            "ratio_vs": best,
            "target": TARGETS["fit_ratio"],
        },
        "partial_fit": {
            "calls_per_s_median": pf_med,
            "calls_per_s_rounds": pf,
            "calls_per_round": pf_calls,
            "target": TARGETS["partial_fit_calls_per_s"],
        },
        "predict_1row_ms": {
            "median": pred_med,
            "p90": {k: float(np.percentile(v, 90)) for k, v in pred.items()},
            "calls": pred_calls,
            "target": TARGETS["predict_1row_ms"],
        },
    }
    out = args.out or ROOT / "benchmarks" / "results" / ("estimator-quick.json" if args.quick else "estimator.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
