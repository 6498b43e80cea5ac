"""Feeding iterators and generators of rows or of batches, whose length is unknown.

A one-shot iterator is read once (one epoch; training stops when it ends). Pass a *callable* that
returns a fresh iterator (a generator function, say) to get more epochs, or endless training with
`epochs=None`.

Rows are packed into preallocated batch arrays; batches are passed through as they are. Either way
`tf.data` sees whole batches, several stacked per Python call, so the generator's per-call cost is
paid once per stack rather than once per row. With `shuffle=True` the rows go through a seeded
shuffle buffer first (`feeders.stream_rows`).
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
from feeders.base import prefetched
from feeders.errors import FeederErrors
from feeders.signature import Signatures, TensorSignature
from feeders.stream_rows import pack_rows, shuffle_batch_rows, shuffle_rows

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

    Shuffling (`shuffle=True`) is `tf.data`'s shuffle buffer applied to rows: a buffer of
    `shuffle_buffer_size` rows fills up, then for every row (or batch of k rows) that comes in, one
    row (k rows) drawn at random from it goes out; at the end of each epoch the buffer is drained in
    random order. So every row comes out exactly once per epoch, no row comes out more than about
    `shuffle_buffer_size` rows ahead of its place in the stream (a local shuffle, not a global one;
    a row may stay in the buffer much longer), and the buffer holds that many rows in memory. A stream of batches is shuffled row by row too,
    and keeps its batch sizes. The order depends only on `seed` and the epoch: the same seed gives
    the same batches, and each epoch of a callable source is shuffled differently.

    Args:
        x: an iterator/generator, or a callable returning one. Its elements are rows (1-D arrays or
            scalars, or dicts of them), batches (2-D+ arrays or dicts of them), or `(features, targets)`
            pairs of either when `y` is None.
        y: None, or an iterator of targets aligned with x (the seed's two-iterator form).
        batch_size: rows per batch when packing rows. default=32.
        epochs: passes; 1 for a one-shot iterator; None with a callable repeats forever. default=1.
        kind: "rows", "batches", or "auto" (2-D+ elements are batches). default="auto".
        shuffle: shuffle rows in a buffer (see above); False feeds them in stream order. default=False.
        seed: seed of the shuffle; default=None (a random one).
        shuffle_buffer_size: rows the shuffle buffer holds. default=1024.

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
        shuffle_buffer_size: int = 1024,
    ) -> None:
        check_choice("kind", kind, ("auto", "rows", "batches"))
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.shuffle = bool(shuffle)
        self.shuffle_buffer_size = check_positive_int("shuffle_buffer_size", shuffle_buffer_size)
        self.seed = int(seed) if seed is not None else int(np.random.randint(0, 2**31 - 1))
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
        self.epochs = check_epochs(epochs)
        if self._factory is None and epochs not in (None, 1):
            raise ValueError(
                f"epochs={epochs} needs a callable that returns a fresh iterator each epoch; an iterator can be read only once."
            )
        self._paired = y is not None
        try:
            first = next(source)
        except StopIteration:
            raise ValueError(
                "The iterator is empty: Found array with 0 sample(s) while a minimum of 1 is required."
            ) from None
        self._first: list[Any] = [first]  # the peeked element, until the first pass takes it back
        self._source = source
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
        """False only for a callable source with `epochs=None`."""
        return not (self._factory is not None and self.epochs is None)

    @property
    def state(self) -> None:
        """None: a stream has no encoding to learn."""
        return None

    @property
    def input_signature(self) -> Signatures:
        """Signature of the features of one row (per key for dicts)."""
        return self._x_sig

    @property
    def output_signature(self) -> Signatures:
        """Signature of the targets of one row, or None."""
        return self._y_sig

    def _epochs(self) -> Iterator[tuple[int, Iterator[Any]]]:
        """`(epoch, elements)` for each epoch of this pass over the data.

        The first pass starts with the element peeked at construction. A callable source is called
        for every other epoch (and every epoch of a later pass); a one-shot iterator has one epoch,
        which a later pass continues where the last one stopped.
        """
        n_epochs = 1 if self._factory is None else self.epochs
        for epoch in itertools.count() if n_epochs is None else range(n_epochs):
            if self._first:
                yield epoch, itertools.chain([self._first.pop()], self._source)
            elif self._factory is not None:
                yield epoch, _nonempty(iter(self._factory()), epoch)
            else:
                yield epoch, self._source

    def _rng(self, epoch: int) -> np.random.Generator:
        return np.random.default_rng((self.seed, epoch))

    def _batches(self) -> Iterator[tuple[Any, Any]]:
        if self.kind == "rows":
            yield from pack_rows(self._rows(), self._x_sig, self._y_sig, self.batch_size)
            return
        count = itertools.count()
        for epoch, elements in self._epochs():
            batches = (self._checked_batch(element, next(count)) for element in elements)
            if self.shuffle:
                batches = shuffle_batch_rows(batches, self.shuffle_buffer_size, self._rng(epoch))
            yield from batches

    def _rows(self) -> Iterator[tuple[Any, Any]]:
        """Every `(features, targets)` row of every epoch (batches are packed across epochs)."""
        for epoch, elements in self._epochs():
            rows = map(self._split, elements)
            if self.shuffle:
                rows = shuffle_rows(rows, self.shuffle_buffer_size, self._rng(epoch), self._x_sig, self._y_sig)
            yield from rows

    def _checked_batch(self, element: Any, index: int) -> tuple[Any, Any]:
        features, targets = self._split(element)
        features = _map(features, _as_array, "X")
        targets = None if targets is None else _map(targets, _as_array, "y")
        _check_batch_rows(features, targets, index)
        return features, targets

    def _stacks(self) -> Iterator[Any]:
        return self.errors.watch(stack_batches(self._batches(), self._has_targets, check=_check_finite))

    def dataset(self) -> tf.data.Dataset:
        """Batches in stream order (shuffled in the buffer with `shuffle=True`).

        A one-shot iterator's dataset can be iterated once; a callable's, any number of times.
        """

        def spec(sig: Signatures) -> Any:
            return _map(sig, lambda s, _: tf.TensorSpec((None, None, *s.shape), s.dtype), "X")

        signature = (spec(self._x_sig), spec(self._y_sig)) if self._has_targets else spec(self._x_sig)
        ds = tf.data.Dataset.from_generator(self._stacks, output_signature=signature)
        return prefetched(ds.unbatch())


def _nonempty(elements: Iterator[Any], epoch: int) -> Iterator[Any]:
    """`elements`, or a `ValueError` when the callable returned an empty iterator (which would loop forever)."""
    empty = True
    for element in elements:
        empty = False
        yield element
    if empty:
        raise ValueError(
            f"x() returned an empty iterator for epoch {epoch}: Found array with 0 sample(s) while a minimum of 1 "
            "is required. A callable source must return a fresh, non-empty iterator every time it is called."
        )


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


def _check_finite(value: Any, what: str) -> None:
    for key, array in value.items() if isinstance(value, Mapping) else [(None, value)]:
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            name = what if key is None else f"{what}[{key!r}]"
            kind = "NaN" if np.isnan(array).any() else "infinity or a value too large"
            raise ValueError(
                f"Input {name} contains {kind}. A stream is fed as it comes (impute='mean' takes numpy arrays or "
                "DataFrames): fill or drop those rows in the stream, or fit on arrays with fit(..., impute='mean')."
            )
