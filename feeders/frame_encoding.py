"""How a pandas DataFrame becomes arrays, learned once at fit time and applied unchanged afterwards.

:class:`FrameEncoding` learns which columns are numeric (fed as one float32 block), each
categorical column's vocabulary (fed as int64 ids) and the imputation values; :class:`LabelEncoding`
learns the class labels. Both are saved with the model as JSON and applied unchanged to evaluation
and prediction frames: columns are matched by *name*, so their order may differ; a category never
seen at fit time goes to an out-of-vocabulary id (`len(vocabulary)`) with one warning per column,
instead of a crash.

Encoded features are one float32 array `(n_samples, n_numeric)` when every column is numeric (so a
seed-style model_fn sees a plain matrix), and otherwise a dict: `NUMERIC_KEY` ("numeric") for the
float32 block and one `(n_samples,)` int64 id array per categorical column.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from feeders.base import describe_state, state_kind

__all__ = ["NUMERIC_KEY", "FrameEncoding", "LabelEncoding", "as_frame", "column_kind", "encodings_from_state"]

logger = logging.getLogger("skflow")

NUMERIC_KEY = "numeric"


def _is_datetime_like(dtype: Any) -> bool:
    return (
        pd.api.types.is_datetime64_any_dtype(dtype)
        or pd.api.types.is_timedelta64_dtype(dtype)
        or isinstance(dtype, pd.PeriodDtype)
    )


def _datetime_error(name: str, dtype: Any) -> ValueError:
    return ValueError(
        f"Column {name!r} holds dates/times ({dtype}); skflow does not guess how to encode them. Turn it into "
        f"numbers first, e.g. df[{name!r}].astype('int64') // 10**9 for seconds since the epoch, or calendar "
        f"features such as df[{name!r}].dt.dayofweek and df[{name!r}].dt.hour."
    )


_PLAIN_CATEGORY = (str, bool, int, float, np.integer, np.floating, np.bool_)


def _check_categories(name: str, dtype: pd.CategoricalDtype) -> None:
    """Categories are saved with the model as JSON: dates and other objects get a clear error instead."""
    categories = dtype.categories
    if _is_datetime_like(categories.dtype):
        raise _datetime_error(name, f"category of {categories.dtype}")
    odd = sorted({type(v).__name__ for v in categories if not isinstance(v, _PLAIN_CATEGORY)})
    if odd:
        raise ValueError(
            f"Column {name!r} is a categorical whose categories are {', '.join(odd)} objects (from pd.cut, say); "
            "skflow saves vocabularies of strings, numbers and booleans only. Convert it first, e.g. "
            f"df[{name!r}].astype(str) to keep it categorical, or df[{name!r}].cat.codes for its ids as numbers."
        )


def column_kind(name: str, series: pd.Series) -> str:
    """How column `name` is encoded: "numeric" (float32 block) or "category" (int64 ids).

    Raises:
        ValueError: dates and times, bytes, complex numbers, sequences or mixed types, with the
            conversion that makes the column usable.
    """
    dtype = series.dtype
    if _is_datetime_like(dtype):
        raise _datetime_error(name, dtype)
    if isinstance(dtype, pd.CategoricalDtype):
        _check_categories(name, dtype)
        return "category"
    if pd.api.types.is_bool_dtype(dtype):
        return "category"
    if pd.api.types.is_complex_dtype(dtype):
        raise ValueError(f"Column {name!r}: Complex data not supported.")
    if pd.api.types.is_numeric_dtype(dtype):
        return "numeric"
    if pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype):
        inferred = pd.api.types.infer_dtype(series, skipna=True)
        if inferred in ("string", "empty"):
            return "category"
        if inferred == "boolean":
            return "category"
        if inferred in ("integer", "floating", "mixed-integer-float", "decimal"):
            return "numeric"
        if inferred == "bytes":
            raise ValueError(
                f"Column {name!r} holds bytes; skflow encodes text columns, not raw bytes. Decode them first, e.g. "
                f"df[{name!r}] = df[{name!r}].str.decode('utf-8'), and the column is encoded as a category."
            )
        if inferred in ("datetime", "datetime64", "date", "timedelta", "timedelta64", "period", "time"):
            raise _datetime_error(name, f"object column of {inferred} values")
        sample = series.dropna()
        if len(sample) and isinstance(sample.iloc[0], (list, tuple, np.ndarray, dict)):
            raise ValueError(
                f"Column {name!r} holds sequences (ragged lists); a feature column must hold one value per row. "
                "Expand it into one column per position, or aggregate it."
            )
        kinds = sorted({type(v).__name__ for v in sample.iloc[:1000]})
        raise ValueError(
            f"Column {name!r} has dtype object and mixes types ({', '.join(kinds)}). Make it one type, e.g. "
            f"df[{name!r}].astype(str) for a categorical column or pd.to_numeric(df[{name!r}]) for a numeric one."
        )
    raise ValueError(f"Column {name!r} has unsupported dtype {dtype}.")


def _vocabulary(series: pd.Series) -> list[Any]:
    if isinstance(series.dtype, pd.CategoricalDtype):
        values = list(series.cat.categories)
    elif pd.api.types.is_bool_dtype(series.dtype) or pd.api.types.infer_dtype(series, skipna=True) == "boolean":
        values = [False, True]
    else:
        values = sorted(series.dropna().unique().tolist(), key=lambda v: (str(type(v)), v))
    return [v.item() if isinstance(v, np.generic) else v for v in values]


class FrameEncoding:
    """How a DataFrame becomes arrays: learned once from training data, then applied unchanged.

    Args:
        columns: the training columns, in order.
        numeric: numeric column names (one float32 block, in this order).
        vocabularies: categorical column -> its vocabulary (ids are positions; unseen -> len(vocab)).
        fill_values: column -> value used for NaN when imputing (numeric mean; categoricals go OOV).
        impute: replace NaN instead of raising.
    """

    def __init__(
        self,
        columns: Sequence[str],
        numeric: Sequence[str],
        vocabularies: dict[str, list[Any]],
        fill_values: dict[str, float] | None = None,
        impute: bool = False,
    ) -> None:
        self.columns = list(columns)
        self.numeric = list(numeric)
        self.vocabularies = dict(vocabularies)
        self.fill_values = dict(fill_values or {})
        self.impute = impute
        self._warned: set[str] = set()

    @classmethod
    def fit(cls, frame: pd.DataFrame, impute: bool = False) -> FrameEncoding:
        """Learn the encoding of `frame` (column kinds, vocabularies, means for imputation)."""
        frame = as_frame(frame)
        if frame.shape[1] == 0:
            raise ValueError(f"Found array with 0 feature(s) (shape={frame.shape}) while a minimum of 1 is required.")
        numeric, vocabularies, fills = [], {}, {}
        for name in frame.columns:
            kind = column_kind(name, frame[name])
            if kind == "numeric":
                numeric.append(name)
                if impute:
                    mean = pd.to_numeric(frame[name], errors="coerce").astype("float64").mean()
                    fills[name] = 0.0 if np.isnan(mean) else float(mean)
            else:
                vocabularies[name] = _vocabulary(frame[name])
        return cls(list(frame.columns), numeric, vocabularies, fills, impute)

    @property
    def vocabulary_sizes(self) -> dict[str, int]:
        """Number of ids per categorical column, the out-of-vocabulary id included (for embeddings)."""
        return {k: len(v) + 1 for k, v in self.vocabularies.items()}

    def transform(self, frame: Any) -> np.ndarray | dict[str, np.ndarray]:
        """Encode `frame`: columns by name; unseen categories to the OOV id with one warning per column."""
        frame = as_frame(frame)
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise ValueError(
                f"X is missing column(s) {missing} that the model was fitted on. Expected columns {self.columns}."
            )
        extra = [c for c in frame.columns if c not in self.columns]
        if extra and "extra" not in self._warned:
            self._warned.add("extra")
            logger.warning("Ignoring column(s) %s that were not present at fit time.", extra)
        if len(frame) == 0:
            raise ValueError(
                f"Found array with 0 sample(s) (shape=(0, {len(self.columns)})) while a minimum of 1 is required."
            )
        out: dict[str, np.ndarray] = {}
        if self.numeric:
            out[NUMERIC_KEY] = self._numeric_block(frame)
        for name, vocab in self.vocabularies.items():
            out[name] = self._ids(name, frame[name], vocab)
        if not self.vocabularies:
            return out[NUMERIC_KEY]
        return out

    def _numeric_block(self, frame: pd.DataFrame) -> np.ndarray:
        block = np.empty((len(frame), len(self.numeric)), dtype=np.float32)
        for j, name in enumerate(self.numeric):
            series = frame[name]
            if column_kind(name, series) != "numeric" and not pd.api.types.is_bool_dtype(series.dtype):
                raise ValueError(f"Column {name!r} was numeric at fit time but now has dtype {series.dtype}.")
            values = series.to_numpy(dtype=np.float64, na_value=np.nan)
            bad = ~np.isfinite(values)
            if bad.any():
                inf = np.isinf(values[bad])
                if inf.any():
                    raise ValueError(
                        f"Input X contains infinity in column {name!r} ({int(inf.sum())} row(s)). Replace or drop "
                        "those rows first (imputation fills NaN only)."
                    )
                if not self.impute:
                    raise ValueError(
                        f"Input X contains NaN in column {name!r} ({int(bad.sum())} row(s)). Pass fit(..., "
                        "impute='mean') to fill them with the training mean (PandasFeeder(..., impute=True) when "
                        "feeding directly), or drop those rows."
                    )
                values = np.where(bad, self.fill_values.get(name, 0.0), values)
            block[:, j] = values
        return block

    def _ids(self, name: str, series: pd.Series, vocab: list[Any]) -> np.ndarray:
        codes = pd.Index(vocab).get_indexer(series.astype(object)).astype(np.int64)
        unknown = codes < 0
        if unknown.any():
            missing = series.isna().to_numpy()
            if missing.any() and not self.impute:
                raise ValueError(
                    f"Input X contains NaN in column {name!r} ({int(missing.sum())} row(s)). Pass fit(..., "
                    "impute='mean') to send missing categories to the out-of-vocabulary id (PandasFeeder(..., "
                    "impute=True) when feeding directly), or fill or drop those rows."
                )
            unseen = unknown & ~missing
            if unseen.any() and name not in self._warned:
                self._warned.add(name)
                examples = pd.unique(series[unseen].astype(str))[:3].tolist()
                logger.warning(
                    "Column %r has %d value(s) not seen at fit time (e.g. %s); they use the out-of-vocabulary id %d.",
                    name,
                    int(unseen.sum()),
                    examples,
                    len(vocab),
                )
            codes[unknown] = len(vocab)
        return codes

    def to_json(self) -> dict[str, Any]:
        """The encoding as a JSON-serialisable dict (saved with the model)."""
        return {
            "columns": self.columns,
            "numeric": self.numeric,
            "vocabularies": self.vocabularies,
            "fill_values": self.fill_values,
            "impute": self.impute,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FrameEncoding:
        """The encoding that `to_json` wrote."""
        return cls(
            data["columns"], data["numeric"], data["vocabularies"], data.get("fill_values"), data.get("impute", False)
        )


class LabelEncoding:
    """Class labels (strings, categoricals, booleans, or integers) <-> int64 ids.

    Integer labels are kept as they are (ids == labels); other labels get ids in sorted order (a
    categorical's own category order), and `decode` turns ids back into the original labels.

    Args:
        classes: the labels, id i being `classes[i]`; None when labels are fed as they are.

    Example:
        >>> labels = LabelEncoding.fit(["yes", "no", "yes"])
        >>> labels.classes, labels.encode(["no", "yes"]).tolist(), labels.decode(np.array([1])).tolist()
        (['no', 'yes'], [0, 1], ['yes'])
    """

    def __init__(self, classes: list[Any] | None) -> None:
        self.classes = classes

    @classmethod
    def fit(cls, y: Any) -> LabelEncoding:
        """Learn the classes of `y` (a Series or array-like); numeric labels are kept as they are.

        Raises:
            ValueError: NaN among the labels, or labels of a type that cannot be classes.
        """
        series = y if isinstance(y, pd.Series) else pd.Series(np.asarray(y))
        if series.isna().any():
            raise ValueError("Input y contains NaN.")
        if isinstance(series.dtype, pd.CategoricalDtype):
            _check_categories("y" if series.name is None else str(series.name), series.dtype)
            return cls([v.item() if isinstance(v, np.generic) else v for v in series.cat.categories])
        if pd.api.types.is_bool_dtype(series.dtype):
            return cls([False, True])
        if pd.api.types.is_numeric_dtype(series.dtype):
            return cls(None)
        kind = pd.api.types.infer_dtype(series, skipna=True)
        if kind not in ("string", "boolean", "integer", "categorical"):
            raise ValueError(f"Unknown label type: y holds {kind} values; use strings, integers or a categorical.")
        return cls(_vocabulary(series))

    def encode(self, y: Any) -> np.ndarray:
        """The int64 ids of the labels `y`; a `ValueError` names labels not seen at fit time."""
        if self.classes is None:
            return np.asarray(y)
        codes = pd.Index(self.classes).get_indexer(np.asarray(y, dtype=object)).astype(np.int64)
        if (codes < 0).any():
            unknown = pd.unique(np.asarray(y, dtype=object)[codes < 0])[:3].tolist()
            raise ValueError(f"y contains labels not seen at fit time: {unknown}. Known classes: {self.classes}.")
        return codes

    def decode(self, ids: np.ndarray) -> np.ndarray:
        """The labels of the ids `ids` (ids out of range are returned unchanged)."""
        if self.classes is None:
            return ids
        classes = np.asarray(self.classes, dtype=object)
        ids = np.asarray(ids)
        if ids.size and (ids.min() < 0 or ids.max() >= len(classes)):
            return ids
        out = classes[ids]
        try:
            return (
                out.astype(type(self.classes[0]))
                if self.classes and not isinstance(self.classes[0], str)
                else out.astype(str)
            )
        except (TypeError, ValueError):
            return out

    def to_json(self) -> list[Any] | None:
        """The classes, JSON-serialisable (None when labels are fed as they are)."""
        return self.classes

    @classmethod
    def from_json(cls, data: list[Any] | None) -> LabelEncoding:
        """The encoding that `to_json` wrote."""
        return cls(data)


def encodings_from_state(state: dict[str, Any]) -> tuple[FrameEncoding, LabelEncoding]:
    """The frame and label encodings that a feeder `state` holds, for feeding a DataFrame to its model.

    A pandas state is applied as it is. A file state (a model fitted on Parquet/CSV files) becomes
    the numeric encoding of its feature columns, so a DataFrame holding those columns (in any order,
    the target column among them or not) is fed exactly as the files were.

    Raises:
        ValueError: a state of another kind (numpy arrays), which a DataFrame cannot be matched to.
    """
    kind = state_kind(state)
    if kind == "pandas":
        return FrameEncoding.from_json(state["frame"]), LabelEncoding.from_json(state.get("labels"))
    if kind == "file":
        columns = list(state["feature_columns"])
        return FrameEncoding(columns, columns, {}), LabelEncoding(None)
    raise ValueError(
        f"This model was fitted on {describe_state(state)}; a DataFrame cannot be matched to that by column "
        "names. Pass the same kind of input, e.g. df.to_numpy() with the columns in the order used at fit time."
    )


def as_frame(x: Any) -> pd.DataFrame:
    """`x` as a DataFrame with string column names (a Series becomes one column).

    Raises:
        TypeError: `x` is neither a DataFrame nor a Series.
    """
    if isinstance(x, pd.Series):
        return x.to_frame(name=x.name if x.name is not None else 0)
    if not isinstance(x, pd.DataFrame):
        raise TypeError(f"Expected a pandas DataFrame or Series; received {type(x).__name__}.")
    if not all(isinstance(c, str) for c in x.columns):
        return x.rename(columns=str)
    return x
