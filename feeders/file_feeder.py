"""Streaming Parquet and CSV files larger than memory as whole `tf.data` batches.

`pyarrow.dataset` finds the files, their schema and their Parquet row groups; the rows are then read
one row group (or CSV file) at a time by Arrow's pull-based readers (`ParquetFile.iter_batches`,
`pyarrow.csv.open_csv`), in record batches of a few MiB. Each record batch becomes one float32 block
of the feature columns in one vectorized conversion; blocks are cut into exact `batch_size` batches
(the remainder carried over to the next block) and handed to `tf.data` several batches per Python
call, since `from_generator` costs about the same per call whatever it yields. The planning of
those sizes is in `feeders.file_plan`, finding the files in `feeders.file_discovery`, the choice of
columns in `feeders.file_columns`, and the shuffle window and batching in `feeders.file_blocks`.

Why not `Dataset.to_batches`: its `batch_readahead`/`fragment_readahead` do not bound memory when
the consumer is slower than the disk, which a training loop always is. Arrow's scan queues decoded
batches until 1 GiB is waiting (`kDefaultBackpressureHighBytes`); measured here with a consumer
sleeping 10 ms a batch, it held 150-260 MB with both readaheads at 0, against 25-45 MB for the
pull-based readers, and it decodes a Parquet row group whole (240 MB for 1 Mi-row groups of 29
columns) where `iter_batches` streams it. Parquet is decoded on the generator's thread
(`use_threads=False`) and the Arrow pool's freed memory is handed back every 16 MiB read: Arrow's
mimalloc otherwise kept 30-40 MB more resident (decoding is not the bottleneck: the Python side
alone yields 3-5 M rows/s, several times what `tf.data` takes from it).

Shuffling is two-level, as file readers must: the order of the Parquet row groups (or CSV files) is
shuffled every epoch, and rows are permuted inside a bounded window of `shuffle_buffer_batches`
batches. That is a windowed shuffle, not a global one: rows far apart in the files meet in a batch
only through the row-group shuffle.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import tensorflow as tf

from feeders._validation import check_choice, check_epochs, check_positive_int, check_positive_number
from feeders.base import prefetched
from feeders.errors import FeederErrors
from feeders.file_blocks import Block, restack, windowed_shuffle
from feeders.file_columns import columns_from_state, resolve_columns, target_dtype
from feeders.file_discovery import EXTENSIONS, list_fragments, open_dataset, resolve_files
from feeders.file_plan import MIB, ReadPlan, plan_reads
from feeders.signature import Signatures, TensorSignature

__all__ = ["FileDataFeeder", "ReadPlan"]

_RELEASE_BYTES = 16 * MIB  # hand freed memory back to the OS this often (mimalloc keeps it a while)


class FileDataFeeder:
    """Streams Parquet or CSV files, possibly larger than memory, as whole `tf.data` batches.

    Features are numeric columns (integers, floats, booleans) fed as one float32 block of shape
    (batch_size, n_features); the target keeps integers (and booleans) as int64 and floats as
    float32. Columns of other types must be encoded as numbers beforehand, or left out through
    `feature_columns`. A NaN or null in a column read raises a `ValueError` naming it (through
    `tf.data`, a `tf.errors.InvalidArgumentError` carrying the same message; the Estimator re-raises
    the `ValueError`).

    Shuffling: every epoch the row groups (Parquet) or files (CSV) are read in a new order, and
    rows are permuted within a window of `shuffle_buffer_batches * batch_size` rows: when the
    window is full a random half of it is handed out, the rest stays to mix with the next rows.
    A windowed shuffle is not a global one; with row groups of R rows, a batch draws from the
    roughly `shuffle_buffer_batches * batch_size / R` row groups read last. Each epoch covers every
    row exactly once; all batches are full except the last of a finite pass (an epoch's remainder
    opens the next one's first batch).

    Memory is bounded whatever the size of the data. The pipeline holds about 64 MiB of fixed
    overhead (allocator caches and thread pools, measured), plus the reader (for Parquet, a read
    buffer per column and about three record batches of `scan_rows` rows; for CSV, about 48
    blocks), the converted record batch and the stack handed to `tf.data`, `3 *
    shuffle_buffer_batches` batches for the shuffle window (the window, the half handed out, the
    half kept) and the prefetched batches: `read_plan.estimated_mb`. Without `memory_budget_mb`
    the sizes are fixed (~4 MiB record batches, 1 MiB buffers; ~80-120 MiB in all) and `tf.data`
    tunes the prefetch. With it, they are chosen to fit the budget, the shuffle window first (it
    may end up smaller than `shuffle_buffer_batches`, with a warning); a budget that even a minimal
    pipeline exceeds is an error. Measured: one epoch over 360 MB of values grew the peak RSS by
    about 65 MiB with `memory_budget_mb=96`. Training from the feeder (`Estimator.fit(feeder)`)
    keeps this bound plus the model's own memory (its weights, optimizer state and one step's
    tensors; allow 16 MiB for a small model, more for a large one): measured, a logistic
    regression trained for one epoch over the same 360 MB with `memory_budget_mb=96` grew the peak
    RSS by about 40 MiB after a warm-up fit.

    Args:
        path: a Parquet or CSV file, a directory (searched recursively for files of that format,
            skipping names that start with "." or "_"), a glob pattern, or a list of these.
        target_column: name of the target column, or None to feed features only (prediction).
        feature_columns: names of the feature columns, in the order they are fed; default=None
            (every column but the target, in file order).
        batch_size: rows per batch, default=32.
        shuffle: shuffle the row-group order and the rows within a window every epoch, default=True.
        epochs: passes over the data; None repeats forever (training), default=None.
        seed: seed of the shuffles; the same seed gives the same batches. default=None (random).
        format: "parquet" or "csv"; default=None (from the extensions: .parquet, .pq, .csv).
        shuffle_buffer_batches: batches in the shuffle window, default=64.
        memory_budget_mb: MiB the pipeline may use on top of what the process holds; default=None.
        state: a feeder state learned at fit time (`FileDataFeeder.state`, or a `PandasFeeder`'s
            when every column was numeric): without `feature_columns`, its feature columns are
            read, by name and in the fitted order, whatever the files' column order, and other
            columns (the target at prediction, say) are left out. default=None.

    Raises:
        FileNotFoundError: a path that does not exist.
        ValueError: no files or no rows, a missing or non-numeric column, an invalid argument, or a
            memory budget too small for the batch size.

    Example:
        >>> train = FileDataFeeder("data/train/", "label", batch_size=256, seed=0)  # doctest: +SKIP
        >>> estimator.fit(input_fn=train.dataset, steps=1000)  # doctest: +SKIP
        >>> test = FileDataFeeder("data/test.parquet", "label", shuffle=False, epochs=1)  # doctest: +SKIP
        >>> estimator.evaluate(input_fn=test.dataset, metrics=["accuracy"])  # doctest: +SKIP
    """

    def __init__(
        self,
        path: str | os.PathLike | Sequence[str | os.PathLike],
        target_column: str | None = None,
        feature_columns: Sequence[str] | None = None,
        batch_size: int = 32,
        shuffle: bool = True,
        epochs: int | None = None,
        seed: int | None = None,
        format: str | None = None,
        shuffle_buffer_batches: int = 64,
        memory_budget_mb: float | None = None,
        state: dict[str, Any] | None = None,
    ) -> None:
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.epochs = check_epochs(epochs)
        shuffle_buffer_batches = check_positive_int("shuffle_buffer_batches", shuffle_buffer_batches)
        check_choice("format", format, (*EXTENSIONS, None))
        memory_budget_mb = check_positive_number("memory_budget_mb", memory_budget_mb, allow_none=True)
        self.shuffle = bool(shuffle)
        self.errors = FeederErrors()
        self.seed = int(seed) if seed is not None else int(np.random.randint(0, 2**31 - 1))
        self.files, self.format = resolve_files(path, format)
        dataset = open_dataset(self.files, self.format)
        self._fragments, self.n_samples = list_fragments(dataset)
        schema = dataset.schema
        if feature_columns is None and state is not None:
            feature_columns = columns_from_state(state, schema.names, target_column)
        self.target_column, self.feature_columns = resolve_columns(schema, target_column, feature_columns)
        self._y_dtype = None if self.target_column is None else target_dtype(schema, self.target_column)
        self._columns = [*self.feature_columns, *([self.target_column] if self.target_column else [])]
        types = {name: pa.float32() for name in self.feature_columns}  # CSV: parsed straight to float32
        if self.target_column is not None:
            types[self.target_column] = schema.field(self.target_column).type
        self._csv_convert = pa_csv.ConvertOptions(column_types=types, include_columns=self._columns)
        row_bytes = 4 * len(self.feature_columns) + (0 if self._y_dtype is None else self._y_dtype.itemsize)
        self.read_plan = plan_reads(
            self.format,
            self.batch_size,
            row_bytes,
            len(self._columns),
            shuffle_buffer_batches if self.shuffle else 0,
            memory_budget_mb,
        )

    @property
    def finite(self) -> bool:
        """Whether `dataset()` ends (a number of epochs) or repeats forever (`epochs=None`)."""
        return self.epochs is not None

    @property
    def state(self) -> dict[str, Any]:
        """The feature and target columns, in the order they are fed."""
        return {"type": "file", "feature_columns": list(self.feature_columns), "target_column": self.target_column}

    @property
    def input_signature(self) -> Signatures:
        """float32 features of shape (n_features,)."""
        return TensorSignature(tf.float32, (len(self.feature_columns),))

    @property
    def output_signature(self) -> Signatures:
        """The target's signature (int64 or float32, one value per row), or None without a target."""
        return None if self._y_dtype is None else TensorSignature(tf.as_dtype(self._y_dtype), ())

    def dataset(self) -> tf.data.Dataset:
        """A `tf.data.Dataset` of `(features, targets)` batches (features alone without a target).

        Its cardinality is infinite with `epochs=None`, exact for Parquet with a number of epochs,
        and unknown for CSV (rows are not counted ahead of reading).
        """
        x_spec = tf.TensorSpec((None, None, len(self.feature_columns)), tf.float32)
        signature = x_spec if self._y_dtype is None else (x_spec, tf.TensorSpec((None, None), self._y_dtype))
        dataset = tf.data.Dataset.from_generator(self._stacks, output_signature=signature).unbatch()
        if self.epochs is None:
            dataset = dataset.apply(tf.data.experimental.assert_cardinality(tf.data.INFINITE_CARDINALITY))
        elif self.n_samples is not None:
            n_batches = -(-self.epochs * self.n_samples // self.batch_size)
            dataset = dataset.apply(tf.data.experimental.assert_cardinality(n_batches))
        return prefetched(dataset, self.read_plan.prefetch_batches)

    def _stacks(self) -> Iterator[Any]:
        """Whole batches, several per call: x of shape (k, batch, n_features), y of shape (k, batch)."""
        for x, y in self.errors.watch(restack(self._rows(), self.batch_size)):
            yield x if y is None else (x, y)

    def _rows(self) -> Iterator[Block]:
        """Blocks of rows, epoch after epoch; each epoch shuffled with its own seed."""
        epoch = 0
        while self.epochs is None or epoch < self.epochs:
            if self.shuffle:
                rng = np.random.default_rng((self.seed, epoch))
                order = rng.permutation(len(self._fragments))
                window = self.read_plan.shuffle_buffer_batches
                yield from windowed_shuffle(self._read(order), window, self.batch_size, rng)
            else:
                yield from self._read(range(len(self._fragments)))
            epoch += 1

    def _read(self, order: Iterator[int] | Sequence[int]) -> Iterator[Block]:
        pool, unreleased = pa.default_memory_pool(), 0
        for index in order:
            for record_batch in self._read_fragment(self._fragments[index]):
                if record_batch.num_rows:
                    yield self._to_numpy(record_batch)
                unreleased += record_batch.nbytes
                if unreleased > _RELEASE_BYTES:
                    pool.release_unused()
                    unreleased = 0

    def _read_fragment(self, fragment: ds.Fragment) -> Iterator[pa.RecordBatch]:
        plan = self.read_plan
        if self.format == "csv":
            options = pa_csv.ReadOptions(block_size=plan.read_buffer_bytes)
            with fragment.filesystem.open_input_stream(fragment.path) as stream:
                yield from pa_csv.open_csv(stream, read_options=options, convert_options=self._csv_convert)
            return
        with pq.ParquetFile(
            fragment.path,
            metadata=fragment.metadata,
            pre_buffer=False,
            buffer_size=plan.read_buffer_bytes,
            filesystem=fragment.filesystem,
        ) as reader:
            yield from reader.iter_batches(
                batch_size=plan.scan_rows,
                row_groups=[fragment.row_groups[0].id],
                columns=self._columns,
                use_threads=False,
            )

    def _to_numpy(self, record_batch: pa.RecordBatch) -> Block:
        columns = record_batch.columns
        nulls = [name for name, column in zip(self._columns, columns) if column.null_count]
        if nulls:
            raise ValueError(
                f"Input column {nulls[0]!r} contains missing values (null); FileDataFeeder does not impute. "
                "Fill or drop them in the files beforehand, or read the files into a DataFrame (pd.read_parquet) "
                "and pass fit(df, ..., impute='mean')."
            )
        n = len(self.feature_columns)
        x = np.stack(
            [c.to_numpy(zero_copy_only=False) for c in columns[:n]], axis=1, dtype=np.float32, casting="unsafe"
        )
        nan = np.isnan(x).any(axis=0)
        if nan.any():
            names = [self.feature_columns[j] for j in np.flatnonzero(nan)]
            others = f" (and so do {names[1:]})" if len(names) > 1 else ""
            raise ValueError(
                f"Input column {names[0]!r} contains NaN{others}; FileDataFeeder does not impute. "
                "Fill or drop those rows in the files beforehand, or read the files into a DataFrame "
                "(pd.read_parquet) and pass fit(df, ..., impute='mean')."
            )
        if self._y_dtype is None:
            return x, None
        y = columns[n].to_numpy(zero_copy_only=False).astype(self._y_dtype, copy=False)
        if y.dtype.kind == "f" and np.isnan(y).any():
            raise ValueError(f"Input column {self.target_column!r} (the target) contains NaN.")
        return x, y
