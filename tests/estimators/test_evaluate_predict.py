"""evaluate / predict: metrics, outputs, iterables, restoring a fresh object, NotFittedError."""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from estimators import Estimator, MetricSpec, NotFittedError, RunConfig
from tests.helpers import linear_fn, mlp_fn

CFG = RunConfig(tf_random_seed=0, log_step_count_steps=0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, iris):
    model_dir = str(tmp_path_factory.mktemp("trained"))
    est = Estimator(mlp_fn, model_dir=model_dir, config=CFG, params={"n_classes": 3}).fit(*iris, steps=300)
    return est


def test_evaluate_returns_loss_global_step_and_named_metrics(trained, iris):
    x, y = iris
    results = trained.evaluate(x, y, metrics=["accuracy", "auc"])
    assert set(results) == {"loss", "accuracy", "auc", "global_step"}
    assert results["global_step"] == 300
    expected = np.mean(trained.predict(x)["class"] == y)
    assert results["accuracy"] == pytest.approx(expected)
    assert 0.9 < results["auc"] <= 1.0


def test_evaluate_loss_is_the_mean_over_examples_whatever_the_batch_size(trained, iris):
    x, y = iris
    full = trained.evaluate(x, y, batch_size=150)["loss"]
    assert trained.evaluate(x, y, batch_size=7)["loss"] == pytest.approx(full, rel=1e-5)


def test_evaluate_with_steps_reads_that_many_batches(trained, iris):
    x, y = iris
    first_two = trained.evaluate(x, y, batch_size=10, steps=2)["loss"]
    assert first_two == pytest.approx(trained.evaluate(x[:20], y[:20], batch_size=20)["loss"], rel=1e-5)


def test_evaluate_accepts_keras_metrics_functions_and_metric_specs(trained, iris):
    x, y = iris
    results = trained.evaluate(
        x,
        y,
        metrics={
            "keras_acc": MetricSpec(keras.metrics.SparseCategoricalAccuracy(), prediction_key="prob"),
            "by_fn": MetricSpec(
                lambda t, p: tf.cast(tf.equal(tf.cast(t, tf.int64), p), tf.float32), prediction_key="class"
            ),
            "acc": "accuracy",
        },
    )
    assert results["keras_acc"] == pytest.approx(results["acc"])
    assert results["by_fn"] == pytest.approx(results["acc"])


def test_ambiguous_dict_predictions_ask_for_a_prediction_key(trained, iris):
    with pytest.raises(ValueError, match=r"MetricSpec\('mse', prediction_key=...\)"):
        trained.evaluate(*iris, metrics=["mse"])


def test_regression_metrics(model_dir):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 3)).astype(np.float32)
    y = x.sum(1)
    est = Estimator(linear_fn, model_dir=model_dir, config=CFG).fit(x, y, steps=200)
    r = est.evaluate(x, y, metrics=["mse", "mae", "rmse"])
    pred = est.predict(x)
    assert r["mse"] == pytest.approx(np.mean((pred - y) ** 2), rel=1e-4)
    assert r["mse"] == pytest.approx(r["loss"], rel=1e-4)
    assert r["mae"] == pytest.approx(np.mean(np.abs(pred - y)), rel=1e-4)
    assert r["rmse"] == pytest.approx(np.sqrt(r["mse"]), rel=1e-5)


def test_evaluate_writes_tensorboard_summaries_under_eval_name(trained, iris):
    trained.evaluate(*iris, name="holdout")
    files = os.listdir(os.path.join(trained.model_dir, "eval_holdout"))
    assert any(f.startswith("events.out.tfevents") for f in files)


def test_evaluate_refuses_an_endless_input_fn_without_steps(trained, iris):
    x, y = iris
    endless = lambda: tf.data.Dataset.from_tensor_slices((x, y)).batch(10).repeat()  # noqa: E731
    with pytest.raises(ValueError, match="endless"):
        trained.evaluate(input_fn=endless)
    assert trained.evaluate(input_fn=endless, steps=3)["global_step"] == 300


def test_predict_returns_arrays_covering_every_row_with_a_partial_last_batch(trained, iris):
    x, _ = iris
    pred = trained.predict(x, batch_size=64)
    assert pred["class"].shape == (150,) and pred["prob"].shape == (150, 3)
    np.testing.assert_allclose(pred["prob"], trained.predict(x, batch_size=150)["prob"], rtol=1e-5)


def test_predict_outputs_selects_keys(trained, iris):
    assert list(trained.predict(iris[0], outputs=["class"])) == ["class"]
    with pytest.raises(ValueError, match=r"\['nope'\] are not among the prediction keys"):
        trained.predict(iris[0], outputs=["nope"])


def test_predict_as_iterable_yields_one_result_per_example(trained, iris):
    x, _ = iris
    rows = list(trained.predict(x[:5], as_iterable=True))
    assert len(rows) == 5 and set(rows[0]) == {"class", "prob"}
    assert rows[3]["class"] == trained.predict(x[:5])["class"][3]


def test_predict_from_an_input_fn(trained, iris):
    x, y = iris
    got = trained.predict(input_fn=lambda: tf.data.Dataset.from_tensor_slices((x, y)).batch(32))
    np.testing.assert_array_equal(got["class"], trained.predict(x)["class"])


def test_a_fresh_estimator_restores_from_model_dir(trained, iris):
    x, y = iris
    fresh = Estimator(mlp_fn, model_dir=trained.model_dir, config=CFG, params={"n_classes": 3})
    np.testing.assert_allclose(fresh.predict(x)["prob"], trained.predict(x)["prob"], rtol=1e-6)
    assert fresh.evaluate(x, y) == pytest.approx(trained.evaluate(x, y))


@pytest.mark.parametrize("method", ["evaluate", "predict", "get_variable_names", "export_saved_model"])
def test_using_an_unfitted_estimator_raises_not_fitted_error(model_dir, iris, method):
    est = Estimator(mlp_fn, model_dir=model_dir, config=CFG, params={"n_classes": 3})
    call = {
        "evaluate": lambda: est.evaluate(*iris),
        "predict": lambda: est.predict(iris[0]),
        "get_variable_names": est.get_variable_names,
        "export_saved_model": lambda: est.export_saved_model(model_dir + "_export"),
    }[method]
    with pytest.raises(NotFittedError, match=f"not fitted yet.*before using '{method}'"):
        call()
    assert issubclass(NotFittedError, ValueError) and issubclass(NotFittedError, AttributeError)


def test_variable_introspection(trained):
    names = trained.get_variable_names()
    assert "dense/kernel" in names and "global_step" in names
    assert trained.get_variable_value("global_step") == 300
    assert trained.get_variable_value("dense_1/kernel").shape == (16, 3)
    with pytest.raises(ValueError, match="No variable 'nope'"):
        trained.get_variable_value("nope")


def test_repeated_evaluations_append_to_one_event_file(trained, iris):
    for _ in range(3):
        trained.evaluate(*iris, name="repeat")
    files = [f for f in os.listdir(os.path.join(trained.model_dir, "eval_repeat")) if f.startswith("events")]
    assert len(files) == 1
