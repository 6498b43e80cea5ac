"""Blocks of rows read from files, reshaped for `tf.data`: a windowed shuffle, then exact batches.

A block is `(x, y)`: a float32 array of shape (n, n_features) and the targets of shape (n,), or None.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

__all__ = ["Block", "restack", "windowed_shuffle"]

Block = tuple[np.ndarray, np.ndarray | None]


def windowed_shuffle(
    blocks: Iterator[Block], window_batches: int, batch_size: int, rng: np.random.Generator
) -> Iterator[Block]:
    """Rows permuted within a window of `window_batches` batches: when the window is full, a random half
    of it (whole batches) is handed out and the rest stays to mix with the next rows."""
    capacity = window_batches * batch_size
    emit = max(1, window_batches // 2) * batch_size
    buf_x: np.ndarray | None = None
    buf_y: np.ndarray | None = None
    n = 0
    for x, y in blocks:
        if buf_x is None:
            buf_x = np.empty((capacity, *x.shape[1:]), x.dtype)
            buf_y = None if y is None else np.empty(capacity, y.dtype)
        i = 0
        while i < len(x):
            take = min(capacity - n, len(x) - i)
            buf_x[n : n + take] = x[i : i + take]
            if buf_y is not None:
                buf_y[n : n + take] = y[i : i + take]
            n, i = n + take, i + take
            if n == capacity:
                order = rng.permutation(capacity)
                out, keep = order[:emit], order[emit:]
                yield buf_x[out], None if buf_y is None else buf_y[out]
                buf_x[: capacity - emit] = buf_x[keep]
                if buf_y is not None:
                    buf_y[: capacity - emit] = buf_y[keep]
                n = capacity - emit
    if n:
        order = rng.permutation(n)
        yield buf_x[order], None if buf_y is None else buf_y[order]


def restack(blocks: Iterator[Block], batch_size: int) -> Iterator[Block]:
    """Blocks of any length cut into stacks of exact batches, shape (k, batch_size, ...); the remainder
    is carried over to the next block, and the last, partial batch comes alone at the end."""
    carry_x: np.ndarray | None = None
    carry_y: np.ndarray | None = None
    for x, y in blocks:
        start = 0
        if carry_x is not None:
            start = min(batch_size - len(carry_x), len(x))
            carry_x = np.concatenate([carry_x, x[:start]])
            carry_y = None if y is None else np.concatenate([carry_y, y[:start]])
            if len(carry_x) < batch_size:
                continue
            yield carry_x[None], None if carry_y is None else carry_y[None]
            carry_x = carry_y = None
        full = (len(x) - start) // batch_size * batch_size
        if full:
            stop = start + full
            yield (
                x[start:stop].reshape(-1, batch_size, *x.shape[1:]),
                None if y is None else y[start:stop].reshape(-1, batch_size),
            )
        if start + full < len(x):
            carry_x = x[start + full :].copy()
            carry_y = None if y is None else y[start + full :].copy()
    if carry_x is not None:
        yield carry_x[None], None if carry_y is None else carry_y[None]
