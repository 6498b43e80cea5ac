"""Canned estimators on raw tables: numeric standardisation inside the model, imputation, column errors."""

from __future__ import annotations

import logging
import pickle
import re

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from estimators import DNNClassifier, DNNLinearCombinedClassifier, Estimator, LinearClassifier, RunConfig
from tests.helpers import embedding_fn


def _churn(n: int = 1000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Raw customer data: ages 18-90, incomes around 20,000, a categorical, a bool and a string column.
    Customers churn when they live in Oslo or are over 70."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 91, n).astype(float),
            "income": rng.lognormal(np.log(20_000), 0.5, n),
            "city": pd.Categorical(rng.choice(["oslo", "bergen", "trondheim", "stavanger"], n)),
            "member": rng.random(n) < 0.5,
            "plan": rng.choice(["basic", "plus", "premium"], n),
        }
    )
    churn = ((frame["city"] == "oslo") | (frame["age"] > 70)).to_numpy().astype(int)
    return frame, churn


@pytest.fixture(scope="module")
def churn():
    return _churn()


@pytest.fixture(scope="module")
def raw_numeric():
    """Two numeric columns on very different scales; the class depends on both."""
    rng = np.random.default_rng(1)
    x = np.stack([rng.uniform(18, 90, 400), rng.lognormal(np.log(20_000), 0.5, 400)], axis=1)
    y = ((x[:, 0] > 60) ^ (x[:, 1] > 20_000)).astype(int)
    return x, y


# ---------------------------------------------------------------------- standardisation
def test_a_dnn_learns_the_raw_churn_table_because_numeric_columns_are_standardised(churn):
    frame, y = churn
    standardised = DNNClassifier(hidden_units=[32], random_state=0).fit(frame, y)
    raw = DNNClassifier(hidden_units=[32], random_state=0, standardize=False).fit(frame, y)
    assert standardised.score(frame, y) >= 0.95
    assert raw.score(frame, y) < standardised.score(frame, y) - 0.15


def test_the_statistics_are_weighted_ignore_nan_and_give_constant_columns_scale_one():
    x = np.array([[1.0, 5.0, np.nan], [3.0, 5.0, 2.0], [3.0, 5.0, 6.0]])
    model = LinearClassifier(epochs=1, impute="mean").fit(x, [0, 1, 0], sample_weight=[2.0, 1.0, 1.0])
    # column 0 weighted like the rows [1, 1, 3, 3]; column 1 constant; column 2 without its NaN
    np.testing.assert_allclose(model.estimator_.params["feature_mean"], [2.0, 5.0, 4.0])
    np.testing.assert_allclose(model.estimator_.params["feature_scale"], [1.0, 1.0, 2.0])


def test_the_model_receives_the_statistics_in_its_params(raw_numeric):
    x, y = raw_numeric
    model = LinearClassifier(epochs=1, random_state=0).fit(x, y)
    np.testing.assert_allclose(model.estimator_.params["feature_mean"], x.astype(np.float32).mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(model.estimator_.params["feature_scale"], x.astype(np.float32).std(axis=0), rtol=1e-6)
    off = LinearClassifier(epochs=1, random_state=0, standardize=False).fit(x, y)
    assert off.estimator_.params["feature_mean"] is None


def test_standardize_must_be_a_bool(raw_numeric):
    with pytest.raises(ValueError, match="Invalid value for argument `standardize`"):
        LinearClassifier(standardize="yes").fit(*raw_numeric)


def test_predictions_are_identical_after_a_pickle_round_trip(churn):
    frame, y = churn
    model = DNNLinearCombinedClassifier(hidden_units=[8], epochs=2, random_state=0).fit(frame, y)
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.predict_proba(frame), model.predict_proba(frame))


