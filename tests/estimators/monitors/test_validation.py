"""ValidationMonitor: in-memory weights, EVAL mode, finite data, early stopping, the best checkpoint."""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from estimators import Estimator, ModeKeys, RunConfig, optimize_loss
from estimators.monitors import BaseMonitor, CaptureVariable, ValidationMonitor

X = np.linspace(-1, 1, 64, dtype=np.float32).reshape(-1, 1)
Y_TRAIN = 2.0 * X[:, 0]  # training pulls w from 0 towards 2 ...
Y_VAL = 1.0 * X[:, 0]  # ... so validation loss (w - 1)^2 falls, then rises once w passes 1.


def scale_fn(features, targets):
    w = tf.Variable(0.0, name="w")
    pred = w * features[:, 0]
    loss = tf.reduce_mean(tf.square(pred - targets))
    return pred, loss, optimize_loss(loss, "SGD", 0.05)


def _est(model_dir):
    return Estimator(scale_fn, model_dir=model_dir, config=RunConfig(tf_random_seed=0, log_step_count_steps=0))


def test_early_stopping_stops_when_validation_loss_has_risen_for_the_given_rounds(model_dir):
    monitor = ValidationMonitor(X, Y_VAL, every_n_steps=10, early_stopping_rounds=40)
    capture = CaptureVariable("w", every_n=10, first_n=0)
    est = _est(model_dir).fit(X, Y_TRAIN, steps=2000, batch_size=64, monitors=[monitor, capture])
    steps = sorted(capture.values)
    expected_best = min(steps, key=lambda s: abs(capture.values[s] - 1.0))
    assert monitor.best_step == expected_best
    assert monitor.early_stopped
    assert est.get_variable_value("global_step") == expected_best + 40
    losses = [r["loss"] for _, r in monitor.history]
    assert losses[0] > min(losses) < losses[-1]  # it really fell, then rose


def test_keep_best_saves_the_best_weights_and_evaluate_best_reproduces_the_best_value(model_dir):
    monitor = ValidationMonitor(X, Y_VAL, every_n_steps=10, early_stopping_rounds=40, keep_best=True)
    est = _est(model_dir).fit(X, Y_TRAIN, steps=2000, batch_size=64, monitors=[monitor])
    best = est.evaluate(X, Y_VAL, checkpoint_path="best")
    assert best["global_step"] == monitor.best_step
    assert best["loss"] == pytest.approx(monitor.best_value, rel=1e-6)
    latest = est.evaluate(X, Y_VAL)
    assert latest["global_step"] == monitor.best_step + 40 and latest["loss"] > best["loss"]
    np.testing.assert_allclose(est.predict(X, checkpoint_path="best"), X[:, 0] * _w_at(est, "best"), rtol=1e-6)
    assert est.latest_checkpoint().endswith(f"-{monitor.best_step + 40}")  # latest and best both kept


def _w_at(est, which):
    path = tf.train.latest_checkpoint(os.path.join(est.model_dir, which))
    return tf.train.load_checkpoint(path).get_tensor("model/w/.ATTRIBUTES/VARIABLE_VALUE")


def test_validation_sees_the_weights_in_memory_not_a_stale_checkpoint(model_dir):
    # The seed's monitor read the last checkpoint; with checkpoints every 600 s it saw none of the training.
    monitor = ValidationMonitor(X, Y_VAL, every_n_steps=5)
    capture = CaptureVariable("w", every_n=5, first_n=0)
    _est(model_dir).fit(X, Y_TRAIN, steps=20, batch_size=64, monitors=[monitor, capture])
    for step, results in monitor.history:
        expected = float(np.mean((capture.values[step] * X[:, 0] - Y_VAL) ** 2))
        assert results["loss"] == pytest.approx(expected, rel=1e-5)
        assert results["global_step"] == step


def test_validation_runs_the_model_in_eval_mode(model_dir, iris):
    modes = []

    def fn(features, targets, mode):
        modes.append(mode)
        hidden = keras.layers.Dropout(0.9)(keras.layers.Dense(8)(features), training=mode == ModeKeys.TRAIN)
        logits = keras.layers.Dense(3)(hidden)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits))
        return tf.argmax(logits, 1), loss, optimize_loss(loss, "SGD", 0.01)

    x, y = iris
    monitor = ValidationMonitor(x, y, every_n_steps=5)
    est = Estimator(fn, model_dir=model_dir, config=RunConfig(tf_random_seed=0, log_step_count_steps=0))
    est.fit(x, y, steps=10, monitors=[monitor])
    assert ModeKeys.EVAL in modes
    # Deterministic (no dropout) evaluation: the monitor's result equals a later evaluate of the same weights.
    assert monitor.history[-1][1]["loss"] == pytest.approx(est.evaluate(x, y)["loss"], rel=1e-6)


