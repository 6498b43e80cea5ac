"""The model_fn contract: signatures injected by name, returns checked with mode-naming messages."""

from __future__ import annotations

import functools
import gc
import json
import os
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from estimators import Estimator, ModeKeys, RunConfig, get_global_step, optimize_loss
from tests.helpers import linear_fn, mlp_fn, spec_fn

CFG = RunConfig(tf_random_seed=0, log_step_count_steps=0)


def _regression(n=64):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    return x, (x @ np.array([1.0, -2.0, 0.5], np.float32)).astype(np.float32)


def test_two_argument_model_fn_learns_a_linear_function(model_dir):
    x, y = _regression()
    est = Estimator(linear_fn, model_dir=model_dir, config=CFG).fit(x, y, steps=300, batch_size=16)
    assert est.evaluate(x, y)["loss"] < 0.05
    assert est.predict(x).shape == (64,)


def test_three_argument_model_fn_receives_each_mode(model_dir, iris):
    seen = []

    def fn(features, targets, mode):
        seen.append(mode)
        logits = keras.layers.Dense(3)(features)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits))
        return tf.argmax(logits, 1), loss, optimize_loss(loss, "SGD", 0.1)

    x, y = iris
    est = Estimator(fn, model_dir=model_dir, config=CFG).fit(x, y, steps=2)
    est.evaluate(x, y)
    est.predict(x)
    assert {ModeKeys.TRAIN, ModeKeys.EVAL, ModeKeys.INFER} <= set(seen)


def test_four_argument_model_fn_receives_params(model_dir, iris):
    x, y = iris
    est = Estimator(mlp_fn, model_dir=model_dir, config=CFG, params={"n_classes": 3, "hidden": 8})
    est.fit(x, y, steps=5)
    assert est.get_variable_value("dense/kernel").shape == (4, 8)
    assert est.params == {"n_classes": 3, "hidden": 8}


def test_five_argument_model_fn_with_labels_config_and_estimator_spec(model_dir, iris):
    x, y = iris
    est = Estimator(spec_fn, model_dir=model_dir, config=CFG, params={"n_classes": 3}).fit(x, y, steps=100)
    results = est.evaluate(x, y)
    assert results["my_accuracy"] == pytest.approx(results["my_auc_like"], abs=1e-6)
    assert results["my_accuracy"] > 0.7


def test_functools_partial_and_callable_objects_are_model_fns(model_dir, iris):
    x, y = iris

    class Model:
        def __call__(self, features, targets, mode, params):
            return mlp_fn(features, targets, mode, params)

    partial = functools.partial(mlp_fn, params={"n_classes": 3})
    Estimator(partial, model_dir=model_dir + "1", config=CFG).fit(x, y, steps=2)
    est = Estimator(Model(), model_dir=model_dir + "2", config=CFG, params={"n_classes": 3}).fit(x, y, steps=2)
    assert est.predict(x)["class"].shape == (150,)


def test_params_to_a_model_fn_without_params_is_a_value_error_at_fit(model_dir):
    est = Estimator(linear_fn, model_dir=model_dir, params={"a": 1})  # scikit-learn: __init__ only stores
    with pytest.raises(ValueError, match="does not have a params argument"):
        est.fit(np.zeros((4, 2), np.float32), np.zeros(4, np.float32), steps=1)
    assert not os.path.exists(os.path.join(model_dir, "skflow.json"))


def test_a_model_fn_argument_the_estimator_cannot_pass_is_named_at_fit_without_a_tf_trace(model_dir):
    def six(features, labels, mode, params, config, learning_rate):
        raise AssertionError("never called")

    with pytest.raises(
        TypeError, match=r"takes argument\(s\) \['learning_rate'\] that the Estimator cannot pass"
    ) as info:
        Estimator(six, model_dir=model_dir).fit(np.zeros((4, 2), np.float32), np.zeros(4, np.float32), steps=1)
    assert info.traceback[-1].path.name == "model_fn.py"  # raised before TensorFlow traces anything


def test_a_first_fit_that_fails_before_its_first_checkpoint_leaves_no_skflow_json(model_dir):
    def returns_nothing(features, targets):
        return None

    with pytest.raises(ValueError, match="model_fn must return"):
        Estimator(returns_nothing, model_dir=model_dir).fit(np.zeros((4, 2), np.float32), np.zeros(4), steps=1)
    assert os.listdir(model_dir) == []  # created (monitors write there from their begin), but empty
    # so a fixed model_fn on other inputs is not held to the failed fit's signature
    Estimator(linear_fn, model_dir=model_dir).fit(np.zeros((4, 3), np.float32), np.zeros(4, np.float32), steps=1)
    with open(os.path.join(model_dir, "skflow.json")) as f:
        assert json.load(f)["features"]["shape"] == [3]