def test_the_inner_export_standardises_like_predict_proba(raw_numeric, tmp_path):
    x, y = raw_numeric
    model = DNNClassifier(hidden_units=[16], epochs=5, random_state=0).fit(x, y)
    path = model.estimator_.export_saved_model(str(tmp_path / "export"))
    serve = tf.saved_model.load(path).signatures["serving_default"]
    served = serve(features=tf.constant(x, tf.float32))["probabilities"].numpy()
    np.testing.assert_allclose(served, model.predict_proba(x), rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------------- missing values
def test_without_impute_nan_in_a_dataframe_is_an_error_naming_the_column_and_the_fix(churn):
    frame, y = churn
    holed = frame.assign(income=frame["income"].where(frame.index % 10 != 0))
    with pytest.raises(ValueError, match=re.escape("NaN in column 'income' (100 row(s)). Pass DNNClassifier(impute=")):
        DNNClassifier(epochs=1).fit(holed, y)


def test_without_impute_nan_in_an_array_is_an_error_naming_the_column_in_fit_and_predict(raw_numeric):
    x, y = raw_numeric
    holed = x.copy()
    holed[3, 1] = np.nan
    with pytest.raises(ValueError, match=re.escape('NaN in column 1 (1 row(s)). Pass LinearClassifier(impute="mean")')):
        LinearClassifier(epochs=1).fit(holed, y)
    model = LinearClassifier(epochs=1).fit(pd.DataFrame(x, columns=["age", "income"]), y)
    assert not model.__sklearn_tags__().input_tags.allow_nan
    with pytest.raises(ValueError, match=re.escape("NaN in column 'income' (1 row(s))")):
        model.predict(pd.DataFrame(holed, columns=["age", "income"]))


def test_impute_mean_fills_an_arrays_nan_with_the_training_mean(raw_numeric):
    x, y = raw_numeric
    holed = x.copy()
    holed[::7, 0] = np.nan
    model = LinearClassifier(epochs=2, random_state=0, impute="mean").fit(holed, y)
    assert model.__sklearn_tags__().input_tags.allow_nan
    filled = np.where(np.isnan(holed), np.nanmean(holed.astype(np.float32), axis=0), holed)
    np.testing.assert_allclose(model.predict_proba(holed), model.predict_proba(filled), rtol=1e-5)


def test_impute_mean_fills_a_dataframes_numeric_and_categorical_nan(churn):
    frame, y = churn
    holed = frame.assign(income=frame["income"].where(frame.index % 10 != 0))
    holed["plan"] = holed["plan"].where(frame.index % 15 != 0)
    model = DNNClassifier(hidden_units=[8], epochs=2, random_state=0, impute="mean").fit(holed, y)
    assert np.isfinite(model.predict_proba(holed)).all()
    row = holed.iloc[[10]]  # income missing
    np.testing.assert_allclose(
        model.predict_proba(row), model.predict_proba(row.assign(income=holed["income"].mean())), rtol=1e-5
    )


def test_impute_accepts_none_or_mean_only(raw_numeric):
    with pytest.raises(ValueError, match="Invalid value for argument `impute`"):
        LinearClassifier(impute="median").fit(*raw_numeric)


# ---------------------------------------------------------------------- columns
def test_a_dataframe_missing_a_column_is_an_error_naming_it_and_the_expected_columns(churn):
    frame, y = churn
    model = DNNClassifier(hidden_units=[8], epochs=1, random_state=0).fit(frame, y)
    message = (
        "X is missing column(s) ['plan'] that DNNClassifier was fitted on. "
        "Expected columns ['age', 'income', 'city', 'member', 'plan']."
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        model.predict(frame.drop(columns="plan"))
    with pytest.raises(ValueError, match=re.escape(message)):
        model.partial_fit(frame.drop(columns="plan"), y)
    with pytest.raises(ValueError, match=re.escape("X is missing column(s) ['city', 'member', 'plan']")):
        model.predict(frame[["age", "income"]])  # numbers only, still matched to the fitted columns


def test_a_numeric_dataframe_missing_a_column_gets_scikit_learns_error_naming_it(raw_numeric):
    x, y = raw_numeric
    model = LinearClassifier(epochs=1).fit(pd.DataFrame(x, columns=["age", "income"]), y)
    with pytest.raises(ValueError, match="Feature names seen at fit time, yet now missing:\n- income"):
        model.predict(pd.DataFrame(x[:, :1], columns=["age"]))


def test_extra_dataframe_columns_are_ignored_with_a_warning_by_canned_and_custom_estimators(caplog, tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=60), "color": rng.choice(["red", "green", "blue"], 60)})
    y = (frame["color"] == "red").to_numpy().astype(int)
    canned = LinearClassifier(epochs=1, random_state=0).fit(frame, y)
    params = {"column": "color", "vocabulary_size": 4, "n_classes": 2}
    config = RunConfig(log_step_count_steps=0)
    custom = Estimator(embedding_fn, str(tmp_path / "m"), params=params, config=config).fit(frame, y, steps=2)
    wider = frame.assign(extra=1.0)
    for model, predict in [(canned, canned.predict_proba), (custom, lambda x: custom.predict(x)["class"])]:
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="skflow"):
            np.testing.assert_array_equal(predict(wider), predict(frame))
        assert "Ignoring column(s) ['extra']" in caplog.text, type(model).__name__