def test_an_endless_validation_input_without_eval_steps_is_an_error_not_a_hang(model_dir):
    endless = lambda: tf.data.Dataset.from_tensor_slices((X, Y_VAL)).batch(8).repeat()  # noqa: E731
    with pytest.raises(ValueError, match="endless"):
        _est(model_dir).fit(X, Y_TRAIN, steps=10, monitors=[ValidationMonitor(input_fn=endless, every_n_steps=5)])
    monitor = ValidationMonitor(input_fn=endless, eval_steps=2, every_n_steps=5)
    _est(model_dir + "2").fit(X, Y_TRAIN, steps=10, monitors=[monitor])
    assert [s for s, _ in monitor.history] == [5, 10]


def test_early_stopping_on_a_maximised_metric(model_dir, iris):
    from tests.helpers import mlp_fn

    x, y = iris
    monitor = ValidationMonitor(
        x,
        y,
        every_n_steps=20,
        metrics=["accuracy"],
        early_stopping_metric="accuracy",
        early_stopping_metric_minimize=False,
        early_stopping_rounds=60,
    )
    est = Estimator(
        mlp_fn, model_dir=model_dir, params={"n_classes": 3}, config=RunConfig(tf_random_seed=0, log_step_count_steps=0)
    )
    est.fit(x, y, steps=3000, monitors=[monitor])
    accuracies = [r["accuracy"] for _, r in monitor.history]
    assert monitor.best_value == max(accuracies)
    assert monitor.early_stopped and est.get_variable_value("global_step") < 3000
    with pytest.raises(ValueError, match="not among the evaluation results"):
        est.fit(x, y, steps=40, monitors=[ValidationMonitor(x, y, every_n_steps=20, early_stopping_metric="auc")])


def test_best_checkpoint_missing_is_a_clear_error(model_dir):
    est = _est(model_dir).fit(X, Y_TRAIN, steps=2)
    with pytest.raises(ValueError, match="keep_best=True"):
        est.evaluate(X, Y_VAL, checkpoint_path="best")


def test_a_monitor_reused_for_a_new_model_starts_afresh(model_dir):
    monitor = ValidationMonitor(X, Y_VAL, every_n_steps=10, early_stopping_rounds=40, keep_best=True)
    _est(model_dir).fit(X, Y_TRAIN, steps=2000, batch_size=64, monitors=[monitor])
    first = (monitor.best_step, monitor.best_value, len(monitor.history))
    # The same problem again in a new model_dir: the first run's best must not shadow this one's.
    est = _est(model_dir + "2").fit(X, Y_TRAIN, steps=2000, batch_size=64, monitors=[monitor])
    assert (monitor.best_step, monitor.best_value, len(monitor.history)) == first
    assert monitor.early_stopped and monitor.history[0][0] == 10
    best = est.evaluate(X, Y_VAL, checkpoint_path="best")
    assert best["global_step"] == monitor.best_step and best["loss"] == pytest.approx(monitor.best_value, rel=1e-6)


def test_a_monitor_continuing_the_same_model_keeps_its_history(model_dir):
    monitor = ValidationMonitor(X, Y_VAL, every_n_steps=10)
    est = _est(model_dir).fit(X, Y_TRAIN, steps=20, batch_size=64, monitors=[monitor])
    est.fit(X, Y_TRAIN, steps=20, batch_size=64, monitors=[monitor])
    assert [step for step, _ in monitor.history] == [10, 20, 30, 40]
    assert monitor.best_step == min(monitor.history, key=lambda h: h[1]["loss"])[0]


def test_the_final_weights_are_validated_when_training_ends_between_validation_steps(model_dir):
    monitor = ValidationMonitor(X, Y_TRAIN, every_n_steps=20, keep_best=True)
    est = _est(model_dir).fit(X, Y_TRAIN, steps=15, batch_size=16, monitors=[monitor])
    assert [step for step, _ in monitor.history] == [15]
    assert monitor.best_step == 15
    assert est.evaluate(X, Y_TRAIN, checkpoint_path="best")["loss"] == pytest.approx(monitor.best_value, rel=1e-5)


def test_validation_results_are_reported_to_other_monitors_as_val_metrics(model_dir):
    class Recorder(BaseMonitor):
        def __init__(self):
            super().__init__()
            self.reported = []

        def metrics_reported(self, step, values):
            self.reported.append((step, values))

    recorder = Recorder()
    _est(model_dir).fit(
        X, Y_TRAIN, steps=20, batch_size=64, monitors=[ValidationMonitor(X, Y_VAL, every_n_steps=10), recorder]
    )
    assert [step for step, _ in recorder.reported] == [10, 20]
    assert set(recorder.reported[0][1]) == {"val_loss"} and np.isfinite(recorder.reported[0][1]["val_loss"])
