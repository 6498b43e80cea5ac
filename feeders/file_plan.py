"""How much a `FileDataFeeder` reads at a time: the sizes that bound its memory, chosen to fit a budget.

`plan_reads` returns a `ReadPlan`: record batches of a few MiB, 1 MiB read buffers and a
`tf.data`-tuned prefetch by default, or, given `memory_budget_mb`, the largest sizes whose
estimated peak (`estimate_bytes`, the terms listed in `FileDataFeeder`'s docstring) fits, the
shuffle window first.
"""

from __future__ import annotations

import dataclasses
import warnings

__all__ = ["MIB", "ReadPlan", "estimate_bytes", "plan_reads"]

_KIB, MIB = 2**10, 2**20
_SCAN_BYTES = 4 * MIB  # one converted record batch: large enough to amortize the per-batch costs
_READ_BUFFER_BYTES = (64 * _KIB, MIB)  # Parquet read buffer per column: budgeted minimum, default
_CSV_BLOCK_BYTES = (256 * _KIB, MIB)  # CSV block: budgeted minimum, default (pyarrow's)
_CSV_BLOCKS_HELD = 48  # the CSV reader holds about 35 blocks decoded ahead (measured), and their text
# What the process gains beyond the buffers counted below: Arrow's mimalloc and glibc's per-thread caches,
# thread stacks, metadata. Measured 35-60 MiB (RSS growth minus the buffers) on 2 cores; kept out of a budget.
_OVERHEAD_BYTES = 64 * MIB
_MAX_PREFETCH = 8


@dataclasses.dataclass(frozen=True)
class ReadPlan:
    """How a `FileDataFeeder` reads: the sizes that bound its memory.

    Attributes:
        scan_rows: rows per Parquet record batch (a multiple of `batch_size`).
        read_buffer_bytes: the Parquet read buffer of each column, or the CSV block size.
        shuffle_buffer_batches: batches in the shuffle window (0 when not shuffling).
        prefetch_batches: batches `tf.data` prefetches; None for `tf.data.AUTOTUNE`.
        estimated_mb: estimated peak memory of the pipeline, in MiB.
    """

    scan_rows: int
    read_buffer_bytes: int
    shuffle_buffer_batches: int
    prefetch_batches: int | None
    estimated_mb: float = 0.0


def estimate_bytes(plan: ReadPlan, file_format: str, batch_size: int, row_bytes: int, n_columns: int) -> int:
    """Estimated peak bytes of a pipeline read with `plan` (the terms are listed in `FileDataFeeder`'s docstring)."""
    batch = batch_size * row_bytes
    if file_format == "csv":
        reader = _CSV_BLOCKS_HELD * plan.read_buffer_bytes
        convert = 2 * plan.read_buffer_bytes  # a block's rows take at most the bytes of their text, twice
    else:
        reader = n_columns * plan.read_buffer_bytes + 3 * plan.scan_rows * row_bytes
        convert = 2 * plan.scan_rows * row_bytes  # the converted block and the stack handed to tf.data
    window = 3 * plan.shuffle_buffer_batches * batch
    stacked = (plan.shuffle_buffer_batches // 2 + 1) * batch if plan.shuffle_buffer_batches else 0
    prefetched = ((_MAX_PREFETCH if plan.prefetch_batches is None else plan.prefetch_batches) + 2) * batch
    return _OVERHEAD_BYTES + reader + convert + window + stacked + prefetched


def plan_reads(
    file_format: str,
    batch_size: int,
    row_bytes: int,
    n_columns: int,
    window_batches: int,
    memory_budget_mb: float | None,
) -> ReadPlan:
    """The default sizes, or the largest that fit `memory_budget_mb`, the shuffle window first.

    Args:
        file_format: "parquet" or "csv".
        batch_size: rows per batch.
        row_bytes: bytes of one converted row (features and target).
        n_columns: columns read (each has its own Parquet read buffer).
        window_batches: the shuffle window asked for, in batches (0 without shuffling).
        memory_budget_mb: MiB the pipeline may use, or None for the default sizes.

    Returns:
        The `ReadPlan`, with its `estimated_mb`.

    Raises:
        ValueError: a budget that one batch, or a minimal pipeline, exceeds.

    Warns:
        UserWarning: when the budget leaves room for a smaller shuffle window than asked for.
    """
    scan_batches = max(1, _SCAN_BYTES // (batch_size * row_bytes))
    buffers = _CSV_BLOCK_BYTES if file_format == "csv" else _READ_BUFFER_BYTES

    def estimate(plan: ReadPlan) -> int:
        return estimate_bytes(plan, file_format, batch_size, row_bytes, n_columns)

    def done(plan: ReadPlan) -> ReadPlan:
        return dataclasses.replace(plan, estimated_mb=round(estimate(plan) / MIB, 1))

    if memory_budget_mb is None:
        return done(ReadPlan(batch_size * scan_batches, buffers[1], window_batches, None))
    budget = memory_budget_mb * MIB
    batch_mb = batch_size * row_bytes / MIB
    if batch_mb > memory_budget_mb:
        raise ValueError(
            f"memory_budget_mb={memory_budget_mb} is too small for batch_size={batch_size}: one batch takes "
            f"{batch_mb:.1f} MiB by itself ({row_bytes} bytes a row). Lower batch_size or raise memory_budget_mb."
        )
    plan = ReadPlan(batch_size, buffers[0], min(window_batches, 1), 1)
    if estimate(plan) > budget:
        need = estimate(plan) / MIB
        raise ValueError(
            f"memory_budget_mb={memory_budget_mb} is too small: even a minimal pipeline needs about {need:.0f} MiB "
            f"({_OVERHEAD_BYTES // MIB} MiB of fixed overhead (allocator caches, thread pools), the reader's buffers "
            f"and a few batches of {batch_mb:.2f} MiB being converted, shuffled and prefetched). Raise "
            f"memory_budget_mb to at least {need:.0f}, or lower batch_size."
        )

    def largest(plan: ReadPlan, field: str, high: int, unit: int = 1) -> ReadPlan:
        low = getattr(plan, field) // unit  # fits: the largest multiple of unit up to high * unit that does
        while low < high:
            mid = (low + high + 1) // 2
            if estimate(dataclasses.replace(plan, **{field: mid * unit})) <= budget:
                low = mid
            else:
                high = mid - 1
        return dataclasses.replace(plan, **{field: low * unit})

    # The shuffle window comes first (it is what training quality depends on), after record batches
    # of a quarter of the default size (below that the per-batch costs start to show).
    plan = largest(plan, "prefetch_batches", 2)
    plan = largest(plan, "scan_rows", max(1, scan_batches // 4), unit=batch_size)
    plan = largest(plan, "shuffle_buffer_batches", window_batches)
    plan = largest(plan, "scan_rows", scan_batches, unit=batch_size)
    plan = largest(plan, "read_buffer_bytes", buffers[1] // _KIB, unit=_KIB)
    plan = largest(plan, "prefetch_batches", _MAX_PREFETCH)
    if plan.shuffle_buffer_batches < window_batches:
        warnings.warn(
            f"memory_budget_mb={memory_budget_mb} leaves room for a shuffle window of {plan.shuffle_buffer_batches} "
            f"batches instead of shuffle_buffer_batches={window_batches}; rows are shuffled less. Raise "
            "memory_budget_mb, or lower shuffle_buffer_batches to silence this warning.",
            UserWarning,
            stacklevel=3,
        )
    return done(plan)
