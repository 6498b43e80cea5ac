"""Every canned estimator's own SavedModel serves what its predict/predict_proba return, from raw input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from sklearn.exceptions import NotFittedError

from estimators.canned import (
    DNNClassifier,
    DNNLinearCombinedClassifier,
    DNNLinearCombinedRegressor,
    DNNRegressor,
    LinearClassifier,
    LinearRegressor,
)
from estimators.monitors import ExportMonitor
from tests.helpers import serve_frame

FAST = {"epochs": 3, "random_state": 0, "batch_size": 16}
CLASSIFIERS = [
    LinearClassifier,
    lambda **kw: DNNClassifier(hidden_units=(8,), **kw),
    lambda **kw: DNNLinearCombinedClassifier(hidden_units=(8,), **kw),
]
REGRESSORS = [
    LinearRegressor,
    lambda **kw: DNNRegressor(hidden_units=(8,), **kw),
    lambda **kw: DNNLinearCombinedRegressor(hidden_units=(8,), **kw),
]
NAMES = ["Linear", "DNN", "DNNLinearCombined"]


def _raw_table(n: int = 80, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Numeric, categorical, string and boolean columns; string class labels and a numeric target."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 91, n),
            "income": rng.lognormal(np.log(20_000), 0.5, n),
            "city": pd.Categorical(rng.choice(["oslo", "bergen", "trondheim"], n)),
            "plan": rng.choice(["basic", "plus", "premium"], n),
            "member": rng.random(n) < 0.5,
        }
    )
    labels = np.where((frame["city"] == "oslo") | (frame["age"] > 70), "churn", "stay")
    target = frame["age"].to_numpy() * 3.0 + np.where(frame["member"], 500.0, 0.0) + 1000.0
    return frame, labels, target


@pytest.fixture(scope="module")
def arrays():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(80, 4)).astype(np.float32)
    return x, (x[:, 0] + x[:, 1] > 0).astype(int), x @ np.array([10.0, -5.0, 2.0, 0.0]) + 150.0


def _assert_classifier(served: dict, model, x) -> None:
    assert sorted(served) == ["class_ids", "classes", "probabilities"]
    classes = served["classes"]
    if classes.dtype.kind in "SO":
        classes = classes.astype(str)
    np.testing.assert_array_equal(classes, model.predict(x))
    np.testing.assert_allclose(served["probabilities"], model.predict_proba(x), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(model.classes_[served["class_ids"]], model.predict(x))


def _assert_regressor(served: dict, model, x) -> None:
    assert sorted(served) == ["predictions"]
    np.testing.assert_allclose(served["predictions"], model.predict(x), rtol=1e-6)


@pytest.mark.parametrize(
    "make", CLASSIFIERS + REGRESSORS, ids=[f"{n}Classifier" for n in NAMES] + [f"{n}Regressor" for n in NAMES]
)
def test_every_canned_export_of_an_array_model_serves_its_predictions(make, arrays, tmp_path):
    x, labels, target = arrays
    model = make(**FAST)
    regressor = make in REGRESSORS
    model.fit(x, target if regressor else labels)
    path = model.export_saved_model(tmp_path / "export")
    serve = tf.saved_model.load(path).signatures["serving_default"]
    assert list(serve.structured_input_signature[1]) == ["features"]
    served = {k: v.numpy() for k, v in serve(features=tf.constant(x)).items()}
    (_assert_regressor if regressor else _assert_classifier)(served, model, x)


@pytest.mark.parametrize(
    "make", CLASSIFIERS + REGRESSORS, ids=[f"{n}Classifier" for n in NAMES] + [f"{n}Regressor" for n in NAMES]
)
def test_every_canned_export_of_a_dataframe_model_takes_raw_columns_and_serves_its_predictions(make, tmp_path):
    frame, labels, target = _raw_table()
    model = make(**FAST)
    regressor = make in REGRESSORS
    model.fit(frame, target if regressor else labels)
    path = model.export_saved_model(tmp_path / "export")
    inputs = tf.saved_model.load(path).signatures["serving_default"].structured_input_signature[1]
    assert {k: v.dtype for k, v in inputs.items()} == {
        "age": tf.int64,
        "income": tf.float64,
        "city": tf.string,
        "plan": tf.string,
        "member": tf.bool,
    }
    unseen = frame.head(5).assign(city=["paris", "oslo", "bergen", "rome", "oslo"], plan="gold")
    for rows in (frame, unseen):
        (_assert_regressor if regressor else _assert_classifier)(serve_frame(path, rows), model, rows)


@pytest.mark.parametrize(
    "labels",
    [np.array([3, 7, 9] * 20), np.array([True, False, False] * 20), np.array([0.0, 1.0, 1.0] * 20)],
    ids=["int", "bool", "float"],
)
def test_classes_keep_the_kind_of_the_labels(labels, arrays, tmp_path):
    x = arrays[0][:60]
    model = LinearClassifier(**FAST).fit(x, labels)
    served = tf.saved_model.load(model.export_saved_model(tmp_path / "e")).signatures["serving_default"](
        features=tf.constant(x)
    )
    assert served["classes"].dtype == tf.as_dtype(model.classes_.dtype)
    np.testing.assert_array_equal(served["classes"].numpy(), model.predict(x))


def test_a_numeric_dataframe_is_served_by_column_with_each_columns_dtype_and_imputation(tmp_path):
    rng = np.random.default_rng(2)
    frame = pd.DataFrame(
        {"a": rng.normal(size=60).astype(np.float32), "b": rng.normal(size=60), "n": rng.integers(0, 9, 60)}
    )
    frame.loc[::6, "b"] = np.nan
    model = DNNRegressor(hidden_units=(8,), impute="mean", **FAST).fit(frame, frame["n"] * 2.0 + 1)
    path = model.export_saved_model(tmp_path / "export")
    inputs = tf.saved_model.load(path).signatures["serving_default"].structured_input_signature[1]
    # an integer column of a model that imputes is served as float64: the input can hold NaN
    assert {k: v.dtype for k, v in inputs.items()} == {"a": tf.float32, "b": tf.float64, "n": tf.float64}
    holed = frame.assign(n=frame["n"].where(frame.index % 5 != 0))
    served = serve_frame(path, holed)
    assert not np.isnan(served["predictions"]).any()
    _assert_regressor(served, model, holed)


def test_an_export_monitor_during_a_canned_fit_exports_the_canned_signature(tmp_path):
    frame, labels, _ = _raw_table()
    monitor = ExportMonitor(every_n_steps=10, export_dir=str(tmp_path / "exports"), exports_to_keep=1)
    model = DNNClassifier(hidden_units=(8,), **FAST).fit(frame, labels, monitors=[monitor])
    _assert_classifier(serve_frame(monitor.exports[-1], frame), model, frame)


def test_a_canned_export_from_a_checkpoint_and_before_fit(tmp_path):
    frame, labels, _ = _raw_table()
    with pytest.raises(NotFittedError):
        LinearClassifier().export_saved_model(tmp_path / "unfitted")
    model = LinearClassifier(model_dir=str(tmp_path / "m"), **FAST).fit(frame, labels)
    path = model.export_saved_model(tmp_path / "export", checkpoint_path=str(tmp_path / "m"))
    _assert_classifier(serve_frame(path, frame), model, frame)
