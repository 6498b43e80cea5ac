"""Feeding iterators and generators of rows or of batches, whose length is unknown.

A one-shot iterator is read once (one epoch; training stops when it ends). Pass a *callable* that
returns a fresh iterator (a generator function, say) to get more epochs, or endless training with
`epochs=None`.

Rows are packed into preallocated batch arrays; batches are passed through as they are. Either way
`tf.data` sees whole batches, several stacked per Python call, so the generator's per-call cost is
paid once per stack rather than once per row (performance-facts.md §1.5).
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from feeders._stacking import stack_batches
from feeders._validation import check_choice, check_epochs, check_positive_int
from feeders.errors import FeederErrors
from feeders.signature import Signatures, TensorSignature

__all__ = ["StreamingDataFeeder"]


def _as_array(value: Any, what: str) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind in "USO":
        if array.dtype.kind == "O":
            try:
                array = array.astype(np.float64)
            except (TypeError, ValueError):
                raise ValueError(
                    f"{what} holds values that are not numbers or are ragged (dtype object); a streaming feeder "
                    "needs numeric rows of one shape."
                ) from None
        else:
            raise ValueError(f"{what} holds strings (dtype {array.dtype}); encode them as numbers first.")
    if array.dtype == np.float64:
        array = array.astype(np.float32)
    return array


def _map(value: Any, fn: Callable[[Any, str], Any], what: str) -> Any:
    if isinstance(value, Mapping):
        return {str(k): fn(v, f"{what}[{k!r}]") for k, v in value.items()}
    return fn(value, what)


class StreamingDataFeeder:
    """Feeds an iterator (or generator) of rows or of batches as whole `tf.data` batches.

    Args:
        x: an iterator/generator, or a callable returning one. Its elements are rows (1-D arrays or
            scalars, or dicts of them), batches (2-D+ arrays or dicts of them), or `(features, targets)`
            pairs of either when `y` is None.
        y: None, or an iterator of targets aligned with x (the seed's two-iterator form).
        batch_size: rows per batch when packing rows. default=32.
        epochs: passes; 1 for a one-shot iterator; None with a callable repeats forever. default=1.
        kind: "rows", "batches", or "auto" (2-D+ elements are batches). default="auto".

    Example:
        >>> rows = ((np.ones(3), 1) for _ in range(100))
        >>> feeder = StreamingDataFeeder(rows, batch_size=32)
        >>> [int(x.shape[0]) for x, _ in feeder.dataset()]
        [32, 32, 32, 4]
    """

    def __init__(
        self,
        x: Any,
        y: Any = None,
        batch_size: int = 32,
        epochs: int | None = 1,
        kind: str = "auto",
        shuffle: bool = False,
        seed: int | None = None,
    ) -> None:
        del shuffle, seed  # a stream is read in its own order; shuffle upstream or use a file/array feeder
        check_choice("kind", kind, ("auto", "rows", "batches"))
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.errors = FeederErrors()
        self._factory: Callable[[], Iterator[Any]] | None = None
        if callable(x) and not hasattr(x, "__next__"):
            self._factory = x
            source = _call_factory(x)
        elif hasattr(x, "__next__") or hasattr(x, "__iter__"):
            source = iter(x)
        else:
            raise TypeError(
                f"StreamingDataFeeder needs an iterator, a generator or a callable returning one; received {type(x).__name__}."
            )
        if y is not None:
            if not (hasattr(y, "__next__") or hasattr(y, "__iter__")):
                raise ValueError(
                    "y must also be an iterator when x is an iterator (or pass (features, targets) pairs in x)."
                )
            if self._factory is not None:
                raise ValueError("With a callable x, yield (features, targets) pairs from it instead of passing y.")
            source = _aligned(source, iter(y))
        check_epochs(epochs)
        if self._factory is None and epochs not in (None, 1):
            raise ValueError(
                f"epochs={epochs} needs a callable that returns a fresh iterator each epoch; an iterator can be read only once."
            )
        self.epochs = epochs
        self._paired = y is not None
        try:
            first = next(source)
        except StopIteration:
            raise ValueError(
                "The iterator is empty: Found array with 0 sample(s) while a minimum of 1 is required."
            ) from None
        self._first, self._source = first, source
        features, targets = self._split(first)
        features = _map(features, _as_array, "X")
        targets = None if targets is None else _map(targets, _as_array, "y")
        leaf = next(iter(features.values())) if isinstance(features, Mapping) else features
        self.kind = kind if kind != "auto" else ("batches" if leaf.ndim >= 2 else "rows")
        if self.kind == "batches":
            _check_batch_rows(features, targets, 0)
        self._has_targets = targets is not None
        offset = 1 if self.kind == "batches" else 0
        self._x_sig = _map(features, lambda a, _: TensorSignature(a.dtype, a.shape[offset:]), "X")
        self._y_sig = (
            None if targets is None else _map(targets, lambda a, _: TensorSignature(a.dtype, a.shape[offset:]), "y")
        )

    def _split(self, element: Any) -> tuple[Any, Any]:
        if self._paired or (isinstance(element, tuple) and len(element) == 2):
            return element
        return element, None

    @property
    def finite(self) -> bool:
        return not (self._factory is not None and self.epochs is None)

    @property
    def state(self) -> None:
        return None

    @property
    def input_signature(self) -> Signatures:
        return self._x_sig

    @property
    def output_signature(self) -> Signatures:
        return self._y_sig

    def _elements(self) -> Iterator[Any]:
        """Every element of every epoch (the peeked one first)."""
        yield from itertools.chain([self._first], self._source)
        epoch = 1
        while self._factory is not None and (self.epochs is None or epoch < self.epochs):
            epoch += 1
            source = iter(self._factory())
            yield from source

    def _batches(self) -> Iterator[tuple[Any, Any]]:
        if self.kind == "batches":
            for i, element in enumerate(self._elements()):
                features, targets = self._split(element)
                features = _map(features, _as_array, "X")
                targets = None if targets is None else _map(targets, _as_array, "y")
                _check_batch_rows(features, targets, i)
                yield features, targets
            return
        buf_x = _alloc(self._x_sig, self.batch_size)
        buf_y = None if self._y_sig is None else _alloc(self._y_sig, self.batch_size)
        i = 0
        for element in self._elements():
            features, targets = self._split(element)
            _put(buf_x, i, features)
            if buf_y is not None:
                _put(buf_y, i, targets)
            i += 1
            if i == self.batch_size:
                yield _copy(buf_x), None if buf_y is None else _copy(buf_y)
                i = 0
        if i:
            yield _head(buf_x, i), None if buf_y is None else _head(buf_y, i)

    def _stacks(self) -> Iterator[Any]:
        return self.errors.watch(stack_batches(self._batches(), self._has_targets, check=_check_finite))

    def dataset(self) -> tf.data.Dataset:
        """Batches in stream order. A one-shot iterator's dataset can be iterated once."""

        def spec(sig: Signatures) -> Any:
            return _map(sig, lambda s, _: tf.TensorSpec((None, None, *s.shape), s.dtype), "X")

        signature = (spec(self._x_sig), spec(self._y_sig)) if self._has_targets else spec(self._x_sig)
        ds = tf.data.Dataset.from_generator(self._stacks, output_signature=signature)
        return ds.unbatch().prefetch(tf.data.AUTOTUNE)


def _call_factory(factory: Callable[[], Any]) -> Iterator[Any]:
    """The iterator a callable x returns, with a clear error when it takes arguments or returns no iterator."""
    name = getattr(factory, "__qualname__", type(factory).__name__)
    try:
        inspect.signature(factory).bind()
    except TypeError:
        raise TypeError(
            f"x is a function ({name}) that needs arguments; a streaming feeder calls x() with none to get an "
            "iterator each epoch. Pass data, or a function of no arguments that returns an iterator or generator."
        ) from None
    except ValueError:
        pass  # no signature to inspect (a builtin): just call it
    result = factory()
    if not hasattr(result, "__iter__") or isinstance(result, (str, bytes)):
        raise TypeError(
            f"x is a function ({name}) that returned {type(result).__name__}, not an iterator. A streaming feeder "
            "needs a function that returns an iterator or generator of rows, batches or (features, targets) pairs."
        )
    return iter(result)


def _aligned(xs: Iterator[Any], ys: Iterator[Any]) -> Iterator[tuple[Any, Any]]:
    """`zip(xs, ys)` that raises when one ends before the other (zip would silently drop the rest)."""
    n = 0
    missing = object()
    for x in xs:
        y = next(ys, missing)
        if y is missing:
            raise ValueError(
                f"x and y have different lengths: y ended after {n} element(s) while x has more. Found input "
                "variables with inconsistent numbers of samples."
            )
        n += 1
        yield x, y
    if next(ys, missing) is not missing:
        raise ValueError(
            f"x and y have different lengths: x ended after {n} element(s) while y has more. Found input variables "
            "with inconsistent numbers of samples."
        )


def _check_batch_rows(features: Any, targets: Any, index: int) -> None:
    """Every array of one batch (features and targets) must have the same number of rows."""
    rows = {}
    for what, value in (("X", features), ("y", targets)):
        if value is None:
            continue
        for key, array in value.items() if isinstance(value, Mapping) else [(None, value)]:
            name = what if key is None else f"{what}[{key!r}]"
            if array.ndim == 0:
                raise ValueError(f"Batch {index}: {name} is a scalar; a batch needs one entry per row.")
            rows[name] = int(array.shape[0])
    if len(set(rows.values())) > 1:
        counts = ", ".join(f"{name} has {n}" for name, n in rows.items())
        raise ValueError(
            f"Batch {index} of the stream has inconsistent numbers of rows: {counts}. Found input variables with "
            "inconsistent numbers of samples."
        )


def _alloc(sig: Signatures, n: int) -> Any:
    return _map(sig, lambda s, _: np.empty((n, *s.shape), dtype=s.dtype.as_numpy_dtype), "X")


def _put(buf: Any, i: int, value: Any) -> None:
    if isinstance(buf, Mapping):
        for k, v in buf.items():
            v[i] = value[k]
    else:
        try:
            buf[i] = value
        except (ValueError, TypeError) as exc:
            raise ValueError(
                f"Row {i} of a batch does not match the first row's shape {buf.shape[1:]}: {exc}"
            ) from None


def _copy(buf: Any) -> Any:
    return {k: v.copy() for k, v in buf.items()} if isinstance(buf, Mapping) else buf.copy()


def _head(buf: Any, n: int) -> Any:
    return {k: v[:n].copy() for k, v in buf.items()} if isinstance(buf, Mapping) else buf[:n].copy()


def _check_finite(value: Any, what: str) -> None:
    for key, array in value.items() if isinstance(value, Mapping) else [(None, value)]:
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            name = what if key is None else f"{what}[{key!r}]"
            kind = "NaN" if np.isnan(array).any() else "infinity or a value too large"
            raise ValueError(f"Input {name} contains {kind}.")
