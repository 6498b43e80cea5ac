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

Method: one process. Every variant gets one untimed warm-up round (tracing, first checkpoint).
Rounds then alternate the order ABBA-style (a b c d, d c b a, a b c d, ...) so that drifts of a
noisy machine hit every variant alike; figures are medians over rounds. The best round is also
kept: other processes only ever slow a round down, so it approximates a quiet machine. Results go
to stdout and, as JSON, to ``benchmarks/results/estimator.json`` (with machine info, load average
and the git state of the sources).

Usage::

    .venv/bin/python benchmarks/bench_estimator.py              # full run, 9 rounds (~3-5 min, 2 cores)
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


def keras_mlp(spe: int | None = None) -> keras.Model:
    """The MLP as a Keras model; compiled for `model.fit` when `spe` (steps_per_execution) is given."""
    dense = keras.layers.Dense
    model = keras.Sequential([keras.Input((28,)), dense(256, "relu"), dense(256, "relu"), dense(2)])
    if spe is not None:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        # jit_compile=False: no XLA, like the Estimator (Keras "auto" is off on CPU-only hosts anyway).
        model.compile(keras.optimizers.Adam(1e-3), loss, steps_per_execution=spe, jit_compile=False)
    return model


class HandModel:
    """The reference: the same MLP trained by hand-written `tf.function`s."""

    def __init__(self) -> None:
        self.model, self.opt = keras_mlp(), keras.optimizers.Adam(1e-3)
        self.opt.build(self.model.trainable_variables)
        self.predict = tf.function(lambda xb: tf.argmax(self.model(xb, training=False), 1))

    def _step(self, xb, yb):
        with tf.GradientTape() as tape:
            logits = self.model(xb, training=True)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(yb, logits))
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

    def epoch_runner(self, x, y, steps_per_call: int = 32):
        """A function training one epoch (len(x) // BATCH steps) from a tf.data iterator built here, once."""
        n, steps = len(x), len(x) // BATCH
        xt, yt = tf.constant(x), tf.constant(y)

        def epoch_batches(epoch):
            seed = tf.stack([tf.constant(0, tf.int64), epoch])
            perm = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), seed=seed)
            return tf.data.Dataset.from_tensor_slices(tf.reshape(perm[: steps * BATCH], [-1, BATCH]))

        gather = lambda idx: (tf.gather(xt, idx), tf.gather(yt, idx))  # noqa: E731
        ds = tf.data.Dataset.range(2**62).flat_map(epoch_batches)
        iterator = iter(ds.map(gather, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE))

        def run() -> None:
            for start in range(0, steps, steps_per_call):
                loss = self.train_many(iterator, tf.constant(min(steps_per_call, steps - start)))
            float(loss)  # wait for the last step

        return run


