"""Mistakes a new user makes, each answered by a clear error (or a sane default), never a silent run."""

from __future__ import annotations

import os
import traceback

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.metrics import f1_score, precision_score, r2_score, recall_score

from estimators import Estimator, RunConfig, optimize_loss
from estimators.monitors import EveryN, StopAtStep, ValidationMonitor
from tests.helpers import linear_fn, mlp_fn

QUIET = {"tf_random_seed": 0, "log_step_count_steps": 0, "verbose": 0}


def _mlp(model_dir, **config):
    return Estimator(mlp_fn, model_dir=model_dir, params={"n_classes": 3}, config=RunConfig(**{**QUIET, **config}))


def test_fit_on_arrays_without_a_stopping_point_is_an_error_naming_the_three_options(model_dir, iris):
    with pytest.raises(ValueError, match=r"steps=.*max_steps=.*epochs="):
        _mlp(model_dir).fit(*iris)
    assert not any(f.startswith("model.ckpt") for f in os.listdir(model_dir))


def test_fit_with_epochs_makes_that_many_passes(model_dir, iris):
    est = _mlp(model_dir).fit(*iris, epochs=2, batch_size=30)  # 150 rows: 5 batches per epoch
    assert est.get_variable_value("global_step") == 10
    est.fit(*iris, epochs=1, steps=3, batch_size=30)  # whichever comes first
    assert est.get_variable_value("global_step") == 13


@pytest.mark.parametrize(
    "make",
    [
        lambda: EveryN(every_n_steps="5"),
        lambda: EveryN(every_n_steps=2.5),
        lambda: StopAtStep(num_steps=True),
        lambda: ValidationMonitor(np.zeros((2, 2)), np.zeros(2), every_n_steps=0),
        lambda: RunConfig(save_summary_steps=2.5),
        lambda: RunConfig(steps_per_execution="32"),
    ],
)
def test_bad_integer_arguments_get_one_wording_everywhere(make):
    with pytest.raises(ValueError, match=r"^Invalid value for argument `\w+`\. Received: \w+=.*\. Expected a"):
        make()


@pytest.mark.parametrize("bad", ["5", 2.5, 0, -1, True])
def test_fit_steps_must_be_a_positive_integer(model_dir, iris, bad):
    with pytest.raises(ValueError, match=rf"^Invalid value for argument `steps`\. Received: steps={bad!r}\."):
        _mlp(model_dir).fit(*iris, steps=bad)


@pytest.fixture(scope="module")
def three_classes(tmp_path_factory, iris):
    est = _mlp(str(tmp_path_factory.mktemp("m"))).fit(*iris, steps=60, batch_size=16)
    return est, est.predict(iris[0])["class"]


def test_binary_precision_over_three_classes_is_an_error_naming_the_averaged_forms(three_classes, iris):
    est, _ = three_classes
    with pytest.raises(ValueError, match="'precision' is binary.*3 classes.*'precision_macro'.*'precision_weighted'"):
        est.evaluate(*iris, metrics=["precision"])


@pytest.mark.parametrize("average", ["macro", "micro", "weighted"])
def test_averaged_precision_recall_and_f1_match_scikit_learn(three_classes, iris, average):
    est, predicted = three_classes
    results = est.evaluate(*iris, metrics=[f"precision_{average}", f"recall_{average}", f"f1_{average}"])
    y = iris[1]
    assert results[f"precision_{average}"] == pytest.approx(precision_score(y, predicted, average=average))
    assert results[f"recall_{average}"] == pytest.approx(recall_score(y, predicted, average=average))
    assert results[f"f1_{average}"] == pytest.approx(f1_score(y, predicted, average=average))


def test_binary_precision_recall_f1_match_scikit_learn(model_dir, iris):
    x, y = iris[0], (iris[1] == 2).astype(np.int32)
    est = Estimator(mlp_fn, model_dir=model_dir, params={"n_classes": 2}, config=RunConfig(**QUIET))
    est.fit(x, y, steps=40)
    predicted = est.predict(x)["class"]
    results = est.evaluate(x, y, metrics=["precision", "recall", "f1"])
    assert results["precision"] == pytest.approx(precision_score(y, predicted))
    assert results["recall"] == pytest.approx(recall_score(y, predicted))
    assert results["f1"] == pytest.approx(f1_score(y, predicted))


def test_accuracy_of_a_regressor_is_an_error_and_r2_matches_scikit_learn(model_dir):
    x = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
    y = x.sum(axis=1)
    est = Estimator(linear_fn, model_dir=model_dir, config=RunConfig(**QUIET)).fit(x, y, steps=50)
    with pytest.raises(ValueError, match=r"'accuracy' compares predicted classes.*'mse', 'rmse', 'mae' or 'r2'"):
        est.evaluate(x, y, metrics=["accuracy"])
    assert est.evaluate(x, y, metrics=["r2"])["r2"] == pytest.approx(r2_score(y, est.predict(x)), rel=1e-4)


def _optimizer_object_fn(features, targets):
    logits = keras.layers.Dense(3)(features)
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(tf.cast(targets, tf.int32), logits))
    return tf.argmax(logits, 1), loss, keras.optimizers.Adam(0.1)


def _constant_fn(features, targets):
    logits = keras.layers.Dense(3)(features)
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(tf.cast(targets, tf.int32), logits))
    return tf.argmax(logits, 1), loss, tf.constant(0)


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (_optimizer_object_fn, r"train_op of type Adam .*optimize_loss\(loss, optimizer='Adam'"),
        (_constant_fn, r"does not update any trainable variable.*optimize_loss\(loss"),
    ],
)
def test_a_train_op_that_trains_nothing_is_refused_with_the_fix(model_dir, iris, fn, message):
    with pytest.raises(ValueError, match=message):
        Estimator(fn, model_dir=model_dir, config=RunConfig(**QUIET)).fit(*iris, steps=5)
    assert not any(f.startswith("model.ckpt") for f in os.listdir(model_dir))


def _hand_written_update_fn(features, targets):
    """An update without optimize_loss: a plain assign on the model's own variable is a real train_op."""
    w = tf.Variable(tf.zeros([4, 1]), name="w")
    pred = tf.squeeze(tf.matmul(features, w), 1)
    loss = tf.reduce_mean(tf.square(pred - tf.cast(targets, tf.float32)))
    grad = tf.gradients(loss, [w])[0]
    return pred, loss, w.assign_sub(0.01 * grad)


def test_a_hand_written_variable_update_is_accepted(model_dir, iris):
    est = Estimator(_hand_written_update_fn, model_dir=model_dir, config=RunConfig(**QUIET)).fit(*iris, steps=5)
    assert np.any(est.get_variable_value("w") != 0)


def _dict_fn(features, targets):
    value = features["income"]  # KeyError: the input has "age" only
    return value, tf.reduce_mean(value), optimize_loss(tf.reduce_mean(value), "SGD", 0.1)


def test_a_key_error_in_the_model_fn_starts_at_the_users_file_and_line(model_dir):
    est = Estimator(_dict_fn, model_dir=model_dir, config=RunConfig(**QUIET))
    with pytest.raises(KeyError) as info:
        est.fit({"age": np.zeros((8, 1), np.float32)}, np.zeros(8, np.float32), steps=1)
    line = _dict_fn.__code__.co_firstlineno + 1
    assert str(info.value).startswith(f'File "{__file__}", line {line}, in _dict_fn\n')
    assert 'value = features["income"]' in str(info.value) and str(info.value).endswith("\nKeyError: 'income'")
    assert len("".join(traceback.format_exception(info.value)).splitlines()) < 40
