"""Feeding dask DataFrames, Series and Arrays, one partition in memory at a time.

The seed's DaskDataFeeder sampled random fractions and ignored `shuffle` and `epochs`. Here both
work: each epoch visits every partition once, in a seeded random order when shuffling, and the rows
of each partition are permuted before they are cut into batches (a partition-local shuffle: memory
stays at about one partition plus one stack of batches). A DataFrame's encoding (numeric block,
vocabularies, label classes) is learned from the whole data with one `dask.compute` pass, as
`PandasFeeder` learns it from a pandas frame, and has the same `state` format, so a model fitted on
dask data predicts on pandas frames and vice versa.

Needs the optional extra: `pip install "skflow[dask]"`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import tensorflow as tf

from feeders._stacking import stack_batches
from feeders._validation import check_epochs, check_impute, check_positive_int
from feeders.base import prefetched
from feeders.errors import FeederErrors
from feeders.frame_encoding import NUMERIC_KEY, FrameEncoding, LabelEncoding, column_kind, encodings_from_state
from feeders.rows import concat_rows, n_rows, slice_rows, take_rows
from feeders.signature import Signatures, TensorSignature

__all__ = ["DaskDataFeeder"]


def _dask():
    try:
        import dask
        import dask.array as da
        import dask.dataframe as dd
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError('DaskDataFeeder needs dask: pip install "skflow[dask]".') from exc
    return dask, da, dd


class DaskDataFeeder:
    """Feeds a dask DataFrame/Series (encoded like `PandasFeeder`) or a dask Array as whole batches.

    Args:
        x: dask DataFrame, Series or 2-D+ Array.
        y: dask Series or Array with the same partitions as x (or None).
        batch_size: rows per batch. default=32.
        shuffle: visit partitions in a seeded random order and permute rows within each. default=True.
        epochs: passes over the data; None repeats forever. default=None.
        seed: seed for the per-epoch orders.
        impute: as in `PandasFeeder`. state: an encoding learned earlier (evaluation, prediction).
    """

    def __init__(
        self,
        x: Any,
        y: Any = None,
        batch_size: int = 32,
        shuffle: bool = True,
        epochs: int | None = None,
        seed: int | None = None,
        state: dict[str, Any] | None = None,
        impute: bool | str | None = False,
    ) -> None:
        dask, da, dd = _dask()
        impute = check_impute(impute) is not None
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.shuffle, self.epochs = bool(shuffle), check_epochs(epochs)
        self.errors = FeederErrors()
        self.seed = int(seed) if seed is not None else int(np.random.randint(0, 2**31 - 1))
        self.encoding: FrameEncoding | None = None
        self.label_encoding = LabelEncoding(None)
        if isinstance(x, dd.Series):
            x = x.to_frame()
        if isinstance(x, dd.DataFrame):
            x = x.rename(columns=str)
            if state is not None:
                self.encoding, self.label_encoding = encodings_from_state(state)
                if impute:
                    self.encoding.impute = True
            else:
                self.encoding = self._learn_encoding(x, impute, dask)
                if y is not None:
                    self.label_encoding = self._learn_labels(y, dask, dd)
            self._x_parts = x.to_delayed()
        elif isinstance(x, da.Array):
            if impute:
                raise ValueError(
                    "impute is supported for dask DataFrames, not dask arrays: fill the missing values beforehand, or "
                    "pass a dask DataFrame (dd.from_dask_array(x))."
                )
            if x.ndim < 2:
                raise ValueError(
                    "Expected 2D array, got 1D array instead: reshape your dask array with x.reshape(-1, 1)."
                )
            x = x.rechunk({i: -1 for i in range(1, x.ndim)})
            self._x_parts = list(x.to_delayed().ravel())
            self._x_sig = TensorSignature(np.float32 if x.dtype == np.float64 else x.dtype, x.shape[1:])
        else:
            raise TypeError(f"DaskDataFeeder needs a dask DataFrame, Series or Array; received {type(x).__name__}.")
        self._y_parts = None
        self._y_sig: Signatures = None
        if y is not None:
            if isinstance(y, dd.DataFrame):
                raise ValueError("y must be a dask Series or Array (one target column), not a DataFrame.")
            self._y_parts = list(y.to_delayed().ravel()) if isinstance(y, da.Array) else y.to_delayed()
            if len(self._y_parts) != len(self._x_parts):
                raise ValueError(
                    f"x has {len(self._x_parts)} partitions but y has {len(self._y_parts)}; split them the same way "
                    "(e.g. take both from one DataFrame: df[features], df[target])."
                )
            if self.label_encoding.classes is not None:
                self._y_sig = TensorSignature(tf.int64, ())
            else:
                dtype = np.dtype(y.dtype)
                self._y_sig = TensorSignature(
                    np.float32 if dtype == np.float64 else dtype, tuple(y.shape[1:]) if isinstance(y, da.Array) else ()
                )
        if self.encoding is not None:
            self._x_sig = _frame_signature(self.encoding)

    @staticmethod
    def _learn_encoding(x: Any, impute: bool, dask: Any) -> FrameEncoding:
        meta = x._meta
        numeric, categorical, known = [], [], {}
        for name in meta.columns:
            series = meta[name]
            if isinstance(series.dtype, pd.CategoricalDtype) and series.cat.known:
                known[name] = list(series.cat.categories)
                continue
            kind = (
                "numeric"
                if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype)
                else column_kind(name, series)
            )
            (numeric if kind == "numeric" else categorical).append(name)
        uniques = [x[c].dropna().unique() for c in categorical]
        means = [x[c].mean() for c in numeric] if impute else []
        computed = dask.compute(*uniques, *means)
        vocabularies = dict(known)
        for name, values in zip(categorical, computed[: len(categorical)], strict=True):
            frame = pd.DataFrame({name: pd.Series(values, dtype=meta[name].dtype)})
            vocabularies[name] = FrameEncoding.fit(frame).vocabularies.get(name, [])
        fills = {c: float(m) for c, m in zip(numeric, computed[len(categorical) :], strict=True)} if impute else {}
        vocab_order = {c: vocabularies[c] for c in meta.columns if c in vocabularies}
        return FrameEncoding(list(meta.columns), numeric, vocab_order, fills, impute)

    @staticmethod
    def _learn_labels(y: Any, dask: Any, dd: Any) -> LabelEncoding:
        if not isinstance(y, dd.Series):
            return LabelEncoding(None)
        dtype = y.dtype
        if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
            return LabelEncoding(None)
        if isinstance(dtype, pd.CategoricalDtype) and y.cat.known:
            return LabelEncoding.fit(pd.Series(pd.Categorical([], categories=y.cat.categories)))
        (values,) = dask.compute(y.dropna().unique())
        return LabelEncoding.fit(pd.Series(values, dtype=dtype))

    @property
    def finite(self) -> bool:
        """Whether `dataset()` ends (a number of epochs) or repeats forever (`epochs=None`)."""
        return self.epochs is not None

    @property
    def state(self) -> dict[str, Any] | None:
        """The DataFrame encoding, in `PandasFeeder.state`'s format; None for a dask array."""
        if self.encoding is None:
            return None
        return {"type": "pandas", "frame": self.encoding.to_json(), "labels": self.label_encoding.to_json()}

    @property
    def input_signature(self) -> Signatures:
        """Signature of the (encoded) features."""
        return self._x_sig

    @property
    def output_signature(self) -> Signatures:
        """Signature of the (encoded) targets, or None."""
        return self._y_sig

    def _partition(self, i: int, rng: np.random.Generator | None) -> tuple[Any, Any]:
        part = self._x_parts[i].compute()
        if self.encoding is not None:
            features = self.encoding.transform(part) if len(part) else None
        else:
            features = np.ascontiguousarray(part, dtype=self._x_sig.dtype.as_numpy_dtype)
            if features.dtype.kind == "f" and not np.isfinite(features).all():
                raise ValueError(
                    f"Input X contains NaN or infinity (partition {i}). A dask array is fed as it is: fill or drop "
                    "those rows, or pass a dask DataFrame (dd.from_dask_array(x)) with fit(..., impute='mean')."
                )
        targets = None
        if self._y_parts is not None:
            raw = self._y_parts[i].compute()
            targets = self.label_encoding.encode(np.asarray(raw)).astype(self._y_sig.dtype.as_numpy_dtype)
            n_x = 0 if features is None else n_rows(features)
            if n_x != len(targets):
                raise ValueError(
                    f"Partition {i} of x has {n_x} rows but partition {i} of y has {len(targets)}: x and y must be "
                    "split into partitions the same way. Take both from one DataFrame (df[features], df[target]), "
                    "or rechunk y like x (y.rechunk(x.chunks[0]))."
                )
        if features is None:
            return None, None
        if rng is not None:
            order = rng.permutation(n_rows(features))
            features = take_rows(features, order)
            targets = None if targets is None else targets[order]
        return features, targets

    def _batches(self) -> Iterator[tuple[Any, Any]]:
        epoch = 0
        carry: tuple[Any, Any] | None = None
        while self.epochs is None or epoch < self.epochs:
            rng = np.random.default_rng([self.seed, epoch]) if self.shuffle else None
            order = rng.permutation(len(self._x_parts)) if rng is not None else range(len(self._x_parts))
            rows = 0
            for i in order:
                features, targets = self._partition(int(i), rng)
                if features is None:
                    continue
                rows += n_rows(features)
                if carry is not None:
                    features = concat_rows([carry[0], features])
                    targets = None if targets is None else np.concatenate([carry[1], targets])
                    carry = None
                n, b = n_rows(features), self.batch_size
                full = n // b * b
                for start in range(0, full, b):
                    yield (
                        slice_rows(features, start, start + b),
                        None if targets is None else targets[start : start + b],
                    )
                if full < n:
                    carry = (slice_rows(features, full, n), None if targets is None else targets[full:n])
            if rows == 0:  # an empty frame would otherwise loop over its empty partitions forever
                shape = (0, *self._x_sig.shape) if isinstance(self._x_sig, TensorSignature) else (0,)
                raise ValueError(f"Found array with 0 sample(s) (shape={shape}) while a minimum of 1 is required.")
            epoch += 1
            if self.epochs is not None and epoch == self.epochs and carry is not None:
                yield carry
                carry = None

    def _stacks(self) -> Iterator[Any]:
        return self.errors.watch(stack_batches(self._batches(), self._y_sig is not None))

    def dataset(self) -> tf.data.Dataset:
        """`(features, targets)` batches (features alone without y), one partition computed at a time."""

        def spec(sig: Signatures) -> Any:
            if isinstance(sig, dict):
                return {k: tf.TensorSpec((None, None, *s.shape), s.dtype) for k, s in sig.items()}
            return tf.TensorSpec((None, None, *sig.shape), sig.dtype)

        signature = (spec(self._x_sig), spec(self._y_sig)) if self._y_sig is not None else spec(self._x_sig)
        return prefetched(tf.data.Dataset.from_generator(self._stacks, output_signature=signature).unbatch())


def _frame_signature(encoding: FrameEncoding) -> Signatures:
    sigs: dict[str, TensorSignature] = {}
    if encoding.numeric:
        sigs[NUMERIC_KEY] = TensorSignature(tf.float32, (len(encoding.numeric),))
    for name in encoding.vocabularies:
        sigs[name] = TensorSignature(tf.int64, ())
    if not encoding.vocabularies:
        return sigs[NUMERIC_KEY]
    return sigs