def abba(variants: dict, units: dict, rounds: int) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Per-round rates (units/s) of each variant in ABBA order, after one untimed warm-up call each."""
    names, warm, out = list(variants), {}, {k: [] for k in variants}
    for name in names:
        t0 = time.perf_counter()
        variants[name]()
        warm[name] = time.perf_counter() - t0
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            t0 = time.perf_counter()
            variants[name]()
            out[name].append(units[name] / (time.perf_counter() - t0))
        print(f"  round {r + 1}/{rounds}: " + ", ".join(f"{k} {out[k][-1]:,.0f}" for k in names), flush=True)
    return out, warm


def interleaved_latency_ms(fns: dict, calls: int) -> dict[str, list[float]]:
    """Per-call latencies (ms), alternating the functions ABBA call by call, after 20 warm-up calls each."""
    for fn in fns.values():
        for _ in range(20):
            fn()
    out = {k: [] for k in fns}
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
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "gpus": len(tf.config.list_physical_devices("GPU")),
        "git_commit": git("rev-parse", "--short", "HEAD"),
        "git_modified_sources": git("status", "--porcelain", "estimators", "feeders").splitlines(),
        "loadavg_start": os.getloadavg(),
    }


def summary(rounds: dict[str, list[float]], best=max) -> dict:
    return {k: {"median": statistics.median(v), "best": best(v), "rounds": v} for k, v in rounds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=9, help="timed ABBA rounds (one epoch per variant); default 9")
    parser.add_argument("--quick", action="store_true", help="smoke run: 20k rows, 1 round, few calls")
    parser.add_argument("--out", type=Path, help="JSON path; default benchmarks/results/estimator[-quick].json")
    args = parser.parse_args()
    n_rows, rounds = (20_000, 1) if args.quick else (200_000, args.rounds)
    pf_calls, pred_calls = (50, 20) if args.quick else (300, 200)
    info = machine_info()
    print(
        f"machine: {info['cpu_count']} CPUs ({info['cpu_model']}), Python {info['python']}, TF {info['tensorflow']}, "
        f"Keras {info['keras']}, git {info['git_commit']}{' (modified)' * bool(info['git_modified_sources'])}, "
        f"load {info['loadavg_start'][0]:.2f}"
    )
    if info["loadavg_start"][0] > 0.5 * (os.cpu_count() or 1):
        print("WARNING: other processes are busy on this machine; expect contended, noisier figures.")

    x, y = make_classification(n_rows, n_features=28, n_informative=20, random_state=0)
    x, y = x.astype(np.float32), y.astype(np.int32)
    xb, yb, x1, steps = x[:BATCH], y[:BATCH], x[:1], n_rows // BATCH
    keras.utils.set_random_seed(0)
    with tempfile.TemporaryDirectory(prefix="bench_est_") as model_dir:
        est = Estimator(model_fn, model_dir=model_dir, config=RunConfig(tf_random_seed=0, log_step_count_steps=0))
        hand, k1, k32 = HandModel(), keras_mlp(spe=1), keras_mlp(spe=32)
        print(f"training: warm-up, then {rounds} ABBA rounds of {steps} steps x {BATCH} rows (examples/s)")
        train = {
            "estimator": lambda: est.fit(x, y, steps=steps, batch_size=BATCH),
            "keras_spe1": lambda: k1.fit(x, y, batch_size=BATCH, epochs=1, verbose=0),
            "keras_spe32": lambda: k32.fit(x, y, batch_size=BATCH, epochs=1, verbose=0),
            "hand_loop": hand.epoch_runner(x, y),
        }
        examples = dict.fromkeys(train, steps * BATCH) | {"keras_spe1": n_rows, "keras_spe32": n_rows}
        fit, warm = abba(train, examples, rounds)
        print(f"partial_fit: {pf_calls} calls per round (calls/s)")
        steps_1 = {
            "estimator": lambda: [est.partial_fit(xb, yb, steps=1) for _ in range(pf_calls)],
            "tf_function_step": lambda: [float(hand.train_step(xb, yb)) for _ in range(pf_calls)],
        }
        pf, _ = abba(steps_1, dict.fromkeys(steps_1, pf_calls), max(rounds, 3))
        forward = {"estimator": lambda: est.predict(x1), "tf_function_forward": lambda: hand.predict(x1).numpy()}
        pred = interleaved_latency_ms(forward, pred_calls)

    fit_s, pf_s, pred_s = summary(fit), summary(pf), summary(pred, best=min)
    ref = max((k for k in fit_s if k != "estimator"), key=lambda k: fit_s[k]["median"])
    ratio = fit_s["estimator"]["median"] / fit_s[ref]["median"]
    ratio_best = fit_s["estimator"]["best"] / max(v["best"] for k, v in fit_s.items() if k != "estimator")
    print("\nwarm-up s: " + ", ".join(f"{k} {v:.2f}" for k, v in warm.items()))
    print(f"\n{'training variant':<18}{'examples/s':>12}{'ms/step':>9}{'vs ' + ref:>14}{'best round':>12}")
    for k, v in fit_s.items():
        med = v["median"]
        print(f"{k:<18}{med:>12,.0f}{BATCH / med * 1e3:>9.3f}{med / fit_s[ref]['median']:>14.3f}{v['best']:>12,.0f}")
    pf_est, pred_est = pf_s["estimator"]["median"], pred_s["estimator"]["median"]
    checks = [  # (what, measured, target and reference, met)
        (f"fit: estimator / {ref}", f"{ratio:.3f}", f">= {TARGETS['fit_ratio']}; of best rounds {ratio_best:.3f}"),
        (
            "partial_fit(256 rows) calls/s",
            f"{pf_est:,.0f}",
            f">= {TARGETS['partial_fit_calls_per_s']:.0f}; bare step {pf_s['tf_function_step']['median']:,.0f}",
        ),
        (
            "predict(X[:1]) ms",
            f"{pred_est:.3f}",
            f"<= {TARGETS['predict_1row_ms']}; bare forward {pred_s['tf_function_forward']['median']:.3f}",
        ),
    ]
    met = [
        ratio >= TARGETS["fit_ratio"],
        pf_est >= TARGETS["partial_fit_calls_per_s"],
        pred_est <= TARGETS["predict_1row_ms"],
    ]
    print()
    for (what, value, ref_text), ok in zip(checks, met):
        print(f"{what:<32}{value:>8}  {'met   ' if ok else 'MISSED'}  (target {ref_text})")

    result = {
        "workload": {"n_rows": n_rows, "batch_size": BATCH, "steps_per_round": steps, "model": "MLP 28-256-256-2"},
        "method": {"rounds": rounds, "order": "ABBA", "statistic": "median", "warmup": "one untimed round each"},
        "machine": info | {"loadavg_end": os.getloadavg()},
        "targets": TARGETS,
        "fit_examples_per_s": fit_s | {"warmup_s": warm, "ratio": ratio, "ratio_vs": ref, "ratio_of_best": ratio_best},
        "partial_fit_calls_per_s": pf_s | {"calls_per_round": pf_calls},
        "predict_1row_ms": pred_s,
        "met": dict(zip(["fit_ratio", "partial_fit", "predict"], met)),
    }
    out = args.out or ROOT / "benchmarks" / "results" / ("estimator-quick.json" if args.quick else "estimator.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
