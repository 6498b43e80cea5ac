"""Bad input gets a specific, clear error (scikit-learn's wording where it has one), never a TF trace."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from estimators import Estimator, RunConfig
from tests.helpers import mlp_fn

CFG = RunConfig(tf_random_seed=0, log_step_count_steps=0)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, iris):
    est = Estimator(mlp_fn, model_dir=str(tmp_path_factory.mktemp("bad")), config=CFG, params={"n_classes": 3})
    return est.fit(*iris, steps=5)


def _fresh(model_dir):
    return Estimator(mlp_fn, model_dir=model_dir, config=CFG, params={"n_classes": 3})


def _with(x, index, value):
    x = x.copy()
    x[index] = value
    return x


@pytest.mark.parametrize(
    ("make_x", "make_y", "message"),
    [
        (lambda x: _with(x, (3, 1), np.nan), lambda y: y, "Input X contains NaN"),
        (lambda x: _with(x, (3, 1), np.inf), lambda y: y, "Input X contains infinity"),
        (lambda x: x, lambda y: _with(y.astype(np.float32), 4, np.nan), "Input y contains NaN"),
        (
            lambda x: x[:0],
            lambda y: y[:0],
            r"Found array with 0 sample\(s\) \(shape=\(0, 4\)\) while a minimum of 1 is required",
        ),
        (lambda x: x[:, :0], lambda y: y, r"0 feature\(s\) \(shape=\(150, 0\)\) while a minimum of 1 is required"),
        (lambda x: x, lambda y: y[:-1], r"inconsistent numbers of samples: \[150, 149\]"),
        (lambda x: x[:, 0], lambda y: y, "Expected 2D array, got 1D array instead"),
        (lambda x: x.astype(str), lambda y: y, "holds strings"),
        (
            lambda x: np.array([[1, "a"]] * 150, dtype=object),
            lambda y: y,
            "dtype object and holds values that are not numbers",
        ),
        (lambda x: x, lambda y: y.astype(str), "LabelEncoder"),
        (lambda x: x + 1j, lambda y: y, "Complex data not supported"),
        (lambda x: tf.constant(x), lambda y: y, "cannot be a TensorFlow tensor"),
    ],
)
def test_bad_training_data_gets_a_clear_error(model_dir, iris, make_x, make_y, message):
    x, y = iris
    with pytest.raises((ValueError, TypeError), match=message):
        _fresh(model_dir).fit(make_x(x), make_y(y), steps=1)


def test_object_arrays_of_numbers_are_accepted(model_dir, iris):
    x, y = iris
    est = _fresh(model_dir).fit(x.astype(object), y, steps=1)
    assert est.get_variable_value("global_step") == 1
    np.testing.assert_array_equal(est.predict(x.astype(object))["class"], est.predict(x)["class"])


def test_predict_with_the_wrong_width_names_both_widths(fitted, iris):
    with pytest.raises(ValueError, match="X has 3 features, but Estimator is expecting 4 features as input."):
        fitted.predict(iris[0][:, :3])


def test_predict_with_floats_where_integers_were_trained_is_refused(model_dir):
    import keras

    from estimators import optimize_loss

    def embed_fn(features, targets):
        emb = keras.layers.Embedding(10, 4)(features)
        logits = keras.layers.Dense(2)(tf.reduce_mean(emb, 1))
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits))
        return tf.argmax(logits, 1), loss, optimize_loss(loss, "SGD", 0.1)

    ids = np.random.default_rng(0).integers(0, 10, size=(20, 3))
    est = Estimator(embed_fn, model_dir=model_dir, config=CFG).fit(ids, np.zeros(20, np.int32), steps=2)
    with pytest.raises(ValueError, match="expected int64 .* received float32"):
        est.predict(ids.astype(np.float32))
    est.predict(ids.astype(np.int32))  # widening integer casts are fine


def test_predict_with_integers_where_floats_were_trained_is_cast(fitted, iris):
    np.testing.assert_array_equal(
        fitted.predict(np.round(iris[0]).astype(np.int64))["class"],
        fitted.predict(np.round(iris[0]).astype(np.float32))["class"],
    )


def test_predict_with_nan_and_1d_input(fitted, iris):
    with pytest.raises(ValueError, match="Input X contains NaN"):
        fitted.predict(_with(iris[0], (0, 0), np.nan))
    with pytest.raises(ValueError, match="Reshape your data"):
        fitted.predict(iris[0][0])


def test_refit_with_different_targets_is_refused(fitted, iris):
    with pytest.raises(ValueError, match="y is incompatible"):
        fitted.fit(iris[0], np.zeros((150, 2), np.int32), steps=1)


def test_a_model_dir_of_another_model_fn_is_not_silently_reused(tmp_path, iris):
    from tests.helpers import spec_fn

    model_dir = str(tmp_path / "m")
    Estimator(mlp_fn, model_dir=model_dir, config=CFG, params={"n_classes": 3}).fit(*iris, steps=2)
    before = sorted(p.name for p in (tmp_path / "m").iterdir())
    other = Estimator(spec_fn, model_dir=model_dir, config=CFG, params={"n_classes": 3})
    with pytest.raises(ValueError, match="different model_fn|shape"):
        other.fit(*iris, steps=2)
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == before  # nothing written


def test_a_model_dir_of_a_wider_model_reports_the_shape(tmp_path, iris):
    model_dir = str(tmp_path / "m")
    Estimator(mlp_fn, model_dir=model_dir, config=CFG, params={"n_classes": 3, "hidden": 8}).fit(*iris, steps=2)
    wider = Estimator(mlp_fn, model_dir=model_dir, config=CFG, params={"n_classes": 3, "hidden": 16})
    with pytest.raises(ValueError, match=r"'dense/kernel' with shape \(4, 8\).*shape \(4, 16\)"):
        wider.predict(iris[0])


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (object(), "not numbers"),
        (42, "Expected 2D array, got scalar array instead"),
        ({"a": object()}, r"X\[.a.\] has dtype object"),
    ],
)
def test_something_that_is_not_data_is_a_clear_error(model_dir, iris, x, message):
    with pytest.raises((ValueError, TypeError), match=message):
        _fresh(model_dir).fit(x, iris[1], steps=1)


def test_fit_and_evaluate_without_y_after_fitting_with_targets_say_y_is_required(fitted, iris):
    with pytest.raises(ValueError, match=r"y is required.*fit\(\)"):
        fitted.fit(iris[0], steps=1)
    with pytest.raises(ValueError, match=r"y is required.*fit\(\)"):
        fitted.partial_fit(iris[0])
    with pytest.raises(ValueError, match=r"y is required.*evaluate\(\)"):
        fitted.evaluate(iris[0])


def test_inf_in_targets_and_empty_predict_input(fitted, iris):
    with pytest.raises(ValueError, match="Input y contains infinity"):
        fitted.fit(iris[0], np.where(np.arange(150) == 3, np.inf, iris[1]), steps=1)
    with pytest.raises(ValueError, match="0 sample"):
        fitted.predict(np.empty((0, 4), np.float32))


def test_bad_input_to_evaluate_and_the_partial_fit_fast_path(fitted, iris):
    with pytest.raises(ValueError, match="Input X contains NaN"):
        fitted.evaluate(_with(iris[0], (1, 2), np.nan), iris[1])
    with pytest.raises(ValueError, match="X has 3 features, but Estimator is expecting 4"):
        fitted.partial_fit(iris[0][:, :3], iris[1])
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        fitted.partial_fit(iris[0], iris[1][:10])


def test_evaluate_with_an_input_fn_refuses_y(fitted, iris):
    import tensorflow as tf

    def input_fn():
        return tf.data.Dataset.from_tensor_slices(iris).batch(50)

    with pytest.raises(ValueError, match="an input_fn yields its own batches"):
        fitted.evaluate(y=iris[1], input_fn=input_fn)


def test_fit_with_impute_fills_nan_with_training_means_everywhere_after(model_dir, iris):
    x, y = iris
    holes = _with(x, (slice(0, 150, 7), 2), np.nan)
    with pytest.raises(ValueError, match=r"Input X contains NaN in column\(s\) \[2\]"):
        _fresh(model_dir).fit(holes, y, steps=1)
    est = _fresh(model_dir).fit(holes, y, steps=20, impute="mean")
    filled = _with(x, (slice(0, 150, 7), 2), np.nanmean(holes[:, 2]))
    np.testing.assert_allclose(est.predict(holes)["prob"], est.predict(filled)["prob"], rtol=1e-6)
    assert est.evaluate(holes, y)["loss"] == pytest.approx(est.evaluate(filled, y)["loss"], rel=1e-6)
    expected = est.predict(filled)["prob"]
    fresh = _fresh(model_dir)  # a new Estimator on the same model_dir fills the same way
    np.testing.assert_allclose(fresh.predict(holes)["prob"], expected, rtol=1e-5)
    fresh.partial_fit(holes, y)  # and so does partial_fit
    assert fresh.evaluate(holes, y)["global_step"] == 21


@pytest.mark.parametrize("x_kind", ["array", "frame"])
def test_string_labels_with_a_missing_one_are_named_not_a_sort_error(model_dir, iris, x_kind):
    import pandas as pd

    from estimators import DNNClassifier

    labels = np.array(["a", "b", "c"], dtype=object)[iris[1]]
    labels[7] = None  # before: "'<' not supported between instances of 'NoneType' and 'str'"
    x = iris[0] if x_kind == "array" else pd.DataFrame(iris[0], columns=list("abcd"))
    with pytest.raises(
        ValueError, match=r"Input y contains NaN or None: 1 of 150 labels are missing \(the first at row 7\)"
    ):
        DNNClassifier(hidden_units=[4], steps=1, model_dir=model_dir).fit(x, labels)
