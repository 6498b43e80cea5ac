"""Which columns a `FileDataFeeder` reads: checked against the files' schema, or taken from a fitted state.

Features must be numeric (integers, floats, booleans: fed as float32); the target keeps integers
and booleans as int64 and floats as float32. A state saved at fit time (a file or a pandas state)
names the feature columns, which are then read by name, in the fitted order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from feeders.base import describe_state, state_kind

__all__ = ["columns_from_state", "resolve_columns", "target_dtype"]


def columns_from_state(state: dict[str, Any], available: list[str], target_column: str | None) -> list[str] | None:
    """The feature columns a model was fitted on, from its feeder state (None: no columns to reuse)."""
    kind = state_kind(state)
    if kind == "file":
        columns = list(state["feature_columns"])
    elif kind == "pandas":
        frame = state["frame"]
        if frame.get("vocabularies"):
            raise ValueError(
                f"This model was fitted on {describe_state(state)}, with categorical column(s) "
                f"{list(frame['vocabularies'])} encoded by the pandas feeder; FileDataFeeder feeds numeric columns "
                "only and cannot apply that encoding. Read the files into a DataFrame (pd.read_parquet(path)) and "
                "pass that instead."
            )
        columns = list(frame["numeric"])
    else:
        return None  # numpy arrays: matched by position, as an array would be
    missing = [c for c in columns if c not in available]
    if missing:
        raise ValueError(
            f"X is missing column(s) {missing} that the model was fitted on. Expected columns {columns}; the data "
            f"has {available}."
        )
    if target_column in columns:
        raise ValueError(f"The target column {target_column!r} was a feature column when the model was fitted.")
    return columns


def resolve_columns(
    schema: pa.Schema, target_column: str | None, feature_columns: Sequence[str] | None
) -> tuple[str | None, list[str]]:
    """The target column and the feature columns (every other column by default), checked against `schema`.

    Raises:
        ValueError: a column that is missing, listed twice or both target and feature, or a feature
            that is not numeric (the message says to encode it or leave it out).
    """
    available = schema.names

    def check_present(name: Any, argument: str) -> None:
        if not isinstance(name, str) or name not in available:
            raise ValueError(f"{argument}={name!r} is not a column of the data. Available columns: {available}.")

    if target_column is not None:
        check_present(target_column, "target_column")
    if feature_columns is None:
        features = [name for name in available if name != target_column]
    else:
        if isinstance(feature_columns, str):
            raise ValueError(
                f"Invalid value for argument `feature_columns`. Received: feature_columns={feature_columns!r}. "
                "Expected a list of column names."
            )
        features = list(feature_columns)
        for name in features:
            check_present(name, "feature_columns entry")
        if target_column in features:
            raise ValueError(f"The target column {target_column!r} is also listed in feature_columns.")
        if len(set(features)) != len(features):
            raise ValueError(f"feature_columns lists a column twice: {features}.")
    if not features:
        raise ValueError(f"There are no feature columns: the data has only {available}.")
    for name in features:
        kind = schema.field(name).type
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)):
            empty = " (it holds no values)" if pa.types.is_null(kind) else ""
            raise ValueError(
                f"Feature column {name!r} has type {kind}{empty}; FileDataFeeder feeds numeric columns only (integers, "
                "floats, booleans). Encode it as numbers in the files beforehand (for example with "
                "sklearn.preprocessing.OrdinalEncoder), or leave it out with feature_columns=[...]."
            )
    return target_column, features


def target_dtype(schema: pa.Schema, name: str) -> np.dtype:
    """The dtype the target is fed as: int64 for integers and booleans, float32 for floats."""
    kind = schema.field(name).type
    if pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        return np.dtype(np.int64)
    if pa.types.is_floating(kind):
        return np.dtype(np.float32)
    raise ValueError(
        f"Target column {name!r} has type {kind}; FileDataFeeder needs a numeric target. Encode class labels as "
        "integers in the files beforehand (for example with sklearn.preprocessing.LabelEncoder)."
    )
