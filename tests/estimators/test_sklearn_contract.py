"""The custom Estimator is a scikit-learn estimator, as the seed's BaseEstimator was."""

from __future__ import annotations

import gc
import glob
import os
import tempfile
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from estimators import Estimator, RunConfig
from tests.helpers import class_accuracy, linear_fn, mlp_fn

QUIET = RunConfig(tf_random_seed=0, log_step_count_steps=0, verbose=0)


def _temp_dirs() -> set[str]:
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "skflow_estimator_*")))


def test_get_params_are_the_constructor_arguments_unchanged():
    params = {"n_classes": 3}
    est = Estimator(mlp_fn, params=params, config=QUIET)
    got = est.get_params()
    assert got == {
        "model_fn": mlp_fn,
        "model_dir": None,
        "config": QUIET,
        "params": params,
        "feature_engineering_fn": None,
        "warm_start_from": None,
    }
    assert got["params"] is params and got["config"] is QUIET


def test_init_neither_validates_nor_creates_a_directory(tmp_path):
    before = _temp_dirs()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = Estimator("not callable", config="not a config", params={"a": 1})
    assert _temp_dirs() == before
    with pytest.raises(TypeError, match="config must be a RunConfig"):
        est.fit(np.zeros((4, 2)), np.zeros(4), steps=1)


def test_set_params_changes_the_model_and_rejects_unknown_names(tmp_path, iris):
    est = Estimator(mlp_fn, model_dir=str(tmp_path / "m"), params={"n_classes": 3, "hidden": 4}, config=QUIET)
    est.fit(*iris, steps=5)
    assert est.get_variable_value("dense/kernel").shape == (4, 4)
    assert est.set_params(params={"n_classes": 3, "hidden": 4, "learning_rate": 0.5}) is est
    est.fit(*iris, steps=5)  # same shapes: continues from the checkpoint with the new learning rate
    assert est.get_variable_value("global_step") == 10
    with pytest.raises(ValueError, match=r"Invalid parameter\(s\) \['hidden'\].*Valid parameters are"):
        est.set_params(hidden=8)


def test_clone_gives_an_unfitted_copy_with_a_directory_of_its_own(iris):
    est = Estimator(mlp_fn, params={"n_classes": 3}, config=QUIET)
    with pytest.warns(UserWarning, match="temporary folder"):
        est.fit(*iris, steps=5)
    copy = clone(est)
    assert copy.get_params()["params"] == {"n_classes": 3} and copy.get_params()["model_dir"] is None
    with pytest.warns(UserWarning, match="temporary folder"):
        assert copy.model_dir != est.model_dir
    with pytest.raises(Exception, match="not fitted"):
        copy.predict(iris[0])


def test_score_is_the_negative_evaluation_loss(iris, model_dir):
    est = Estimator(mlp_fn, model_dir=model_dir, params={"n_classes": 3}, config=QUIET).fit(*iris, steps=20)
    assert est.score(*iris) == pytest.approx(-est.evaluate(*iris)["loss"])
    assert est.score(*iris) < 0


@pytest.mark.slow
def test_grid_search_with_two_jobs_over_params_of_an_importable_model_fn(iris):
    x, y = iris
    before = _temp_dirs()
    search = GridSearchCV(
        Estimator(mlp_fn, params={"n_classes": 3}, config=QUIET),
        {"params": [{"n_classes": 3, "learning_rate": 0.001}, {"n_classes": 3, "learning_rate": 0.3}]},
        scoring=class_accuracy,
        cv=StratifiedKFold(2, shuffle=True, random_state=0),
        n_jobs=2,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # each clone's temporary model_dir
        search.fit(x, y, steps=150, batch_size=16)
    assert search.best_params_["params"]["learning_rate"] == 0.3
    assert search.best_estimator_.get_variable_value("global_step") == 150
    assert class_accuracy(search.best_estimator_, x, y) > 0.8
    del search
    gc.collect()
    assert _temp_dirs() <= before  # every temporary model_dir went with its Estimator


def test_pipeline_and_cross_val_score_with_a_scoring_callable(iris):
    x, y = iris
    pipe = Pipeline([("scale", StandardScaler()), ("est", Estimator(mlp_fn, params={"n_classes": 3}, config=QUIET))])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        pipe.fit(x, y, est__steps=100)
        assert np.mean(pipe.predict(x)["class"] == y) > 0.8
        regression = Pipeline([("scale", StandardScaler()), ("est", Estimator(linear_fn, config=QUIET))])
        target = x[:, :3].sum(axis=1)
        scores = cross_val_score(regression, x, target, cv=3, params={"est__steps": 200, "est__batch_size": 10})
    assert scores.shape == (3,) and np.all(scores < 0)  # default scoring: score(), the negative loss
    assert np.all(scores > -np.var(target))  # better than predicting the mean
