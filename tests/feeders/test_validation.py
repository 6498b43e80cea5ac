"""Argument checks: one wording for every feeder, as strict as scikit-learn's check_scalar."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp

from feeders import (
    DataFeeder,
    FileDataFeeder,
    PandasFeeder,
    SparseDataFeeder,
    StreamingDataFeeder,
    setup_train_data_feeder,
)

_BAD_COUNTS = [0, -3, 2.5, 2.0, "5", True, None]


def _parquet(tmp_path) -> str:
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"a": np.arange(10.0), "label": np.arange(10)}), path)
    return str(path)


def _make(which: str, tmp_path, **kwargs):
    if which == "numpy":
        return DataFeeder(np.zeros((4, 2)), np.zeros(4), **kwargs)
    if which == "pandas":
        return PandasFeeder(pd.DataFrame({"a": [1.0, 2.0]}), **kwargs)
    if which == "sparse":
        return SparseDataFeeder(sp.eye(4, format="csr"), **kwargs)
    if which == "streaming":
        return StreamingDataFeeder(lambda: iter([np.ones(2)] * 4), **kwargs)
    if which == "file":
        return FileDataFeeder(_parquet(tmp_path), "label", **kwargs)
    raise AssertionError(which)


def _message(name: str, value, allow_none: bool = False) -> str:
    expected = "a positive integer or None" if allow_none else "a positive integer"
    return re.escape(f"Invalid value for argument `{name}`. Received: {name}={value!r}. Expected {expected}.")


@pytest.mark.parametrize("kind", ["numpy", "pandas", "sparse", "streaming", "file"])
@pytest.mark.parametrize("batch_size", _BAD_COUNTS)
def test_every_feeder_rejects_a_batch_size_that_is_not_a_positive_integer(tmp_path, kind, batch_size):
    with pytest.raises(ValueError, match=f"^{_message('batch_size', batch_size)}$"):
        _make(kind, tmp_path, batch_size=batch_size)


@pytest.mark.parametrize("kind", ["numpy", "pandas", "sparse", "streaming", "file"])
@pytest.mark.parametrize("epochs", [0, -1, 1.5, 3.0, "2", False])
def test_every_feeder_rejects_epochs_that_are_neither_a_positive_integer_nor_none(tmp_path, kind, epochs):
    with pytest.raises(ValueError, match=f"^{_message('epochs', epochs, allow_none=True)}$"):
        _make(kind, tmp_path, epochs=epochs)


@pytest.mark.parametrize("value", [np.int64(2), 7])
def test_numpy_integers_are_accepted_and_stored_as_int(value):
    feeder = DataFeeder(np.zeros((4, 2)), batch_size=value, epochs=value)
    assert type(feeder.batch_size) is int and feeder.batch_size == value
    assert type(feeder.epochs) is int


@pytest.mark.parametrize("size", _BAD_COUNTS)
def test_the_file_feeders_shuffle_buffer_batches_must_be_a_positive_integer(tmp_path, size):
    with pytest.raises(ValueError, match=f"^{_message('shuffle_buffer_batches', size)}$"):
        _make("file", tmp_path, shuffle_buffer_batches=size)


@pytest.mark.parametrize("budget", [0, -1.0, float("nan"), float("inf"), "96", True])
def test_the_memory_budget_must_be_a_positive_number_of_mib(tmp_path, budget):
    expected = f"Invalid value for argument `memory_budget_mb`. Received: memory_budget_mb={budget!r}. "
    with pytest.raises(ValueError, match="^" + re.escape(expected + "Expected a positive number or None.") + "$"):
        _make("file", tmp_path, memory_budget_mb=budget)


def test_the_streaming_kind_must_be_one_of_its_choices():
    with pytest.raises(ValueError, match=re.escape("Received: kind='row'. Expected 'auto', 'rows' or 'batches'.")):
        StreamingDataFeeder(iter([np.ones(2)] * 4), kind="row")


def test_the_file_format_must_be_parquet_csv_or_none(tmp_path):
    with pytest.raises(ValueError, match=re.escape("Received: format='orc'. Expected 'parquet', 'csv' or None.")):
        _make("file", tmp_path, format="orc")


def test_setup_checks_the_batch_size_of_every_input_kind_the_same_way():
    with pytest.raises(ValueError, match=f"^{_message('batch_size', -3)}$"):
        setup_train_data_feeder(iter([np.ones(2)] * 4), None, batch_size=-3)
    with pytest.raises(ValueError, match=f"^{_message('batch_size', -3)}$"):
        setup_train_data_feeder(np.zeros((4, 2)), None, batch_size=-3)


@pytest.mark.parametrize("size", _BAD_COUNTS)
def test_the_streaming_feeders_shuffle_buffer_size_must_be_a_positive_integer(tmp_path, size):
    with pytest.raises(ValueError, match=f"^{_message('shuffle_buffer_size', size)}$"):
        _make("streaming", tmp_path, shuffle=True, shuffle_buffer_size=size)
