"""Canned estimators in scikit-learn workflows: Pipeline, GridSearchCV(n_jobs=2), pickling, labels, DataFrames."""

from __future__ import annotations

import gc
import os
import pickle
import tempfile

import joblib
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from sklearn.base import clone
from sklearn.datasets import load_iris, make_classification
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import estimators
import estimators.canned
from estimators import Estimator, RunConfig
from estimators.canned import (
    DNNClassifier,
    DNNLinearCombinedClassifier,
    DNNLinearCombinedRegressor,
    DNNRegressor,
    LinearClassifier,
    LinearRegressor,
)
from tests.helpers import mlp_fn

FAST = {"epochs": 10, "random_state": 0}


def test_the_six_canned_estimators_are_exported_by_the_estimators_package():
    assert len(estimators.canned.__all__) == 6
    for name in estimators.canned.__all__:
        assert name in estimators.__all__
        assert getattr(estimators, name) is getattr(estimators.canned, name)


@pytest.fixture(scope="module")
def binary():
    x, y = make_classification(200, n_features=6, n_informative=4, random_state=0)
    return x.astype(np.float32), y


def test_string_labels_round_trip_and_predict_proba_follows_classes(binary):
    x, y = binary
    labels = np.where(y == 1, "spam", "ham")
    model = DNNClassifier(hidden_units=(16,), learning_rate=0.01, **FAST).fit(x, labels)
    assert list(model.classes_) == ["ham", "spam"]
    assert set(model.predict(x)) <= {"ham", "spam"}
    proba = model.predict_proba(x)
    assert proba.shape == (200, 2) and np.allclose(proba.sum(1), 1, atol=1e-5)
    np.testing.assert_array_equal(model.classes_[proba.argmax(1)], model.predict(x))
    np.testing.assert_allclose(model.predict_log_proba(x), np.log(proba), rtol=1e-5)
    assert model.score(x, labels) > 0.85


def test_multiclass_in_a_pipeline_and_cross_val_score():
    x, y = load_iris(return_X_y=True)
    pipe = make_pipeline(StandardScaler(), LinearClassifier(learning_rate=0.05, **FAST))
    scores = cross_val_score(pipe, x, y, cv=3)
    assert scores.mean() > 0.85


@pytest.mark.slow
def test_grid_search_with_two_jobs_clones_and_pickles_the_estimator(binary):
    x, y = binary
    search = GridSearchCV(DNNClassifier(hidden_units=(8,), **FAST), {"learning_rate": [0.001, 0.03]}, cv=2, n_jobs=2)
    search.fit(x, y)
    assert search.best_params_["learning_rate"] == 0.03
    assert search.best_estimator_.score(x, y) > 0.8


def test_get_params_set_params_and_clone_keep_hyperparameters_only():
    model = DNNLinearCombinedClassifier(hidden_units=(4, 2), dropout=0.1, random_state=3)
    params = model.get_params()
    assert params["hidden_units"] == (4, 2) and params["dropout"] == 0.1 and "monitors" not in params
    copy = clone(model.set_params(learning_rate=0.5))
    assert copy.get_params()["learning_rate"] == 0.5 and not hasattr(copy, "estimator_")


@pytest.mark.parametrize("dump", ["pickle", "joblib"])
def test_a_fitted_estimator_survives_pickle_and_joblib_with_its_weights(binary, tmp_path, dump):
    x, y = binary
    model = DNNClassifier(hidden_units=(8,), **FAST).fit(x, y)
    if dump == "pickle":
        payload = pickle.dumps(model)
        assert b"tensorflow" not in payload.split(b"estimators.")[0]  # no TF objects pickled
        restored = pickle.loads(payload)
    else:
        joblib.dump(model, tmp_path / "m.joblib")
        restored = joblib.load(tmp_path / "m.joblib")
    np.testing.assert_allclose(restored.predict_proba(x), model.predict_proba(x), rtol=1e-6)
    assert restored.estimator_.model_dir != model.estimator_.model_dir  # the copy writes elsewhere
    restored.partial_fit(x, y)  # and can keep training


def test_the_custom_estimator_pickles_when_its_model_fn_is_importable(tmp_path):
    x, y = load_iris(return_X_y=True)
    est = Estimator(
        mlp_fn,
        model_dir=str(tmp_path / "m"),
        params={"n_classes": 3},
        config=RunConfig(tf_random_seed=0, log_step_count_steps=0),
    )
    est.fit(x, y, steps=50)
    restored = pickle.loads(pickle.dumps(est))
    np.testing.assert_allclose(restored.predict(x)["prob"], est.predict(x)["prob"], rtol=1e-6)
    assert restored.evaluate(x, y)["global_step"] == 50


