"""setup_train_data_feeder / setup_predict_data_feeder: a feeder chosen by input type, states across kinds."""

from __future__ import annotations

import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp
import tensorflow as tf

from feeders import (
    DataFeeder,
    FileDataFeeder,
    PandasFeeder,
    SparseDataFeeder,
    StreamingDataFeeder,
    setup_predict_data_feeder,
    setup_train_data_feeder,
)
from feeders.dask_feeder import DaskDataFeeder

_PREFETCH = type(tf.data.Dataset.range(1).prefetch(1))


def _is_prefetched_without_autotuning(dataset: tf.data.Dataset) -> bool:
    """The pipeline ends with a prefetch, under options that turn tf.data's autotuning off (its
    thread made iterator teardown, so the end of a fit, take ~150 ms)."""
    inner = getattr(dataset, "_input_dataset", None)
    return isinstance(inner, _PREFETCH) and dataset.options().autotune.enabled is False


def _xy(n: int = 50) -> tuple[np.ndarray, np.ndarray]:
    x = np.arange(3 * n, dtype=np.float32).reshape(n, 3)
    return x, np.arange(n, dtype=np.int64)


def _parquet(path, n: int = 50) -> str:
    x, y = _xy(n)
    pq.write_table(pa.table({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "label": y}), path, row_group_size=20)
    return str(path)


def _parquet_path(path):
    _parquet(path)
    return path  # a pathlib.Path: os.PathLike


def _rows(n: int = 50):
    x, y = _xy(n)
    return ((x[i], y[i]) for i in range(n))


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (lambda tmp: (_xy()[0], _xy()[1]), DataFeeder),
        (lambda tmp: ({"a": _xy()[0], "b": _xy()[1]}, _xy()[1]), DataFeeder),
        (lambda tmp: (pd.DataFrame(_xy()[0], columns=list("abc")), _xy()[1]), PandasFeeder),
        (lambda tmp: (sp.csr_matrix(_xy()[0]), _xy()[1]), SparseDataFeeder),
        (lambda tmp: (sp.csc_matrix(_xy()[0]), _xy()[1]), SparseDataFeeder),
        (lambda tmp: (_parquet(tmp / "d.parquet"), "label"), FileDataFeeder),
        (lambda tmp: (_parquet_path(tmp / "d.parquet"), "label"), FileDataFeeder),
        (lambda tmp: (_rows(), None), StreamingDataFeeder),
        (lambda tmp: (lambda: _rows(), None), StreamingDataFeeder),
        (
            lambda tmp: (dd.from_pandas(pd.DataFrame(_xy()[0], columns=list("abc")), npartitions=2), None),
            DaskDataFeeder,
        ),
        (lambda tmp: (da.from_array(_xy()[0], chunks=(20, 3)), da.from_array(_xy()[1], chunks=20)), DaskDataFeeder),
    ],
    ids=[
        "numpy",
        "dict",
        "pandas",
        "csr",
        "csc",
        "path",
        "pathlike",
        "generator",
        "lambda",
        "dask-frame",
        "dask-array",
    ],
)
def test_the_feeder_is_chosen_by_the_type_of_x(tmp_path, make, kind):
    x, y = make(tmp_path)
    assert type(setup_train_data_feeder(x, y)) is kind


def test_the_arguments_are_x_y_batch_size_shuffle_epochs_seed_in_that_order():
    x, y = _xy(10)
    feeder = setup_train_data_feeder(x, y, 4, False, 2, 7)
    assert (feeder.batch_size, feeder.shuffle, feeder.epochs, feeder.seed) == (4, False, 2, 7)
    assert [int(b.shape[0]) for b, _ in feeder.dataset()] == [4, 4, 2] * 2


def test_a_function_returning_an_iterator_is_a_stream_read_once_per_epoch():
    feeder = setup_train_data_feeder(lambda: _rows(10), None, 4, False, 3)
    assert isinstance(feeder, StreamingDataFeeder)
    assert sum(int(b.shape[0]) for b, _ in feeder.dataset()) == 30


