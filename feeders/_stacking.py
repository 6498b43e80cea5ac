"""Grouping whole batches into stacks for `Dataset.from_generator(...).unbatch()`.

One generator call per stack of `STACK` batches instead of one per batch: the generator's per-call
cost is paid once per stack, so that a stream of batches feeds faster than the numpy feeder
(docs/benchmarks.md, feeders). Shared by the streaming and dask feeders.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from feeders.rows import n_rows

STACK = 16  # batches per generator call


def _stack(parts: list[Any]) -> Any:
    if isinstance(parts[0], Mapping):
        return {k: np.stack([p[k] for p in parts]) for k in parts[0]}
    return np.stack(parts)


def stack_batches(
    batches: Iterable[tuple[Any, Any]],
    has_targets: bool,
    check: Callable[[Any, str], None] | None = None,
) -> Iterator[Any]:
    """Stack up to `STACK` equally sized `(features, targets)` batches per yielded element.

    `check(array_or_dict, "X" | "y")` runs on each stack. The caller runs the result through its
    `FeederErrors.watch`, so that an error here is re-raised as itself.
    """

    def emit(group: list[tuple[Any, Any]]) -> Any:
        features = _stack([g[0] for g in group])
        if check is not None:
            check(features, "X")
        if not has_targets:
            return features
        targets = _stack([g[1] for g in group])
        if check is not None:
            check(targets, "y")
        return features, targets

    group: list[tuple[Any, Any]] = []
    for batch in batches:
        if group and n_rows(batch[0]) != n_rows(group[0][0]):
            yield emit(group)
            group = []
        group.append(batch)
        if len(group) == STACK:
            yield emit(group)
            group = []
    if group:
        yield emit(group)
