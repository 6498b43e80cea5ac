"""Rows of a batch-major value: one array, or a dict of arrays that share their first dimension.

Every feeder hands the Estimator features and targets in one of these two shapes; these helpers
count, slice, reorder and join their rows without caring which.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["concat_rows", "n_rows", "slice_rows", "take_rows"]


def n_rows(value: Any) -> int:
    """The number of rows (the first dimension) of an array, or of the first array of a dict.

    Args:
        value: an array-like with a `shape`, or a dict of them.

    Returns:
        The length of the first dimension.

    Example:
        >>> n_rows({"a": np.zeros((5, 2)), "b": np.zeros(5)})
        5
    """
    leaf = next(iter(value.values())) if isinstance(value, Mapping) else value
    return int(leaf.shape[0])


def slice_rows(value: Any, start: int, stop: int) -> Any:
    """Rows `start:stop` of an array, or of every array of a dict (views, not copies, for numpy).

    Args:
        value: an array (numpy, scipy.sparse, or anything sliceable) or a dict of them.
        start: first row.
        stop: one past the last row.

    Returns:
        The same kind of value as `value`, holding those rows.

    Example:
        >>> slice_rows({"a": np.arange(6).reshape(3, 2)}, 1, 3)["a"].tolist()
        [[2, 3], [4, 5]]
    """
    if isinstance(value, Mapping):
        return {k: v[start:stop] for k, v in value.items()}
    return value[start:stop]


def take_rows(value: Any, indices: np.ndarray) -> Any:
    """The rows at `indices` of an array or of every array of a dict (copies)."""
    if isinstance(value, Mapping):
        return {k: v[indices] for k, v in value.items()}
    return value[indices]


def concat_rows(values: Sequence[Any]) -> Any:
    """The rows of several arrays (or dicts of arrays with the same keys) one after another."""
    if isinstance(values[0], Mapping):
        return {k: np.concatenate([v[k] for v in values]) for k in values[0]}
    return np.concatenate(values)
