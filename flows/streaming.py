"""Splitting files larger than memory: one record batch at a time into train and eval Parquet files.

Memory holds one record batch (64 Ki rows) of the columns a model needs, whatever the size of the
source. A random split draws each row's side from a generator seeded by `split.seed` and the
batch's position, so the same files give the same split. A time split compares the date column
with `split.cutoff` (without one, the cutoff is the `1 - test_size` quantile of that column, read
alone first). Stratification needs every label at once and is not done here (a warning says so).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np

from flows.config import PipelineConfig
from flows.sources import IngestError, list_files, read_source

__all__ = ["iter_batches", "stream_split"]

logger = logging.getLogger("skflow")

BATCH_ROWS = 65_536


def iter_batches(source: str, columns: list[str] | None = None, rows: int = BATCH_ROWS) -> Iterator[object]:
    """`pyarrow.RecordBatch`es of the CSV/Parquet files of `source`, `rows` rows at most each."""
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    for path in list_files(source):
        try:
            if path.lower().endswith((".parquet", ".pq")):
                yield from pq.ParquetFile(path).iter_batches(batch_size=rows, columns=columns)
            else:
                convert = pa_csv.ConvertOptions(include_columns=columns) if columns else None
                with pa_csv.open_csv(path, convert_options=convert) as reader:
                    yield from reader
        except (OSError, ValueError) as exc:
            raise IngestError(f"{path} cannot be read: {type(exc).__name__}: {str(exc)[:300]}") from None


def stream_split(
    dataset: object, config: PipelineConfig, columns: list[str], train_path: str, eval_path: str
) -> tuple[int, int]:
    """Write the rows of a streamed `dataset` to `train_path` and `eval_path` (Parquet) as
    `config.split` says; returns (training rows, evaluation rows)."""
    import pyarrow as pa

    spec = config.split
    source = dataset.path
    if spec.kind == "source":
        train_rows = _copy(iter_batches(source, columns), train_path)
        held_out = spec.eval_source
        if isinstance(held_out, str) and not held_out.startswith(("sklearn:", "demo:")):
            return train_rows, _copy(iter_batches(held_out, columns), eval_path)
        frame = read_source(held_out)
        return train_rows, _copy(iter([pa.RecordBatch.from_pandas(frame[columns], preserve_index=False)]), eval_path)
    if spec.kind == "random" and spec.stratify:
        logger.warning("split.stratify is not done for a streamed source: its rows are split at random.")
    cutoff = _cutoff(source, config) if spec.kind == "time" else None
    read = list(dict.fromkeys([*columns, spec.column])) if spec.kind == "time" else columns
    writers: dict[str, object] = {}
    counts = {"train": 0, "eval": 0}
    try:
        for index, batch in enumerate(iter_batches(source, read)):
            if spec.kind == "time":
                mask = _dates(batch.column(batch.schema.get_field_index(spec.column))) >= cutoff
                batch = batch.select(columns)
            else:
                mask = np.random.default_rng([spec.seed, index]).random(batch.num_rows) < spec.test_size
            for side, rows in (("train", ~mask), ("eval", mask)):
                part = batch.filter(pa.array(rows))
                if part.num_rows:
                    if side not in writers:
                        import pyarrow.parquet as pq

                        writers[side] = pq.ParquetWriter(train_path if side == "train" else eval_path, batch.schema)
                    writers[side].write_batch(part)
                    counts[side] += part.num_rows
    finally:
        for writer in writers.values():
            writer.close()
    return counts["train"], counts["eval"]


def _copy(batches: Iterator[object], path: str) -> int:
    import pyarrow.parquet as pq

    writer, rows = None, 0
    try:
        for batch in batches:
            if writer is None:
                writer = pq.ParquetWriter(path, batch.schema)
            writer.write_batch(batch)
            rows += batch.num_rows
    finally:
        if writer is not None:
            writer.close()
    return rows


def _dates(column: object) -> np.ndarray:
    import pandas as pd

    return pd.to_datetime(column.to_pandas()).to_numpy()


def _cutoff(source: str, config: PipelineConfig) -> np.datetime64:
    import pandas as pd

    spec = config.split
    if spec.cutoff is not None:
        return np.datetime64(pd.Timestamp(spec.cutoff))
    values = np.concatenate([_dates(b.column(0)) for b in iter_batches(source, [spec.column])])
    nanoseconds = np.quantile(values.astype("datetime64[ns]").astype(np.int64), 1 - spec.test_size)
    return np.datetime64(int(nanoseconds), "ns")