def test_model_dir_none_uses_a_temporary_directory_with_a_warning_at_first_use():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = Estimator(linear_fn)  # no warning, no directory yet
    with pytest.warns(UserWarning, match="temporary folder"):
        directory = est.model_dir
    assert os.path.isdir(directory)
    del est
    gc.collect()
    assert not os.path.exists(directory)  # removed with its Estimator


def test_a_fitted_estimator_is_freed_by_reference_counting_with_its_temporary_directory(iris):
    gc.disable()  # no reference cycle may keep a fitted Estimator (and its directory) alive
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            est = Estimator(mlp_fn, params={"n_classes": 3}, config=RunConfig(verbose=0)).fit(*iris, steps=5)
        directory = est.model_dir
        est.evaluate(*iris)
        del est
        assert not os.path.exists(directory)
    finally:
        gc.enable()


def _bad_fn(kind):
    def fn(features, targets, mode):
        logits = keras.layers.Dense(1)(features)
        loss = tf.reduce_mean(tf.square(logits))
        train_op = optimize_loss(loss, "SGD", 0.1)
        if kind == "no_train_op":
            return logits, loss, None
        if kind == "no_loss" and mode == ModeKeys.EVAL:
            return logits, None, train_op
        if kind == "vector_loss":
            return logits, tf.square(logits), train_op
        if kind == "no_predictions" and mode == ModeKeys.INFER:
            return None, loss, train_op
        if kind == "pair":
            return logits, loss
        return logits, loss, train_op

    return fn


@pytest.mark.parametrize(
    ("kind", "method", "message"),
    [
        ("no_train_op", "fit", r"Missing train_op.*mode 'train'"),
        ("no_loss", "evaluate", r"Missing loss.*mode 'eval'"),
        ("vector_loss", "fit", r"Loss must be scalar.*\[(None|\d+), 1\].*mode 'train'"),
        ("no_predictions", "predict", r"Missing predictions.*mode 'infer'"),
        ("pair", "fit", r"\(predictions, loss, train_op\).*tuple of length 2"),
    ],
)
def test_model_fn_returns_are_checked_with_the_mode_in_the_message(model_dir, kind, method, message):
    x, y = _regression(8)
    est = Estimator(_bad_fn(kind), model_dir=model_dir, config=CFG)
    if method != "fit":
        Estimator(_bad_fn("ok"), model_dir=model_dir, config=CFG).fit(x, y, steps=1)
    with pytest.raises(ValueError, match=message):
        if method == "fit":
            est.fit(x, y, steps=1)
        elif method == "evaluate":
            est.evaluate(x, y)
        else:
            est.predict(x)


def test_inline_layers_share_variables_across_calls_and_modes(model_dir, iris):
    x, y = iris
    est = Estimator(mlp_fn, model_dir=model_dir, config=CFG, params={"n_classes": 3})
    est.fit(x, y, steps=50)
    names = est.get_variable_names()
    assert [n for n in names if not n.startswith("optimizer_")] == [
        "dense/bias",
        "dense/kernel",
        "dense_1/bias",
        "dense_1/kernel",
        "global_step",
    ]
    first = est.predict(x)["prob"]
    est.evaluate(x, y)
    np.testing.assert_allclose(est.predict(x)["prob"], first)
    # A second Estimator in the same process names its variables the same way.
    other = Estimator(mlp_fn, model_dir=model_dir + "b", config=CFG, params={"n_classes": 3}).fit(x, y, steps=1)
    assert other.get_variable_names() == names


def test_inline_tf_variable_is_created_once_and_trained(model_dir):
    def fn(features, targets):
        w = tf.Variable(tf.zeros([3]), name="w")
        b = tf.Variable(0.0, name="b")
        pred = tf.linalg.matvec(features, w) + b
        loss = tf.reduce_mean(tf.square(pred - targets))
        return pred, loss, optimize_loss(loss, "SGD", 0.1)

    x, y = _regression()
    est = Estimator(fn, model_dir=model_dir, config=CFG).fit(x, y, steps=200)
    np.testing.assert_allclose(est.get_variable_value("w"), [1.0, -2.0, 0.5], atol=0.05)


def test_variable_initialised_from_a_traced_tensor_gets_a_clear_error(model_dir):
    def fn(features, targets):
        w = tf.Variable(tf.random.normal([3]) * tf.reduce_sum(features), name="w")
        pred = tf.linalg.matvec(features, w)
        loss = tf.reduce_mean(tf.square(pred - targets))
        return pred, loss, optimize_loss(loss, "SGD", 0.1)

    x, y = _regression(8)
    with pytest.raises(ValueError, match="callable initial value"):
        Estimator(fn, model_dir=model_dir, config=CFG).fit(x, y, steps=1)


def test_evaluate_and_predict_do_not_train(model_dir, iris):
    x, y = iris
    est = Estimator(mlp_fn, model_dir=model_dir, config=CFG, params={"n_classes": 3}).fit(x, y, steps=10)
    before = est.get_variable_value("dense/kernel")
    for _ in range(3):
        est.evaluate(x, y)
        est.predict(x)
    est.save_checkpoint()
    np.testing.assert_array_equal(est.get_variable_value("dense/kernel"), before)
    assert est.evaluate(x, y)["global_step"] == 10


