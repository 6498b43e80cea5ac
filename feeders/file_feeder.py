"""Streaming Parquet and CSV files larger than memory as whole `tf.data` batches.

`pyarrow.dataset` finds the files, their schema and their Parquet row groups; the rows are then read
one row group (or CSV file) at a time by Arrow's pull-based readers (`ParquetFile.iter_batches`,
`pyarrow.csv.open_csv`), in record batches of a few MiB. Each record batch becomes one float32 block
of the feature columns in one vectorized conversion; blocks are cut into exact `batch_size` batches
(the remainder carried over to the next block) and handed to `tf.data` several batches per Python
call, since `from_generator` costs about the same per call whatever it yields (performance-facts.md
§1.5).

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

import dataclasses
import glob
import os
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import tensorflow as tf

from feeders._validation import check_choice, check_epochs, check_positive_int, check_positive_number
from feeders.base import describe_state, state_kind
from feeders.errors import FeederErrors
from feeders.signature import Signatures, TensorSignature

__all__ = ["FileDataFeeder", "ReadPlan"]

_EXTENSIONS = {"parquet": (".parquet", ".pq"), "csv": (".csv",)}
_KIB, _MIB = 2**10, 2**20
_SCAN_BYTES = 4 * _MIB  # one converted record batch: large enough to amortize the per-batch costs
_READ_BUFFER_BYTES = (64 * _KIB, _MIB)  # Parquet read buffer per column: budgeted minimum, default
_CSV_BLOCK_BYTES = (256 * _KIB, _MIB)  # CSV block: budgeted minimum, default (pyarrow's)
_CSV_BLOCKS_HELD = 48  # the CSV reader holds about 35 blocks decoded ahead (measured), and their text
# What the process gains beyond the buffers counted below: Arrow's mimalloc and glibc's per-thread caches,
# thread stacks, metadata. Measured 35-60 MiB (RSS growth minus the buffers) on 2 cores; kept out of a budget.
_OVERHEAD_BYTES = 64 * _MIB
_MAX_PREFETCH = 8
_RELEASE_BYTES = 16 * _MIB  # hand freed memory back to the OS this often (mimalloc keeps it a while)
_Block = tuple[np.ndarray, np.ndarray | None]


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
        check_choice("format", format, (*_EXTENSIONS, None))
        memory_budget_mb = check_positive_number("memory_budget_mb", memory_budget_mb, allow_none=True)
        self.shuffle = bool(shuffle)
        self.errors = FeederErrors()
        self.seed = int(seed) if seed is not None else int(np.random.randint(0, 2**31 - 1))
        self.files, self.format = _resolve_files(path, format)
        dataset = _open_dataset(self.files, self.format)
        self._fragments, self.n_samples = _fragments(dataset)
        schema = dataset.schema
        if feature_columns is None and state is not None:
            feature_columns = _columns_from_state(state, schema.names, target_column)
        self.target_column, self.feature_columns = _resolve_columns(schema, target_column, feature_columns)
        self._y_dtype = None if self.target_column is None else _target_dtype(schema, self.target_column)
        self._columns = [*self.feature_columns, *([self.target_column] if self.target_column else [])]
        types = {name: pa.float32() for name in self.feature_columns}  # CSV: parsed straight to float32
        if self.target_column is not None:
            types[self.target_column] = schema.field(self.target_column).type
        self._csv_convert = pa_csv.ConvertOptions(column_types=types, include_columns=self._columns)
        row_bytes = 4 * len(self.feature_columns) + (0 if self._y_dtype is None else self._y_dtype.itemsize)
        self.read_plan = _plan(
            self.format,
            self.batch_size,
            row_bytes,
            len(self._columns),
            shuffle_buffer_batches if self.shuffle else 0,
            memory_budget_mb,
        )

    @property
    def finite(self) -> bool:
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
        prefetch = self.read_plan.prefetch_batches
        return dataset.prefetch(tf.data.AUTOTUNE if prefetch is None else prefetch)

    def numpy_batches(self) -> Iterator[Any]:
        """The batches of `dataset()` as numpy arrays, without `tf.data`: `(x, y)` pairs, or x alone."""
        for stack in self._stacks():
            yield from zip(*stack) if isinstance(stack, tuple) else stack

    def _stacks(self) -> Iterator[Any]:
        """Whole batches, several per call: x of shape (k, batch, n_features), y of shape (k, batch)."""
        for x, y in self.errors.watch(_restack(self._rows(), self.batch_size)):
            yield x if y is None else (x, y)

    def _rows(self) -> Iterator[_Block]:
        """Blocks of rows, epoch after epoch; each epoch shuffled with its own seed."""
        epoch = 0
        while self.epochs is None or epoch < self.epochs:
            if self.shuffle:
                rng = np.random.default_rng((self.seed, epoch))
                order = rng.permutation(len(self._fragments))
                window = self.read_plan.shuffle_buffer_batches
                yield from _windowed_shuffle(self._read(order), window, self.batch_size, rng)
            else:
                yield from self._read(range(len(self._fragments)))
            epoch += 1

    def _read(self, order: Iterator[int] | Sequence[int]) -> Iterator[_Block]:
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

    def _to_numpy(self, record_batch: pa.RecordBatch) -> _Block:
        columns = record_batch.columns
        nulls = [name for name, column in zip(self._columns, columns) if column.null_count]
        if nulls:
            raise ValueError(
                f"Input column {nulls[0]!r} contains missing values (null); FileDataFeeder does not impute. "
                "Fill or drop them in the files beforehand."
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
                "Fill or drop those rows in the files beforehand."
            )
        if self._y_dtype is None:
            return x, None
        y = columns[n].to_numpy(zero_copy_only=False).astype(self._y_dtype, copy=False)
        if y.dtype.kind == "f" and np.isnan(y).any():
            raise ValueError(f"Input column {self.target_column!r} (the target) contains NaN.")
        return x, y


def _resolve_files(path: Any, format: str | None) -> tuple[list[str], str]:
    entries = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    if not entries or not all(isinstance(e, (str, os.PathLike)) for e in entries):
        raise ValueError(
            f"Invalid value for argument `path`. Received: path={path!r}. Expected a file, a directory, a glob "
            "pattern or a non-empty list of them."
        )
    extensions = _EXTENSIONS[format] if format else tuple(e for exts in _EXTENSIONS.values() for e in exts)
    files: list[str] = []
    for entry in map(os.fspath, entries):
        if os.path.exists(entry):
            matches = [entry]
        elif any(c in entry for c in "*?["):
            matches = sorted(glob.glob(entry, recursive=True))
            if not matches:
                raise FileNotFoundError(f"No file matches the pattern {entry!r}.")
        else:
            raise FileNotFoundError(f"No such file or directory: {entry!r}.")
        for match in matches:
            if os.path.isdir(match):
                found = _list_directory(match, extensions)
                if not found:
                    raise ValueError(f"Found no {' or '.join(extensions)} files in the directory {match!r}.")
                files.extend(found)
            else:
                files.append(match)
    if format is None:
        kinds = {_format_of(f) for f in files}
        if len(kinds) > 1:
            raise ValueError(f"The files mix formats {sorted(kinds)}; pass files of one format.")
        format = kinds.pop()
    return files, format


def _list_directory(directory: str, extensions: tuple[str, ...]) -> list[str]:
    found = []
    for root, dirs, names in os.walk(directory):
        dirs[:] = [d for d in dirs if not d.startswith((".", "_"))]
        found.extend(
            os.path.join(root, n) for n in names if not n.startswith((".", "_")) and n.lower().endswith(extensions)
        )
    return sorted(found)


def _format_of(file: str) -> str:
    for kind, extensions in _EXTENSIONS.items():
        if file.lower().endswith(extensions):
            return kind
    raise ValueError(f"Cannot tell the format of {file!r} from its extension; pass format='parquet' or format='csv'.")


def _open_dataset(files: list[str], format: str) -> ds.FileSystemDataset:
    try:
        return ds.dataset(files, format=format)
    except (pa.ArrowInvalid, OSError) as exc:
        where = repr(files[0]) if len(files) == 1 else f"{len(files)} files starting with {files[0]!r}"
        raise ValueError(f"Cannot read {where} as {format}: {exc}") from None


def _columns_from_state(state: dict[str, Any], available: list[str], target_column: str | None) -> list[str] | None:
    """The feature columns a model was fitted on, from its feeder state (None: no columns to reuse)."""
    kind = state_kind(state)
    if kind == "file":
        columns = list(state["feature_columns"])
    elif kind == "pandas":
        frame = state["frame"]
        if frame.get("vocabularies"):
            raise ValueError(
                f"This model was fitted on {describe_state(state)}, with categorical column(s) "
                f"{list(frame['vocabularies'])} encoded by the pandas feeder; FileDataFeeder feeds numeric columns "
                "only and cannot apply that encoding. Read the files into a DataFrame (pd.read_parquet(path)) and "
                "pass that instead."
            )
        columns = list(frame["numeric"])
    else:
        return None  # numpy arrays: matched by position, as an array would be
    missing = [c for c in columns if c not in available]
    if missing:
        raise ValueError(
            f"X is missing column(s) {missing} that the model was fitted on. Expected columns {columns}; the data "
            f"has {available}."
        )
    if target_column in columns:
        raise ValueError(f"The target column {target_column!r} was a feature column when the model was fitted.")
    return columns


def _resolve_columns(
    schema: pa.Schema, target_column: str | None, feature_columns: Sequence[str] | None
) -> tuple[str | None, list[str]]:
    available = schema.names

    def check_present(name: Any, argument: str) -> None:
        if not isinstance(name, str) or name not in available:
            raise ValueError(f"{argument}={name!r} is not a column of the data. Available columns: {available}.")

    if target_column is not None:
        check_present(target_column, "target_column")
    if feature_columns is None:
        features = [name for name in available if name != target_column]
    else:
        if isinstance(feature_columns, str):
            raise ValueError(
                f"Invalid value for argument `feature_columns`. Received: feature_columns={feature_columns!r}. "
                "Expected a list of column names."
            )
        features = list(feature_columns)
        for name in features:
            check_present(name, "feature_columns entry")
        if target_column in features:
            raise ValueError(f"The target column {target_column!r} is also listed in feature_columns.")
        if len(set(features)) != len(features):
            raise ValueError(f"feature_columns lists a column twice: {features}.")
    if not features:
        raise ValueError(f"There are no feature columns: the data has only {available}.")
    for name in features:
        kind = schema.field(name).type
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)):
            empty = " (it holds no values)" if pa.types.is_null(kind) else ""
            raise ValueError(
                f"Feature column {name!r} has type {kind}{empty}; FileDataFeeder feeds numeric columns only (integers, "
                "floats, booleans). Encode it as numbers in the files beforehand (for example with "
                "sklearn.preprocessing.OrdinalEncoder), or leave it out with feature_columns=[...]."
            )
    return target_column, features


def _target_dtype(schema: pa.Schema, name: str) -> np.dtype:
    kind = schema.field(name).type
    if pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        return np.dtype(np.int64)
    if pa.types.is_floating(kind):
        return np.dtype(np.float32)
    raise ValueError(
        f"Target column {name!r} has type {kind}; FileDataFeeder needs a numeric target. Encode class labels as "
        "integers in the files beforehand (for example with sklearn.preprocessing.LabelEncoder)."
    )


def _fragments(dataset: ds.FileSystemDataset) -> tuple[list[Any], int | None]:
    """The units read in shuffled order (Parquet row groups, CSV files) and the number of rows (None for CSV)."""
    try:
        if isinstance(dataset.format, ds.ParquetFileFormat):
            groups = [group for fragment in dataset.get_fragments() for group in fragment.split_by_row_group()]
            fragments = [group for group in groups if group.row_groups[0].num_rows]
            n_samples: int | None = sum(group.row_groups[0].num_rows for group in fragments)
        else:
            fragments, n_samples = list(dataset.get_fragments()), None
            if not any(_csv_has_rows(fragment) for fragment in fragments):
                n_samples = 0
    except (pa.ArrowInvalid, OSError) as exc:
        raise ValueError(f"Cannot read the data: {exc}") from None
    if n_samples == 0:
        where = dataset.files if len(dataset.files) < 4 else f"{len(dataset.files)} files"
        raise ValueError(f"Found 0 rows in {where}, while a minimum of 1 is required.")
    return fragments, n_samples


def _csv_has_rows(fragment: ds.Fragment) -> bool:
    with fragment.filesystem.open_input_stream(fragment.path) as stream:
        return any(batch.num_rows for batch in pa_csv.open_csv(stream))


def _estimate(plan: ReadPlan, file_format: str, batch_size: int, row_bytes: int, n_columns: int) -> int:
    """Estimated peak bytes of a plan (see the class docstring)."""
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


def _plan(
    file_format: str,
    batch_size: int,
    row_bytes: int,
    n_columns: int,
    window_batches: int,
    memory_budget_mb: float | None,
) -> ReadPlan:
    """The default sizes, or the largest that fit `memory_budget_mb`."""
    scan_batches = max(1, _SCAN_BYTES // (batch_size * row_bytes))
    buffers = _CSV_BLOCK_BYTES if file_format == "csv" else _READ_BUFFER_BYTES

    def estimate(plan: ReadPlan) -> int:
        return _estimate(plan, file_format, batch_size, row_bytes, n_columns)

    def done(plan: ReadPlan) -> ReadPlan:
        return dataclasses.replace(plan, estimated_mb=round(estimate(plan) / _MIB, 1))

    if memory_budget_mb is None:
        return done(ReadPlan(batch_size * scan_batches, buffers[1], window_batches, None))
    budget = memory_budget_mb * _MIB
    batch_mb = batch_size * row_bytes / _MIB
    if batch_mb > memory_budget_mb:
        raise ValueError(
            f"memory_budget_mb={memory_budget_mb} is too small for batch_size={batch_size}: one batch takes "
            f"{batch_mb:.1f} MiB by itself ({row_bytes} bytes a row). Lower batch_size or raise memory_budget_mb."
        )
    plan = ReadPlan(batch_size, buffers[0], min(window_batches, 1), 1)
    if estimate(plan) > budget:
        need = estimate(plan) / _MIB
        raise ValueError(
            f"memory_budget_mb={memory_budget_mb} is too small: even a minimal pipeline needs about {need:.0f} MiB "
            f"({_OVERHEAD_BYTES // _MIB} MiB of fixed overhead (allocator caches, thread pools), the reader's buffers "
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


def _windowed_shuffle(
    blocks: Iterator[_Block], window_batches: int, batch_size: int, rng: np.random.Generator
) -> Iterator[_Block]:
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


def _restack(blocks: Iterator[_Block], batch_size: int) -> Iterator[_Block]:
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