def test_a_function_that_needs_arguments_is_a_clear_error():
    with pytest.raises(TypeError, match=r"x is a function \(.*\) that needs arguments"):
        setup_train_data_feeder(lambda features, targets: None, None)


def test_a_function_that_returns_no_iterator_is_a_clear_error():
    with pytest.raises(TypeError, match=r"returned int, not an iterator"):
        setup_train_data_feeder(lambda: 3, None)


def test_a_class_is_not_data():
    with pytest.raises(TypeError, match="x is the class DataFeeder, not data"):
        setup_train_data_feeder(DataFeeder, None)


def test_impute_mean_fills_numpy_nan_with_the_training_mean_and_keeps_it_for_prediction():
    x = np.array([[1.0, 10.0], [np.nan, 20.0], [3.0, np.nan]])
    feeder = setup_train_data_feeder(x, None, 3, False, 1, impute="mean")
    np.testing.assert_allclose(feeder.x, [[1, 10], [2, 20], [3, 15]])
    assert feeder.state == {"type": "numpy", "impute": "mean", "fill_values": [2.0, 15.0]}
    later = setup_predict_data_feeder(np.array([[np.nan, np.nan]]), state=feeder.state)
    np.testing.assert_allclose(later.x, [[2, 15]])


def test_impute_fills_dataframe_nan_with_the_training_mean():
    frame = pd.DataFrame({"a": [1.0, np.nan, 3.0], "b": ["x", None, "y"]})
    feeder = setup_train_data_feeder(frame, None, 3, False, 1, impute=True)
    np.testing.assert_allclose(feeder.x["numeric"][:, 0], [1, 2, 3])
    assert feeder.x["b"].tolist() == [0, 2, 1]  # the missing category goes to the out-of-vocabulary id


@pytest.mark.parametrize("impute", ["median", 0, "yes"])
def test_an_unknown_imputation_is_an_argument_error(impute):
    with pytest.raises(ValueError, match=r"Invalid value for argument `impute`. Received: impute="):
        setup_train_data_feeder(np.zeros((3, 2)), None, impute=impute)


@pytest.mark.parametrize(
    "make", [lambda tmp: sp.csr_matrix(np.eye(3)), lambda tmp: _parquet(tmp / "d.parquet"), lambda tmp: _rows()]
)
def test_impute_for_an_input_that_cannot_impute_is_an_error(tmp_path, make):
    with pytest.raises(ValueError, match="impute is not supported for"):
        setup_train_data_feeder(make(tmp_path), None, impute="mean")


# ---------------------------------------------------------------- states across kinds


def test_a_file_state_feeds_a_dataframe_its_feature_columns_by_name_in_the_fitted_order(tmp_path):
    state = setup_train_data_feeder(_parquet(tmp_path / "d.parquet"), "label").state
    assert state["type"] == "file"
    x, y = _xy(5)
    frame = pd.DataFrame({"label": y, "c": x[:, 2], "b": x[:, 1], "a": x[:, 0]})
    feeder = setup_predict_data_feeder(frame, state=state)
    np.testing.assert_array_equal(feeder.x, x)


def test_a_state_saved_before_it_had_a_type_is_recognised_by_its_keys(tmp_path):
    x, y = _xy(5)
    frame = pd.DataFrame({"c": x[:, 2], "a": x[:, 0], "b": x[:, 1]})
    old_file_state = {"feature_columns": ["a", "b", "c"], "target_column": "label"}
    np.testing.assert_array_equal(setup_predict_data_feeder(frame, state=old_file_state).x, x)
    fitted = PandasFeeder(pd.DataFrame({"a": [1.0, 2.0], "city": ["Oslo", "Rome"]}), pd.Series(["no", "yes"]))
    old_pandas_state = {k: v for k, v in fitted.state.items() if k != "type"}
    again = setup_predict_data_feeder(pd.DataFrame({"city": ["Rome"], "a": [3.0]}), state=old_pandas_state)
    assert again.x["city"].tolist() == [1] and again.label_encoding.classes == ["no", "yes"]


