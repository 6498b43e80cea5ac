"""Choosing a feeder by input type: `setup_train_data_feeder` and `setup_predict_data_feeder`."""

from __future__ import annotations

import inspect
import os
from typing import Any

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


def setup_train_data_feeder(
    x: Any,
    y: Any = None,
    batch_size: int | None = None,
    shuffle: bool = True,
    epochs: int | None = None,
    seed: int | None = None,
    state: dict[str, Any] | None = None,
) -> Feeder:
    """A feeder for `x` (and `y`), chosen by type, as the seed's function of the same name did.

    | x | feeder |
    |---|---|
    | a feeder | itself |
    | pandas DataFrame / Series | `PandasFeeder` |
    | dask DataFrame / Series / Array | `DaskDataFeeder` (needs `pip install skflow[dask]`) |
    | scipy.sparse matrix or array | `SparseDataFeeder` |
    | iterator, generator, or generator function | `StreamingDataFeeder` |
    | str / os.PathLike (file or directory) | `FileDataFeeder` (Parquet, CSV); y names the target column |
    | numpy array-like or dict of them | `DataFeeder` |

    Args:
        x, y: the data. For files, `y` is the name of the target column (or None).
        batch_size: rows per batch; default=32.
        shuffle: shuffle each epoch. epochs: passes (None: forever). seed: shuffling seed.
        state: an encoding learned at fit time (`feeder.state`), applied instead of learning one.

    Returns:
        A `Feeder`.
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
    if _is_dask(x):
        from feeders.dask_feeder import DaskDataFeeder

        return DaskDataFeeder(x, y, batch_size=batch_size, shuffle=shuffle, epochs=epochs, seed=seed, state=state)
    from feeders.pandas_feeder import PandasFeeder, is_pandas

    if is_pandas(x):
        return PandasFeeder(x, y, batch_size=batch_size, shuffle=shuffle, epochs=epochs, seed=seed, state=state)
    if _is_sparse(x):
        from feeders.sparse_feeder import SparseDataFeeder

        return SparseDataFeeder(x, y, batch_size=batch_size, shuffle=shuffle, epochs=epochs, seed=seed)
    if isinstance(x, (str, os.PathLike)):
        from feeders.file_feeder import FileDataFeeder

        if y is not None and not isinstance(y, str):
            raise ValueError(f"With a file or directory as x, y names the target column; received {type(y).__name__}.")
        return FileDataFeeder(x, target_column=y, batch_size=batch_size, shuffle=shuffle, epochs=epochs, seed=seed)
    if _is_stream(x):
        from feeders.streaming_feeder import StreamingDataFeeder

        return StreamingDataFeeder(
            x, y, batch_size=batch_size, epochs=1 if epochs is None and not callable(x) else epochs
        )
    if y is not None and _is_stream(y):
        raise ValueError("y is an iterator but x is not; pass both as iterators, or both as arrays.")
    return DataFeeder(x, y, batch_size=batch_size, shuffle=shuffle, epochs=epochs, seed=seed)


def setup_predict_data_feeder(x: Any, batch_size: int | None = None, state: dict[str, Any] | None = None) -> Feeder:
    """A feeder for one ordered pass over `x` without targets (prediction)."""
    return setup_train_data_feeder(x, None, batch_size=batch_size, shuffle=False, epochs=1, state=state)
