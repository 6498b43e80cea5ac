"""What a canned estimator checks about its data before the inner `Estimator` sees it.

DataFrames with categorical, string or boolean columns go to the `PandasFeeder` (vocabularies
learned at fit, columns matched by name); every other input is validated by scikit-learn's
`validate_data` in the canned estimator itself, so scikit-learn's own checks see its own messages.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_array

from estimators._validation import invalid_argument

__all__ = [
    "as_frame",
    "check_sample_weight",
    "column_statistics",
    "layout",
    "needs_pandas_feeder",
    "numeric_block",
    "seed_of",
    "str_columns",
]


def needs_pandas_feeder(X: Any) -> bool:
    """Whether X is a DataFrame (or Series) with a column that is not plain numbers (categorical,
    string, object or boolean): those go through the `PandasFeeder`."""
    if isinstance(X, pd.Series):
        X = X.to_frame()
    if not isinstance(X, pd.DataFrame):
        return False
    return any(not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype) for dtype in X.dtypes)


def as_frame(X: pd.DataFrame | pd.Series) -> pd.DataFrame:
    """A Series as a one-column DataFrame; a DataFrame as it is."""
    return X.to_frame() if isinstance(X, pd.Series) else X


def str_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with its column names as strings, as the PandasFeeder names them."""
    return frame if all(isinstance(c, str) for c in frame.columns) else frame.rename(columns=str)


def layout(a: Any) -> Any:
    """The shape of an input as the compiled functions see it (column names and dtypes of a frame)."""
    if isinstance(a, pd.DataFrame):
        return tuple(a.columns), tuple(str(t) for t in a.dtypes)
    return tuple(np.shape(a)[1:]), str(getattr(a, "dtype", None))


def seed_of(random_state: Any) -> int | None:
    """The integer seed of one fit: `random_state` itself, or one draw from a RandomState (made once per fit)."""
    if random_state is None:
        return None
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return int(random_state)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, 2**31 - 1))
    raise invalid_argument("random_state", random_state, "None, an integer or a numpy.random.RandomState")


def check_sample_weight(sample_weight: Any, n_samples: int) -> np.ndarray:
    """`sample_weight` as a float32 array of shape (n_samples,): a scalar is one weight for every row.

    Raises:
        ValueError: not 1-D, not one weight per row, NaN or infinite, negative, or all zero.
    """
    if isinstance(sample_weight, numbers.Number):
        weights = np.full(n_samples, sample_weight, dtype=np.float64)
    else:
        weights = check_array(
            sample_weight, ensure_2d=False, dtype=[np.float64, np.float32], input_name="sample_weight"
        )
        if weights.ndim != 1:
            raise ValueError(f"Sample weights must be a 1D array or a scalar; received shape {weights.shape}.")
        if weights.shape[0] != n_samples:
            raise ValueError(f"sample_weight has {weights.shape[0]} entries, but X has {n_samples} samples.")
    if (weights < 0).any():
        raise ValueError("Negative values in data passed to `sample_weight`.")
    if not weights.any():
        raise ValueError("Sample weights must contain at least one non-zero number.")
    return weights.astype(np.float32)


def numeric_block(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """The float64 values of `columns` (names as the PandasFeeder has them: strings) of `frame`, NaN
    where a value is missing: the numeric block the PandasFeeder feeds, before imputation."""
    named = str_columns(frame)
    values = [named[c].to_numpy(dtype=np.float64, na_value=np.nan) for c in columns]
    return np.stack(values, axis=1) if values else np.empty((len(frame), 0))


def column_statistics(values: np.ndarray, sample_weight: np.ndarray | None) -> tuple[list[float], list[float]]:
    """Per-column mean and standard deviation of `values` (n_samples, n_features), NaN ignored.

    Weighted by `sample_weight` (a weight of 2 counts like a repeated row; see `check_sample_weight`).
    A column that is constant (or has no value) gets scale 1, so standardising it gives 0.
    """
    values = np.asarray(values, dtype=np.float64)
    weights = np.ones(len(values)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    present = ~np.isnan(values)
    w = present * weights[:, None]
    filled = np.where(present, values, 0.0)
    total = w.sum(axis=0)
    safe_total = np.where(total > 0, total, 1.0)
    mean = (w * filled).sum(axis=0) / safe_total
    std = np.sqrt((w * (filled - mean) ** 2).sum(axis=0) / safe_total)
    counted = w > 0
    varies = np.where(counted, values, np.inf).min(axis=0) < np.where(counted, values, -np.inf).max(axis=0)
    # A scale that float32 cannot hold (below its smallest normal number) would divide by zero in training.
    scale = np.where(varies & (std > np.finfo(np.float32).tiny), std, 1.0)
    return mean.tolist(), scale.tolist()