def test_partial_fit_needs_classes_first_and_keeps_learning(binary):
    x, y = binary
    model = LinearClassifier(learning_rate=0.05, random_state=0)
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        model.partial_fit(x, y)
    model.partial_fit(x[:50], y[:50], classes=[0, 1])
    first = model.score(x, y)
    for _ in range(10):
        model.partial_fit(x, y)
    assert model.score(x, y) > first
    with pytest.raises(ValueError, match="X has 5 features, but LinearClassifier is expecting 6 features"):
        model.partial_fit(x[:, :5], y)


def test_dataframes_with_categorical_columns_go_through_the_pandas_feeder():
    rng = np.random.default_rng(0)
    n = 300
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "color": pd.Categorical(rng.choice(["red", "green", "blue"], n)),
            "shape": rng.choice(["round", "square"], n),
        }
    )
    y = np.where((frame["color"] == "red") ^ (frame["shape"] == "round"), "yes", "no")
    model = DNNLinearCombinedClassifier(hidden_units=(16,), learning_rate=0.02, epochs=30, random_state=0).fit(frame, y)
    assert list(model.feature_names_in_) == ["x", "color", "shape"] and model.n_features_in_ == 3
    assert model.score(frame, y) > 0.95
    assert model.predict(frame[["shape", "x", "color"]]).tolist() == model.predict(frame).tolist()
    with pytest.raises(ValueError, match="pass a DataFrame"):
        model.predict(frame.to_numpy())


def test_regressors_learn_unscaled_targets_and_multi_output(binary):
    x, _ = binary
    y = x @ np.arange(1, 7) * 10 + 150
    for model in (
        LinearRegressor(learning_rate=0.05, **FAST),
        DNNRegressor(hidden_units=(16,), learning_rate=0.01, **FAST),
    ):
        assert model.fit(x, y).score(x, y) > 0.9
    y2 = np.stack([y, -y], axis=1)
    assert DNNLinearCombinedRegressor(hidden_units=(8,), learning_rate=0.02, **FAST).fit(x, y2).predict(x).shape == (
        200,
        2,
    )


@pytest.mark.parametrize("make", [DNNRegressor, DNNLinearCombinedRegressor])
def test_the_inner_estimator_and_its_export_predict_in_target_units(binary, tmp_path, make):
    x, _ = binary
    y = x @ np.arange(1, 7) * 10 + 150
    model = make(hidden_units=(16,), learning_rate=0.01, **FAST).fit(x, y)
    predicted = model.predict(x)
    assert model.score(x, y) > 0.9
    np.testing.assert_array_equal(model.estimator_.predict(x)["predictions"], predicted.astype(np.float32))
    path = model.estimator_.export_saved_model(str(tmp_path / "export"))
    served = tf.saved_model.load(path).signatures["serving_default"](features=tf.constant(x))["predictions"]
    np.testing.assert_allclose(served.numpy(), predicted, rtol=1e-6)


def test_fit_overrides_and_model_dir_protection(binary, tmp_path):
    x, y = binary
    model = LinearClassifier(model_dir=str(tmp_path / "m"), **FAST).fit(x, y, steps=7, batch_size=16)
    assert model.estimator_.get_variable_value("global_step") == 7
    with pytest.raises(ValueError, match="warm_start=True"):
        clone(model).fit(x, y)
    resumed = clone(model).set_params(warm_start=True).fit(x, y, steps=3)
    assert resumed.estimator_.get_variable_value("global_step") == 10
    with pytest.raises(TypeError, match="unexpected keyword"):
        model.fit(x, y, epoch=3)


def _skflow_dirs() -> set[str]:
    return {name for name in os.listdir(tempfile.gettempdir()) if name.startswith("skflow_")}


def test_temporary_model_dirs_are_removed_on_refit_and_garbage_collection(binary, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # count only this test's directories
    x, y = binary
    search = GridSearchCV(DNNClassifier(hidden_units=(4,), epochs=1), {"learning_rate": [0.001, 0.01]}, cv=3, n_jobs=1)
    search.fit(x, y)  # six fits and the refit of the best
    model = search.best_estimator_
    assert _skflow_dirs() == {os.path.basename(model.estimator_.model_dir)}
    model.fit(x, y)  # same architecture: restarts in a new directory
    model.set_params(hidden_units=(5,)).fit(x, y)  # a new inner Estimator
    assert _skflow_dirs() == {os.path.basename(model.estimator_.model_dir)}
    copy = pickle.loads(pickle.dumps(model))  # works in a directory of its own
    assert len(_skflow_dirs()) == 2
    del search, model, copy
    gc.collect()
    assert _skflow_dirs() == set()


def test_a_refit_never_removes_a_model_dir_that_was_given(binary, tmp_path):
    x, y = binary
    model = LinearClassifier(model_dir=str(tmp_path / "kept"), **FAST).fit(x, y)
    model.set_params(model_dir=None).fit(x, y)
    assert os.path.isdir(tmp_path / "kept") and model.estimator_.model_dir != str(tmp_path / "kept")