def test_a_numpy_state_given_a_dataframe_says_what_the_model_was_fitted_on():
    state = DataFeeder(np.array([[1.0, np.nan], [2.0, 3.0]]), impute="mean").state
    with pytest.raises(ValueError, match=r"This model was fitted on numpy arrays .*; a DataFrame cannot be matched"):
        setup_predict_data_feeder(pd.DataFrame({"a": [1.0]}), state=state)


def test_a_pandas_state_with_categories_given_files_says_to_read_them_into_a_dataframe(tmp_path):
    state = PandasFeeder(pd.DataFrame({"a": [1.0, 2.0], "city": ["Oslo", "Rome"]})).state
    with pytest.raises(ValueError, match=r"categorical column\(s\) \['city'\].*pd.read_parquet"):
        setup_predict_data_feeder(_parquet(tmp_path / "d.parquet"), state=state)


def test_a_numeric_pandas_state_reads_files_by_column_name(tmp_path):
    x, _ = _xy(50)
    state = PandasFeeder(pd.DataFrame({"c": x[:, 2], "a": x[:, 0]})).state
    feeder = setup_predict_data_feeder(_parquet(tmp_path / "d.parquet"), batch_size=64, state=state)
    np.testing.assert_array_equal(next(iter(feeder.dataset())).numpy(), x[:, [2, 0]])


def test_a_dask_frame_given_a_file_state_selects_its_columns(tmp_path):
    state = setup_train_data_feeder(_parquet(tmp_path / "d.parquet"), "label").state
    x, y = _xy(6)
    frame = dd.from_pandas(pd.DataFrame({"b": x[:, 1], "label": y, "a": x[:, 0], "c": x[:, 2]}), npartitions=2)
    feeder = setup_predict_data_feeder(frame, batch_size=6, state=state)
    np.testing.assert_array_equal(next(iter(feeder.dataset())).numpy(), x)


# ---------------------------------------------------------------- every feeder: prefetched whole batches


def _feeders(tmp_path, shuffle: bool, epochs: int | None):
    x, y = _xy(50)
    frame = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "city": np.where(y % 2, "Oslo", "Rome")})
    common = {"batch_size": 16, "shuffle": shuffle, "epochs": epochs, "seed": 0}
    yield DataFeeder(x, y, **common)
    yield DataFeeder({"a": x, "b": y}, y, **common)
    yield PandasFeeder(frame, y, **common)
    yield SparseDataFeeder(sp.csr_matrix(x), y, **common)
    yield FileDataFeeder(_parquet(tmp_path / "d.parquet"), "label", **common)
    yield DaskDataFeeder(dd.from_pandas(frame, npartitions=3), dd.from_pandas(pd.Series(y), npartitions=3), **common)
    yield DaskDataFeeder(da.from_array(x, chunks=(20, 3)), da.from_array(y, chunks=20), **common)
    yield StreamingDataFeeder(lambda: _rows(50), batch_size=16, epochs=epochs)


def _rows_of(element) -> int:
    features = element[0]
    leaf = next(iter(features.values())) if isinstance(features, dict) else features
    return int(leaf.dense_shape[0]) if isinstance(leaf, tf.SparseTensor) else int(leaf.shape[0])


def test_every_feeder_gives_a_prefetched_dataset_and_an_ordered_pass_of_whole_batches(tmp_path):
    for feeder in _feeders(tmp_path, shuffle=False, epochs=1):
        dataset = feeder.dataset()
        assert _is_prefetched_without_autotuning(dataset), f"{type(feeder).__name__}: {type(dataset).__name__}"
        assert [_rows_of(e) for e in dataset] == [16, 16, 16, 2], type(feeder).__name__


def test_every_feeder_gives_only_whole_batches_when_training(tmp_path):
    for feeder in _feeders(tmp_path, shuffle=True, epochs=None):
        dataset = feeder.dataset()
        assert _is_prefetched_without_autotuning(dataset), f"{type(feeder).__name__}: {type(dataset).__name__}"
        assert [_rows_of(e) for e in dataset.take(10)] == [16] * 10, type(feeder).__name__
