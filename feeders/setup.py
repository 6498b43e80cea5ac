"""Choosing a feeder by input type: `setup_train_data_feeder` and `setup_predict_data_feeder`."""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from feeders._validation import check_impute
from feeders.base import Feeder
from feeders.numpy_feeder import DataFeeder

__all__ = ["is_feeder", "setup_predict_data_feeder", "setup_train_data_feeder"]


def is_feeder(x: Any) -> bool:
    """Whether `x` is already a feeder (passed to fit/evaluate/predict as it is)."""
    return isinstance(x, Feeder) and not isinstance(x, type)


def _is_dask(x: Any) -> bool:
    module = type(x).__module__ or ""
    return module.startswith("dask.")


def _is_sparse(x: Any) -> bool:
    return hasattr(x, "tocsr") and hasattr(x, "nnz")


def _is_stream(x: Any) -> bool:
    return (
        inspect.isgenerator(x) or (hasattr(x, "__next__") and hasattr(x, "__iter__")) or inspect.isgeneratorfunction(x)
    )


def _is_array_like(x: Any) -> bool:
    return (
        isinstance(x, (np.ndarray, Mapping))
        or (isinstance(x, Sequence) and not isinstance(x, (str, bytes)))
        or hasattr(x, "__array__")
        or hasattr(x, "__array_interface__")
    )


def _is_stream_factory(x: Any) -> bool:
    """A function (a lambda, say) that returns an iterator: StreamingDataFeeder calls it once per epoch."""
    return callable(x) and not isinstance(x, type) and not _is_array_like(x)


_WHAT_FITS = (
    "Pass an array-like of shape (n_samples, n_features), a dict of arrays, a pandas or dask DataFrame, a "
    "scipy.sparse matrix, an iterator or a function returning one, a path to Parquet/CSV files, or a feeder."
)


def setup_train_data_feeder(
    x: Any,
    y: Any = None,
    batch_size: int | None = None,
    shuffle: bool = True,
    epochs: int | None = None,
    seed: int | None = None,
    state: dict[str, Any] | None = None,
    impute: bool | str | None = None,
) -> Feeder:
    """A feeder for `x` (and `y`), chosen by type, as the seed's function of the same name did.

    | x | feeder |
    |---|---|
    | a feeder | itself |
    | pandas DataFrame / Series | `PandasFeeder` |
    | dask DataFrame / Series / Array | `DaskDataFeeder` (needs `pip install skflow[dask]`) |
    | scipy.sparse matrix or array | `SparseDataFeeder` |
    | iterator, generator, or a function returning one | `StreamingDataFeeder` |
    | str / os.PathLike (file or directory) | `FileDataFeeder` (Parquet, CSV); y names the target column |
    | numpy array-like or dict of them | `DataFeeder` |

    Args:
        x, y: the data. For files, `y` is the name of the target column (or None).
        batch_size: rows per batch; default=32.
        shuffle: shuffle each epoch (iterators: in a buffer of 1024 rows, see `StreamingDataFeeder`).
        epochs: passes (None: forever).
        seed: shuffling seed.
        state: an encoding learned at fit time (`feeder.state`), applied instead of learning one.
            With files, the feature columns of a file-fitted model are read by name, in the fitted
            order; a DataFrame given to a file-fitted model is fed those columns in that order.
        impute: None (default: a NaN in the features is an error naming the column), or "mean"
            (True too): fill NaN with the training mean of the column (pandas and dask frames:
            categorical NaN go to the out-of-vocabulary id), learned at fit and kept in `state`.
            numpy arrays, pandas and dask frames only.

    Returns:
        A `Feeder`.

    Raises:
        TypeError: x is a class, or a function that does not return an iterator.
        ValueError: bad data (see each feeder), or `impute` for an input that cannot impute.

    Example:
        >>> feeder = setup_train_data_feeder(np.zeros((10, 3)), np.zeros(10), 4, False, 1)
        >>> type(feeder).__name__, [int(x.shape[0]) for x, _ in feeder.dataset()]
        ('DataFeeder', [4, 4, 2])
    """
    batch_size = 32 if batch_size is None else batch_size
    if is_feeder(x):
        if y is not None:
            raise ValueError("y must be None when x is a feeder: the feeder carries its own targets.")
        return x
    if x is None:
        raise ValueError(
            "x is None; pass array-like data, a DataFrame, a sparse matrix, an iterator, a path, or a feeder."
        )
    imputing = check_impute(impute) is not None
    if _is_dask(x):
        from feeders.dask_feeder import DaskDataFeeder

        return DaskDataFeeder(
            x, y, batch_size=batch_size, shuffle=shuffle, epochs=epochs, seed=seed, state=state, impute=imputing
        )
    from feeders.pandas_feeder import PandasFeeder, is_pandas

    if is_pandas(x):
        return PandasFeeder(
            x, y, batch_size=batch_size, shuffle=shuffle, epochs=epochs, seed=seed, impute=imputing, state=state
        )
    if _is_sparse(x):
        from feeders.sparse_feeder import SparseDataFeeder

        _no_imputation(imputing, "scipy.sparse matrices")
        return SparseDataFeeder(x, y, batch_size=batch_size, shuffle=shuffle, epochs=epochs, seed=seed)
    if isinstance(x, (str, os.PathLike)):
        from feeders.file_feeder import FileDataFeeder

        _no_imputation(imputing, "Parquet/CSV files")
        if y is not None and not isinstance(y, str):
            raise ValueError(f"With a file or directory as x, y names the target column; received {type(y).__name__}.")
        return FileDataFeeder(
            x, target_column=y, batch_size=batch_size, shuffle=shuffle, epochs=epochs, seed=seed, state=state
        )
    if _is_stream(x) or _is_stream_factory(x):
        from feeders.streaming_feeder import StreamingDataFeeder

        _no_imputation(imputing, "iterators")
        return StreamingDataFeeder(
            x,
            y,
            batch_size=batch_size,
            epochs=1 if epochs is None and not callable(x) else epochs,
            shuffle=shuffle,
            seed=seed,
        )
    if y is not None and _is_stream(y):
        raise ValueError("y is an iterator but x is not; pass both as iterators, or both as arrays.")
    if isinstance(x, type):
        raise TypeError(f"x is the class {x.__qualname__}, not data. {_WHAT_FITS}")
    return DataFeeder(
        x, y, batch_size=batch_size, shuffle=shuffle, epochs=epochs, seed=seed, impute=impute, state=state
    )


def _no_imputation(imputing: bool, what: str) -> None:
    if imputing:
        raise ValueError(
            f"impute is not supported for {what}: fill or drop the missing values beforehand, or pass numpy arrays "
            "or a DataFrame."
        )


def setup_predict_data_feeder(x: Any, batch_size: int | None = None, state: dict[str, Any] | None = None) -> Feeder:
    """A feeder for one ordered pass over `x` without targets (prediction).

    With a file state, only the fitted feature columns are read: a file that still holds the
    target column predicts as well as one without it.
    """
    return setup_train_data_feeder(x, None, batch_size=batch_size, shuffle=False, epochs=1, state=state)