def test_optimize_loss_outside_a_model_fn_raises():
    with pytest.raises(RuntimeError, match="inside a model_fn"):
        optimize_loss(tf.constant(1.0), "SGD", 0.1)


def test_optimize_loss_rejects_unknown_optimizer_names(model_dir):
    x, y = _regression(8)

    def fn(features, targets):
        pred = tf.squeeze(keras.layers.Dense(1)(features), -1)
        loss = tf.reduce_mean(tf.square(pred - targets))
        return pred, loss, optimize_loss(loss, "Adamax9", 0.1)

    with pytest.raises(ValueError, match="Unknown optimizer 'Adamax9'"):
        Estimator(fn, model_dir=model_dir, config=CFG).fit(x, y, steps=1)


def test_optimize_loss_accepts_instances_schedules_and_clipping(model_dir):
    x, y = _regression()
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.9)

    def fn(features, targets, mode):
        step = get_global_step()
        pred = tf.squeeze(keras.layers.Dense(1)(features), -1)
        loss = tf.reduce_mean(tf.square(pred - targets)) + 0.0 * tf.cast(step, tf.float32)
        return pred, loss, optimize_loss(loss, keras.optimizers.SGD, learning_rate=schedule, clip_gradients=1.0)

    est = Estimator(fn, model_dir=model_dir, config=CFG).fit(x, y, steps=200)
    assert est.evaluate(x, y)["loss"] < 0.1


def test_feature_engineering_fn_runs_before_model_fn_in_every_mode(model_dir):
    x, y = _regression()
    seen = []

    def scale(features, targets):
        seen.append(True)
        return features * 2.0, targets

    def fn(features, targets):
        w = tf.Variable(tf.zeros([3]), name="w")
        pred = tf.linalg.matvec(features, w)
        loss = tf.reduce_mean(tf.square(pred - targets))
        return pred, loss, optimize_loss(loss, keras.optimizers.SGD(learning_rate=0.05))

    est = Estimator(fn, model_dir=model_dir, config=CFG, feature_engineering_fn=scale).fit(x, y, steps=300)
    # The model saw 2x features, so it learned half the weights.
    np.testing.assert_allclose(est.get_variable_value("w"), [0.5, -1.0, 0.25], atol=0.02)
    np.testing.assert_allclose(est.predict(x), y, atol=0.05)
    assert len(seen) == 2  # once per traced function: TRAIN, then INFER


def _positional_names_fn(x, y, params):
    logits = keras.layers.Dense(params["n_classes"])(x)
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
    return tf.argmax(logits, 1), loss, optimize_loss(loss, "SGD", 0.1)


def test_model_fn_with_its_own_names_for_features_and_targets_still_gets_params_by_name(model_dir, iris):
    x, y = iris
    est = Estimator(_positional_names_fn, model_dir=model_dir, config=CFG, params={"n_classes": 3})
    est.fit(x, y, steps=3)
    assert est.predict(x[:4]).shape == (4,)


def test_model_fn_with_features_named_and_a_config_argument_gets_the_config(model_dir, iris):
    seen = {}

    def fn(features, y, config):
        seen["config"] = config
        logits = keras.layers.Dense(3)(features)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
        return tf.argmax(logits, 1), loss, optimize_loss(loss, "SGD", 0.1)

    Estimator(fn, model_dir=model_dir, config=CFG).fit(*iris, steps=1)
    assert seen["config"] is CFG


def test_model_fn_extra_argument_with_a_default_keeps_its_default(model_dir, iris):
    seen = []

    def fn(features, targets, mode, hidden_units=7):
        seen.append(hidden_units)
        logits = keras.layers.Dense(3)(keras.layers.Dense(hidden_units)(features))
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits))
        return tf.argmax(logits, 1), loss, optimize_loss(loss, "SGD", 0.1)

    Estimator(fn, model_dir=model_dir, config=CFG).fit(*iris, steps=1)
    assert set(seen) == {7}


def test_missing_loss_in_train_names_the_mode(model_dir, iris):
    def fn(features, targets, mode):
        logits = keras.layers.Dense(3)(features)
        return tf.argmax(logits, 1), None, tf.no_op()

    with pytest.raises(ValueError, match="Missing loss.*'train'"):
        Estimator(fn, model_dir=model_dir, config=CFG).fit(*iris, steps=1)


def test_partial_with_a_positionally_bound_argument(model_dir, iris):
    def fn(hidden, features, targets):
        logits = keras.layers.Dense(3)(keras.layers.Dense(hidden)(features))
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits))
        return tf.argmax(logits, 1), loss, optimize_loss(loss, "SGD", 0.1)

    est = Estimator(functools.partial(fn, 5), model_dir=model_dir, config=CFG).fit(*iris, steps=1)
    assert est.get_variable_value("dense/kernel").shape == (4, 5)
