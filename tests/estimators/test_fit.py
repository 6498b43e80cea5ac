"""fit / partial_fit semantics: steps vs max_steps, inputs, monitors, no retracing."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from estimators import Estimator, RunConfig
from estimators.monitors import BaseMonitor, EveryN
from tests import helpers
from tests.helpers import mlp_fn

PARAMS = {"n_classes": 3}


def _est(model_dir, **config):
    return Estimator(
        mlp_fn, model_dir=model_dir, params=PARAMS, config=RunConfig(tf_random_seed=0, log_step_count_steps=0, **config)
    )


def test_fit_twice_with_steps_trains_200_steps(model_dir, iris):
    x, y = iris
    est = _est(model_dir).fit(x, y, steps=100).fit(x, y, steps=100)
    assert est.evaluate(x, y)["global_step"] == 200
    assert est.latest_checkpoint().endswith("model.ckpt-200")


def test_fit_twice_with_max_steps_trains_100_steps(model_dir, iris):
    x, y = iris
    est = _est(model_dir).fit(x, y, max_steps=100).fit(x, y, max_steps=100)
    assert est.evaluate(x, y)["global_step"] == 100


def test_fit_returns_self(model_dir, iris):
    est = _est(model_dir)
    assert est.fit(*iris, steps=1) is est


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": 10, "max_steps": 10}, "Can not provide both steps and max_steps"),
        ({"steps": 0}, r"Invalid value for argument `steps`. Received: steps=0"),
        ({"max_steps": -3}, r"max_steps=-3. Expected a positive integer"),
        ({"batch_size": -3}, r"Received: batch_size=-3. Expected a positive integer"),
    ],
)
def test_invalid_fit_arguments_are_value_errors(model_dir, iris, kwargs, message):
    with pytest.raises(ValueError, match=message):
        _est(model_dir).fit(*iris, **kwargs)


def test_x_and_input_fn_are_exclusive(model_dir, iris):
    x, y = iris
    with pytest.raises(ValueError, match="not both"):
        _est(model_dir).fit(x, y, input_fn=lambda: (x, y), steps=1)
    with pytest.raises(ValueError, match="Either x or input_fn must be provided"):
        _est(model_dir).fit(steps=1)


def test_input_fn_may_return_a_dataset_or_a_tensor_pair(model_dir, iris):
    x, y = iris
    est = _est(model_dir)
    est.fit(
        input_fn=lambda: tf.data.Dataset.from_tensor_slices((x, y)).shuffle(150, seed=0).batch(16).repeat(), steps=20
    )
    est.fit(input_fn=lambda: (tf.constant(x), tf.constant(y)), steps=20)
    assert est.evaluate(input_fn=lambda: tf.data.Dataset.from_tensor_slices((x, y)).batch(50))["global_step"] == 40


def test_finite_input_fn_stops_training_when_exhausted(model_dir, iris):
    x, y = iris
    est = _est(model_dir).fit(input_fn=lambda: tf.data.Dataset.from_tensor_slices((x, y)).batch(10), steps=1000)
    assert est.evaluate(x, y)["global_step"] == 15  # one epoch of 150 rows


def test_dict_features_feed_multi_input_model_fns(model_dir, iris):
    import keras

    from estimators import optimize_loss

    def fn(features, targets):
        merged = tf.concat([features["a"], features["b"]], axis=1)
        logits = keras.layers.Dense(3)(merged)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits))
        return tf.argmax(logits, 1), loss, optimize_loss(loss, "Adam", 0.05)

    x, y = iris
    feats = {"a": x[:, :2], "b": x[:, 2:]}
    est = Estimator(fn, model_dir=model_dir, config=RunConfig(tf_random_seed=0, log_step_count_steps=0)).fit(
        feats, y, steps=200
    )
    assert est.evaluate(feats, y, metrics=["accuracy"])["accuracy"] > 0.8
    assert est.predict(feats).shape == (150,)
    with pytest.raises(ValueError, match=r"missing \['b'\]"):
        est.predict({"a": x[:, :2]})


def test_partial_fit_keeps_the_model_in_memory_without_retracing(model_dir, iris):
    x, y = iris
    est = _est(model_dir)
    est.partial_fit(x[:32], y[:32])
    traces = helpers.TRACES["count"]
    for i in range(20):
        est.partial_fit(x[i : i + 32], y[i : i + 32])
    assert helpers.TRACES["count"] == traces
    assert est.evaluate(x, y)["global_step"] == 21
    assert est.latest_checkpoint() is None  # no checkpoint per call
    est.save_checkpoint()
    assert est.latest_checkpoint().endswith("-21")


def test_partial_fit_with_steps_and_batches_uses_the_feeder(model_dir, iris):
    x, y = iris
    est = _est(model_dir).partial_fit(x, y, steps=5, batch_size=16)
    assert est.evaluate(x, y)["global_step"] == 5


class Recorder(BaseMonitor):
    def __init__(self):
        super().__init__()
        self.calls = []

    def begin(self, max_steps=None):
        self.calls.append(("begin", max_steps))

    def step_begin(self, step):
        self.calls.append(("step_begin", step))
        return []

    def step_end(self, step, outputs):
        self.calls.append(("step_end", step, round(outputs["loss"], 6) == round(outputs["loss"], 6)))
        return False

    def end(self):
        self.calls.append(("end",))


def test_monitor_hooks_are_called_for_every_step(model_dir, iris):
    rec = Recorder()
    _est(model_dir).fit(*iris, steps=3, monitors=[rec])
    assert rec.calls == [
        ("begin", 3),
        ("step_begin", 1), ("step_end", 1, True),
        ("step_begin", 2), ("step_end", 2, True),
        ("step_begin", 3), ("step_end", 3, True),
        ("end",),
    ]  # fmt: skip


def test_every_n_monitors_see_exactly_their_steps(model_dir, iris):
    seen = []

    class Every10(EveryN):
        def every_n_step_end(self, step, outputs):
            seen.append(step)

    _est(model_dir).fit(*iris, steps=45, monitors=[Every10(every_n_steps=10, first_n_steps=2)])
    assert seen == [1, 2, 10, 20, 30, 40]


def test_a_callable_monitor_can_stop_training_at_an_exact_step(model_dir, iris):
    est = _est(model_dir).fit(*iris, steps=100, monitors=[lambda step, outputs: step >= 7])
    assert est.evaluate(*iris)["global_step"] == 7
    assert est.latest_checkpoint().endswith("-7")


def test_monitors_must_be_instances(model_dir, iris):
    with pytest.raises(TypeError, match="Did you mean Recorder"):
        _est(model_dir).fit(*iris, steps=1, monitors=[Recorder])


def test_save_checkpoints_steps_writes_checkpoints_on_schedule(model_dir, iris):
    est = _est(model_dir, save_checkpoints_steps=10, keep_checkpoint_max=3).fit(*iris, steps=45)
    steps = sorted(
        int(p.rsplit("-", 1)[1]) for p in tf.train.get_checkpoint_state(est.model_dir).all_model_checkpoint_paths
    )
    assert steps == [30, 40, 45]


def test_training_reduces_the_loss_and_predicts_well(model_dir, iris):
    x, y = iris
    est = _est(model_dir)
    before = None
    est.fit(x, y, steps=1)
    before = est.evaluate(x, y)["loss"]
    est.fit(x, y, steps=300)
    results = est.evaluate(x, y, metrics=["accuracy"])
    assert results["loss"] < before / 3
    assert results["accuracy"] > 0.9
    assert np.mean(est.predict(x)["class"] == y) == pytest.approx(results["accuracy"])


def _recording_fn(features, targets):
    """Linear regression that keeps the first column of its latest training batch in `seen`."""
    seen = tf.Variable(tf.zeros([4]), trainable=False, name="seen")
    w = tf.Variable(tf.zeros([2]), name="w")
    pred = tf.linalg.matvec(features, w)
    loss = tf.reduce_mean(tf.square(pred - targets))
    seen.assign(features[:, 0])
    return pred, loss, helpers.optimize_loss(loss, "SGD", 0.01)


def _recorded_batches(est, x, y, steps):
    from estimators.monitors import CaptureVariable

    capture = CaptureVariable("seen", every_n=1)
    est.fit(x, y, steps=steps, batch_size=4, monitors=[capture])
    return [tuple(v) for _, v in sorted(capture.values.items())]


def test_repeated_fits_on_the_same_arrays_reuse_the_feeder_with_new_permutations(model_dir):
    x = np.stack([np.arange(64, dtype=np.float32), np.ones(64, np.float32)], axis=1)
    y = np.zeros(64, np.float32)
    est = Estimator(_recording_fn, model_dir=model_dir, config=RunConfig(tf_random_seed=0, log_step_count_steps=0))
    first = _recorded_batches(est, x, y, 4)
    feeder = est._state.inputs._train_feeder[1]  # internal: the reuse is not visible otherwise
    second = _recorded_batches(est, x.copy(), y.copy(), 4)  # equal content, new objects: still reused
    assert est._state.inputs._train_feeder[1] is feeder
    assert first != second  # each fit draws a new permutation
    assert all(set(b) <= set(range(64)) for b in first + second)


def test_fit_after_an_in_place_change_to_x_trains_on_the_new_values(model_dir):
    x = np.stack([np.arange(64, dtype=np.float32), np.ones(64, np.float32)], axis=1)
    y = np.zeros(64, np.float32)
    est = Estimator(_recording_fn, model_dir=model_dir, config=RunConfig(tf_random_seed=0, log_step_count_steps=0))
    _recorded_batches(est, x, y, 2)
    x[:, 0] = -1.0  # in place: same object, new content
    assert all(set(b) == {-1.0} for b in _recorded_batches(est, x, y, 2))
