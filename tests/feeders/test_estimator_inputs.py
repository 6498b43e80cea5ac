"""The Estimator fed through the feeders end to end: file paths, scipy CSR, pickled pandas encodings."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp

from estimators import Estimator, RunConfig
from tests.helpers import embedding_fn, logistic_fn, sparse_logistic_fn

CFG = RunConfig(tf_random_seed=0, log_step_count_steps=0)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The same rows three times: columns a, b, c, label; then c, b, a, label; then a, b, c without label."""
    folder = tmp_path_factory.mktemp("files")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 3)).astype(np.float32)
    x[:, 2] *= 5  # so that a misaligned column changes the predictions
    label = (x[:, 0] - x[:, 2] / 5 > 0).astype(np.int64)
    columns = {"a": x[:, 0], "b": x[:, 1], "c": x[:, 2]}
    pq.write_table(pa.table({**columns, "label": label}), folder / "train.parquet")
    pq.write_table(pa.table({"c": x[:, 2], "b": x[:, 1], "a": x[:, 0], "label": label}), folder / "reordered.parquet")
    pq.write_table(pa.table(columns), folder / "features.parquet")
    return folder, x, label


@pytest.fixture(scope="module")
def fitted_on_files(files, tmp_path_factory):
    folder, _, _ = files
    est = Estimator(logistic_fn, model_dir=str(tmp_path_factory.mktemp("m") / "model"), config=CFG)
    return est.fit(str(folder / "train.parquet"), "label", steps=150, batch_size=32)


def test_a_model_fitted_on_a_parquet_path_evaluates_a_file_with_reordered_columns_like_the_original(
    fitted_on_files, files
):
    folder, _, _ = files
    original = fitted_on_files.evaluate(str(folder / "train.parquet"), "label", metrics=["accuracy"])
    reordered = fitted_on_files.evaluate(str(folder / "reordered.parquet"), "label", metrics=["accuracy"])
    assert original["accuracy"] > 0.9
    assert reordered["loss"] == pytest.approx(original["loss"])
    assert reordered["accuracy"] == original["accuracy"]


def test_a_model_fitted_on_a_parquet_path_predicts_on_a_file_that_still_holds_the_label_column(fitted_on_files, files):
    folder, x, _ = files
    with_label = fitted_on_files.predict(str(folder / "train.parquet"))
    reordered = fitted_on_files.predict(str(folder / "reordered.parquet"))
    without_label = fitted_on_files.predict(str(folder / "features.parquet"))
    assert with_label.shape == (300,)
    np.testing.assert_array_equal(with_label, without_label)
    np.testing.assert_array_equal(reordered, without_label)
    np.testing.assert_array_equal(with_label, fitted_on_files.predict(x))


def test_a_model_fitted_on_a_parquet_path_predicts_on_a_dataframe_matching_its_columns_by_name(fitted_on_files, files):
    folder, x, label = files
    frame = pd.DataFrame({"c": x[:, 2], "label": label, "a": x[:, 0], "b": x[:, 1]})  # another order, plus the label
    np.testing.assert_array_equal(fitted_on_files.predict(frame), fitted_on_files.predict(x))


def test_a_dataframe_missing_a_fitted_column_is_an_error_naming_it(fitted_on_files, files):
    _, x, _ = files
    with pytest.raises(ValueError, match=r"missing column\(s\) \['b'\]"):
        fitted_on_files.predict(pd.DataFrame({"a": x[:, 0], "c": x[:, 2]}))


def test_an_estimator_fits_evaluates_and_predicts_on_a_scipy_csr_matrix_passed_as_x(tmp_path):
    n, n_features = 400, 60
    x = sp.random(n, n_features, density=0.1, format="csr", random_state=0, dtype=np.float32)
    w = np.random.default_rng(0).normal(size=n_features)
    y = (x @ w > 0).astype(np.int64)
    est = Estimator(sparse_logistic_fn, model_dir=str(tmp_path / "m"), params={"n_features": n_features}, config=CFG)
    est.fit(x, y, steps=200, batch_size=32)
    result = est.evaluate(x, y, metrics=["accuracy"])
    assert result["global_step"] == 200 and result["accuracy"] > 0.85
    predictions = est.predict(x)
    assert predictions.shape == (n,)
    assert np.mean(predictions == y) == pytest.approx(result["accuracy"])


def test_a_pickled_estimator_fitted_on_a_dataframe_with_string_columns_predicts_the_original_labels(tmp_path):
    rng = np.random.default_rng(0)
    n = 240
    city = rng.choice(["Oslo", "Paris", "Rome"], n)
    plan = pd.Series(rng.choice(["a", "b"], n), dtype=object)  # a column of Python strings
    frame = pd.DataFrame({"age": rng.uniform(0, 1, n), "city": pd.Categorical(city), "plan": plan})
    labels = pd.Series(np.where(city == "Paris", "stay", "leave"))
    params = {"column": "city", "vocabulary_size": 4, "n_classes": 2}
    est = Estimator(embedding_fn, model_dir=str(tmp_path / "m"), params=params, config=CFG)
    est.fit(frame, labels, steps=150, batch_size=32)
    before = est.predict(frame)["class"]
    clone = pickle.loads(pickle.dumps(est))
    after = clone.predict(frame[["plan", "city", "age"]])["class"]
    assert set(after) <= {"stay", "leave"}
    np.testing.assert_array_equal(after, before)
    assert np.mean(after == labels.to_numpy()) > 0.9
