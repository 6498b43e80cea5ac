"""`make demo`: train and evaluate a seed-style custom model_fn on scikit-learn's digits.

Run with `python -m estimators.demo [--model-dir DIR] [--steps N]`. Running it again resumes from the
checkpoints in the model directory and trains N more steps.
"""

from __future__ import annotations

import argparse
import logging
import os
import time

import keras
import numpy as np
import tensorflow as tf
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from estimators import Estimator, ModeKeys, RunConfig, optimize_loss


def model_fn(features, targets, mode, params):
    """A 2016-style model_fn: layers built inline, a loss, and a train_op from optimize_loss."""
    hidden = keras.layers.Dense(params["hidden_units"], activation="relu")(features)
    hidden = keras.layers.Dropout(0.1)(hidden, training=mode == ModeKeys.TRAIN)
    logits = keras.layers.Dense(params["n_classes"])(hidden)
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits))
    train_op = optimize_loss(loss, optimizer="Adagrad", learning_rate=params["learning_rate"])
    return {"class": tf.argmax(logits, 1), "prob": tf.nn.softmax(logits)}, loss, train_op


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", default=os.path.join("demo_output", "digits_model"))
    parser.add_argument("--steps", type=int, default=1500)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("absl").setLevel(logging.WARNING)

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)

    est = Estimator(
        model_fn,
        model_dir=args.model_dir,
        config=RunConfig(tf_random_seed=0, save_checkpoints_steps=500, log_step_count_steps=250),
        params={"hidden_units": 128, "n_classes": 10, "learning_rate": 0.1},
    )
    start = time.perf_counter()
    est.fit(x_train, y_train, steps=args.steps, batch_size=64)
    seconds = time.perf_counter() - start
    results = est.evaluate(x_test, y_test, metrics=["accuracy"])
    predicted = est.predict(x_test[:10], outputs=["class"])["class"]

    print()
    print(f"Trained {args.steps} steps in {seconds:.1f} s (global step now {results['global_step']}).")
    print(f"Held-out digits: loss {results['loss']:.4f}, accuracy {results['accuracy']:.4f}")
    print(f"First ten predictions: {predicted.tolist()} (true: {y_test[:10].tolist()})")
    print(f"Checkpoints: {os.path.abspath(est.model_dir)} (latest: {os.path.basename(est.latest_checkpoint())})")
    print("Run `make demo` again to resume from them and train further.")
    return results


if __name__ == "__main__":
    main()
