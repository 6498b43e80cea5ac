"""Rows of a stream: packed into preallocated batch arrays, and shuffled in a bounded buffer.

Both shuffles are `tf.data`'s shuffle buffer (`Dataset.shuffle(buffer_size)`), applied to rows:
the buffer fills up first; then for every row (or batch of k rows) that comes in, one row (k
rows) drawn at random from the buffer goes out. When the stream ends, the buffer is
drained in random order, so every row comes out exactly once. A row comes out at most about
`capacity` rows ahead of where it came in (it may stay much longer): a larger buffer mixes more
and holds more memory.

A row or batch is a `(features, targets)` pair; features are an array or a dict of arrays, and
targets the same or None.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from feeders.signature import Signatures

__all__ = ["alloc", "pack_rows", "put", "shuffle_batch_rows", "shuffle_rows"]

_Pair = tuple[Any, Any]


def alloc(sig: Signatures, n: int) -> Any:
    """Empty arrays for `n` rows of signature `sig` (a dict of them for a dict signature)."""
    if isinstance(sig, Mapping):
        return {k: np.empty((n, *s.shape), dtype=s.dtype.as_numpy_dtype) for k, s in sig.items()}
    return np.empty((n, *sig.shape), dtype=sig.dtype.as_numpy_dtype)


def put(buf: Any, i: int, value: Any, what: str) -> None:
    """Store the row `value` at index `i` of `buf`; a `ValueError` when its keys or shape differ from the first row's."""
    if not isinstance(buf, Mapping):
        _put_one(buf, i, value, what)
        return
    if not isinstance(value, Mapping) or set(value) != set(buf):
        keys = sorted(value) if isinstance(value, Mapping) else type(value).__name__
        raise ValueError(f"A row of {what} in the stream has keys {keys}, but the first row had {sorted(buf)}.")
    for k, v in buf.items():
        _put_one(v, i, value[k], f"{what}[{k!r}]")


def _put_one(array: np.ndarray, i: int, value: Any, what: str) -> None:
    if np.shape(value) != array.shape[1:]:
        raise ValueError(
            f"A row of {what} in the stream has shape {np.shape(value)}, but the first row had shape "
            f"{array.shape[1:]}; every row must have the same shape."
        )
    try:
        array[i] = value
    except (TypeError, ValueError) as exc:
        raise ValueError(f"A row of {what} in the stream cannot be stored as {array.dtype}: {exc}") from None


def _row(buf: Any, i: int) -> Any:
    return {k: v[i] for k, v in buf.items()} if isinstance(buf, Mapping) else buf[i]


def _head(buf: Any, n: int) -> Any:
    return {k: v[:n].copy() for k, v in buf.items()} if isinstance(buf, Mapping) else buf[:n].copy()


def pack_rows(rows: Iterable[_Pair], x_sig: Signatures, y_sig: Signatures, batch_size: int) -> Iterator[_Pair]:
    """`(features, targets)` rows packed into batches of `batch_size` rows, the last one possibly smaller.

    Each batch is a new array (the caller may keep it); targets are None when `y_sig` is None.
    """
    buf_x = alloc(x_sig, batch_size)
    buf_y = None if y_sig is None else alloc(y_sig, batch_size)
    i = 0
    for features, targets in rows:
        put(buf_x, i, features, "X")
        if buf_y is not None:
            put(buf_y, i, targets, "y")
        i += 1
        if i == batch_size:
            yield _head(buf_x, i), None if buf_y is None else _head(buf_y, i)
            i = 0
    if i:
        yield _head(buf_x, i), None if buf_y is None else _head(buf_y, i)


def _random_slots(rng: np.random.Generator, capacity: int) -> Iterator[int]:
    while True:  # drawn 4096 at a time: one call per row would cost more than the rest of the shuffle
        yield from rng.integers(0, capacity, 4096).tolist()


def shuffle_rows(
    rows: Iterable[_Pair], capacity: int, rng: np.random.Generator, x_sig: Signatures, y_sig: Signatures
) -> Iterator[_Pair]:
    """The `(features, targets)` rows of `rows` in an order shuffled by a buffer of `capacity` rows.

    Rows are copied into the buffer (so a generator that reuses one array for every row is safe);
    the rows yielded are views into it, valid until the next row is requested.
    """
    buf_x = alloc(x_sig, capacity)
    buf_y = None if y_sig is None else alloc(y_sig, capacity)
    slots = _random_slots(rng, capacity)
    n = 0
    for features, targets in rows:
        if n < capacity:
            j, n = n, n + 1
        else:
            j = next(slots)
            yield _row(buf_x, j), None if buf_y is None else _row(buf_y, j)
        put(buf_x, j, features, "X")
        if buf_y is not None:
            put(buf_y, j, targets, "y")
    for j in rng.permutation(n).tolist():
        yield _row(buf_x, j), None if buf_y is None else _row(buf_y, j)


def _leaves(batch: _Pair, template: _Pair) -> list[np.ndarray]:
    """The arrays of a batch, in the key order of `template` (the first batch)."""
    out = []
    for part, like in zip(batch, template, strict=True):
        if isinstance(like, Mapping):
            out.extend(part[k] for k in like)
        elif like is not None:
            out.append(part)
    return out


def _rebuild(leaves: list[np.ndarray], template: _Pair) -> _Pair:
    it = iter(leaves)
    return tuple(
        None if like is None else {k: next(it) for k in like} if isinstance(like, Mapping) else next(it)
        for like in template
    )


def shuffle_batch_rows(batches: Iterable[_Pair], capacity: int, rng: np.random.Generator) -> Iterator[_Pair]:
    """The rows of a stream of `(features, targets)` batches, shuffled by a buffer of at least `capacity` rows.

    The batches that come out have the sizes of those that came in, in the same order; their rows
    are drawn at random from the buffer (each batch is a new array). The buffer holds between
    `capacity` rows and `capacity` plus one incoming batch.
    """
    template: _Pair | None = None
    store: list[np.ndarray] = []
    sizes: deque[int] = deque()
    n = 0

    def draw(size: int) -> _Pair:
        nonlocal n
        picked = rng.choice(n, size, replace=False) if size < n else rng.permutation(n)
        out = [a[picked] for a in store]
        # Fill the holes below the new end with the rows above it that were not picked.
        end = n - size
        above = picked >= end
        holes = picked[~above]
        kept = np.ones(size, bool)
        kept[picked[above] - end] = False
        tail = np.arange(end, n)[kept]
        for a in store:
            a[holes] = a[tail]
        n = end
        return _rebuild(out, template)

    for batch in batches:
        if template is None:
            template = batch
        leaves = _leaves(batch, template)
        k = len(leaves[0])
        if not store:
            store = [np.empty((capacity + 2 * k, *a.shape[1:]), a.dtype) for a in leaves]
        elif n + k > len(store[0]):  # a batch larger than the ones before
            store = [np.concatenate([s[:n], np.empty((k + capacity, *s.shape[1:]), s.dtype)]) for s in store]
        for s, a in zip(store, leaves, strict=True):
            s[n : n + k] = a
        n += k
        sizes.append(k)
        while sizes and n - sizes[0] >= capacity:
            yield draw(sizes.popleft())
    while sizes:
        yield draw(sizes.popleft())
