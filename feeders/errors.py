"""Errors raised by a feeder's Python code inside `tf.data`, re-raised as themselves.

Feeders that run Python inside the pipeline (`StreamingDataFeeder`, `FileDataFeeder`,
`DaskDataFeeder`: their batches come from `Dataset.from_generator`) find bad data only while the
dataset is iterated. `tf.data` reports an exception raised there as an `InvalidArgumentError`
carrying the message inside a long runtime trace. Each such feeder therefore owns a
`FeederErrors` (its `errors` attribute) that keeps the original exception; whoever iterates the
dataset wraps the iteration in `reraise_feeder_errors(feeder)` (or iterates through
`reraising_iterator(dataset, feeder)`), and the user sees the feeder's own `ValueError` (with the
column, the row, the fix) instead. There is no process-wide state: two feeders in one process, or
in two threads, keep their errors apart.

Example:
    >>> feeder = StreamingDataFeeder(lambda: iter([np.ones(2), np.array([np.nan, 1.0])]))
    >>> with reraise_feeder_errors(feeder):  # doctest: +SKIP
    ...     for batch in feeder.dataset():
    ...         pass
    ValueError: Input X contains NaN. ...
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import tensorflow as tf

__all__ = ["FeederErrors", "reraise_feeder_errors", "reraising_iterator"]


class FeederErrors:
    """The last exception a feeder's Python code raised while `tf.data` iterated it.

    A feeder that runs Python inside `tf.data` creates one in `__init__` (as `self.errors`) and
    runs its generator through `errors.watch(...)`; `reraise_feeder_errors` pops it.

    Example:
        >>> errors = FeederErrors()
        >>> errors.record(ValueError("Input X contains NaN."))
        >>> errors.pop()
        ValueError('Input X contains NaN.')
        >>> errors.pop() is None
        True
    """

    def __init__(self) -> None:
        self._error: BaseException | None = None

    def record(self, exc: BaseException) -> None:
        """Keep `exc` (replacing any earlier one) until `pop` is called."""
        self._error = exc

    def pop(self) -> BaseException | None:
        """The recorded exception, or None; forgets it."""
        error, self._error = self._error, None
        return error

    def watch(self, iterable: Iterable[Any]) -> Iterator[Any]:
        """Iterate `iterable`, recording any `Exception` it raises before it propagates.

        An error left over from an earlier pass is forgotten when the new pass starts.
        """
        self._error = None
        try:
            yield from iterable
        except Exception as exc:
            self.record(exc)
            raise

    def __getstate__(self) -> dict[str, Any]:
        return {"_error": None}  # an exception's traceback does not pickle; a copy starts clean


@contextlib.contextmanager
def reraise_feeder_errors(feeder: Any) -> Iterator[None]:
    """Re-raise a feeder's own exception when a `tf.errors.OpError` escapes the block.

    Wrap whatever iterates the feeder's dataset (a training step, `next(iterator)`): when `tf.data`
    reports an error from the feeder's Python code, the original exception is raised instead, with
    its message and without TensorFlow's trace. Any other `OpError` propagates unchanged.

    Args:
        feeder: the feeder whose dataset is iterated. A feeder without an `errors` attribute (a
            `DataFeeder`, whose pipeline runs no Python), or None (an input_fn's dataset), only
            lets the `OpError` through.

    Raises:
        Exception: the feeder's recorded exception (a `ValueError` naming the bad column, say),
            raised `from None`.
        tf.errors.OpError: when the feeder recorded nothing.

    Example:
        >>> with reraise_feeder_errors(feeder):  # doctest: +SKIP
        ...     loss = train_step(iterator)
    """
    try:
        yield
    except tf.errors.OpError:
        errors = getattr(feeder, "errors", None)
        original = errors.pop() if isinstance(errors, FeederErrors) else None
        if original is not None:
            raise original.with_traceback(None) from None
        raise


def reraising_iterator(dataset: tf.data.Dataset, feeder: Any) -> Iterator[Any]:
    """Iterate `dataset`, re-raising the feeder's own exceptions as `reraise_feeder_errors` does.

    Args:
        dataset: the dataset to iterate (usually `feeder.dataset()`).
        feeder: the feeder that made it, or None.

    Returns:
        An iterator over the dataset's elements.

    Example:
        >>> for x, y in reraising_iterator(feeder.dataset(), feeder):  # doctest: +SKIP
        ...     ...
    """
    iterator = iter(dataset)
    while True:
        with reraise_feeder_errors(feeder):
            try:
                element = next(iterator)
            except StopIteration:
                return
        yield element
