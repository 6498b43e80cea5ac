"""A pipeline's data steps as plain functions: ingest, validate, split (the Prefect tasks call these).

What moves between the steps is small: paths of Parquet files under the run's directory, row
counts and the data's fingerprint (`Dataset`, `Splits`). `ingest` reads the source once and
materialises it as one Parquet file (a source of Parquet files is read where it is), unless the
source is files larger than the memory budget (`fit.memory_budget_mb`): those stay files, `split` streams them into train and eval Parquet
files one record batch at a time, and the training reads them through a `FileDataFeeder`
(`flows.training`), so they are never loaded whole.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from flows.config import PipelineConfig, SqlSource
from flows.sources import IngestError, describe, list_files, read_source, source_columns, source_fingerprint

__all__ = ["Dataset", "Splits", "estimated_mb", "ingest", "read_part", "split", "validate"]

logger = logging.getLogger("skflow")

_PARQUET = (".parquet", ".pq")


@dataclass(frozen=True)
class Dataset:
    """The ingested data: where it is, what it holds, and its content fingerprint.

    Attributes:
        path: the materialised Parquet file, or the source itself (Parquet files, a directory or a
            glob of them; any files when `streamed`).
        fingerprint: SHA-256 of the source's content (its files' bytes, else its rows).
        rows: number of rows.
        columns: column name -> dtype.
        streamed: the source stays files, read in record batches (it is over the memory budget).
        source: a human-readable name of the source.
    """

    path: str
    fingerprint: str
    rows: int
    columns: dict[str, str]
    streamed: bool
    source: str


@dataclass(frozen=True)
class Splits:
    """Training and evaluation rows as Parquet files, and the feature columns.

    Attributes:
        train, eval: Parquet files (or, for streamed sources, files/directories FileDataFeeder reads).
        train_rows, eval_rows: their row counts.
        features: the feature columns, in order.
        streamed: read them in batches (never whole).
    """

    train: str
    eval: str
    train_rows: int
    eval_rows: int
    features: list[str] = field(default_factory=list)
    streamed: bool = False


def estimated_mb(source: str | SqlSource) -> float | None:
    """The in-memory size of a file source, estimated from its files (Parquet: uncompressed column
    sizes from the metadata; CSV: the file size); None for other sources (read whole)."""
    if not isinstance(source, str) or source.startswith(("sklearn:", "demo:")):
        return None
    total = 0
    for path in list_files(source):
        if path.lower().endswith(_PARQUET):
            import pyarrow.parquet as pq

            meta = pq.ParquetFile(path).metadata
            total += sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        else:
            total += os.path.getsize(path)
    return total / 2**20


def ingest(source: str | SqlSource, directory: str, memory_budget_mb: float | None = None) -> Dataset:
    """Read `source` once: write it to `directory/source.parquet` and fingerprint it; or, for Parquet
    files and for files larger than `memory_budget_mb`, leave them where they are and fingerprint
    their bytes (reading only their metadata).

    Raises:
        IngestError: the source cannot be read or holds no rows (naming it and why).
    """
    size = estimated_mb(source) if memory_budget_mb is not None else None
    if size is not None and size > memory_budget_mb:
        files = list_files(source)
        rows = _count_rows(files)
        if rows == 0:
            raise IngestError(f"source {describe(source)!r} holds no rows.")
        logger.info(
            "Source %s is ~%.0f MB, over fit.memory_budget_mb=%g: streaming it, never loading it whole.",
            describe(source),
            size,
            memory_budget_mb,
        )
        columns = source_columns(source)
        return Dataset(source, source_fingerprint(source), rows, columns, True, describe(source))
    files = _parquet_files(source)
    if files:  # already columnar: read where it is, when needed
        rows = _count_rows(files)
        if rows == 0:
            raise IngestError(f"source {describe(source)!r} holds no rows.")
        columns = source_columns(source)
        return Dataset(source, source_fingerprint(source), rows, columns, False, describe(source))
    frame = read_source(source)
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "source.parquet")
    frame.to_parquet(path, index=False)
    columns = {str(c): str(t) for c, t in frame.dtypes.items()}
    return Dataset(path, source_fingerprint(source, frame), len(frame), columns, False, describe(source))


def _parquet_files(source: str | SqlSource) -> list[str]:
    """The files of a source made of Parquet files only ([] for anything else)."""
    if not isinstance(source, str) or source.startswith(("sklearn:", "demo:")):
        return []
    files = list_files(source)
    return files if all(f.lower().endswith(_PARQUET) for f in files) else []


def _count_rows(files: list[str]) -> int:
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    rows = 0
    for path in files:
        if path.lower().endswith(_PARQUET):
            rows += pq.ParquetFile(path).metadata.num_rows
        else:
            with pa_csv.open_csv(path) as reader:
                rows += sum(batch.num_rows for batch in reader)
    return rows


# ---------------------------------------------------------------------------------------- validate
def validate(dataset: Dataset, config: PipelineConfig) -> list[str]:
    """Check the target and feature columns and their types; returns the feature columns.

    Features default to every column but the target, the id column and a time split's column.
    Numbers and booleans are features for every model; categorical and string columns for models
    fed in memory (streamed files need numbers); dates never (leave them out with `features`, or
    split on them with `split.column`).

    Raises:
        ValueError: naming the columns that are missing or of the wrong type, and the fix.
    """
    columns = dataset.columns
    excluded = {config.target, config.id_column, config.split.column if config.split.kind == "time" else None}
    features = list(config.features) if config.features is not None else [c for c in columns if c not in excluded]
    missing = [c for c in [config.target, *features] if c not in columns]
    if missing:
        raise ValueError(f"columns {missing} are not in source {dataset.source!r}; its columns are {sorted(columns)}")
    if not features:
        raise ValueError(f"source {dataset.source!r} has no feature column besides the target {config.target!r}")
    kinds = {c: _kind(columns[c]) for c in features}
    problems = []
    dates = [c for c, k in kinds.items() if k == "date"]
    if dates:
        problems.append(
            f"feature columns {dates} hold dates, which a model cannot take: list the features without them "
            "(features: [...]), or split on one (split: {kind: time, column: ...})"
        )
    text = [c for c, k in kinds.items() if k == "text"]
    if text and dataset.streamed:
        problems.append(
            f"feature columns {text} are not numbers: a source streamed from files (over fit.memory_budget_mb) "
            "needs numeric features; encode them beforehand or leave them out"
        )
    if dataset.streamed and config.estimator.name is not None:
        problems.append(
            f"source {dataset.source!r} is over fit.memory_budget_mb and is streamed from its files, which "
            f"needs a custom estimator.model_fn ({config.estimator.name} takes data in memory); raise the budget "
            "or use a model_fn"
        )
    if config.estimator.is_classifier is False and _kind(columns[config.target]) != "number":
        problems.append(
            f"target {config.target!r} holds {_kind(columns[config.target])}s ({columns[config.target]}), but a "
            "regression model predicts numbers"
        )
    if problems:
        raise ValueError("; ".join(problems))
    if not dataset.streamed:
        frame = read_source(dataset.path, columns=list(dict.fromkeys([config.target, *features])))
        _check_missing(frame, config, features)
    return features


def _kind(dtype: str) -> str:
    lowered = dtype.lower()
    if "date" in lowered or "time" in lowered:
        return "date"
    if lowered.startswith(("int", "uint", "float", "double", "bool", "halffloat")):
        return "number"
    return "text"


def _check_missing(frame: pd.DataFrame, config: PipelineConfig, features: list[str]) -> None:
    empty_target = int(frame[config.target].isna().sum())
    if empty_target:
        raise ValueError(
            f"target {config.target!r} is missing in {empty_target} of {len(frame)} rows; drop those rows first"
        )
    counts = frame[features].isna().sum()
    gaps = {str(c): int(n) for c, n in counts.items() if n}
    if gaps and config.fit.impute is None:
        raise ValueError(
            f"feature columns have missing values {gaps} (rows per column); set fit.impute: mean to fill them with "
            "the training means, or fill them first"
        )


# ---------------------------------------------------------------------------------------- split
def split(dataset: Dataset, config: PipelineConfig, features: list[str], directory: str) -> Splits:
    """Split the rows into `directory/train.parquet` and `directory/eval.parquet` as `config.split`
    says (streamed sources one record batch at a time).

    Raises:
        ValueError: a split that leaves no training or no evaluation row, or a stratified split of
            a class too small to split.
    """
    os.makedirs(directory, exist_ok=True)
    train_path, eval_path = os.path.join(directory, "train.parquet"), os.path.join(directory, "eval.parquet")
    wanted = list(dict.fromkeys([*features, config.target, *_maybe(config.id_column)]))
    if dataset.streamed:
        from flows.streaming import stream_split

        train_rows, eval_rows = stream_split(dataset, config, wanted, train_path, eval_path)
    else:
        frame = read_source(dataset.path)
        train, held_out = _split_frame(frame, config)
        train[[c for c in wanted if c in train.columns]].to_parquet(train_path, index=False)
        held_out[[c for c in wanted if c in held_out.columns]].to_parquet(eval_path, index=False)
        train_rows, eval_rows = len(train), len(held_out)
    if not train_rows or not eval_rows:
        raise ValueError(
            f"split.kind {config.split.kind!r} left {train_rows} training and {eval_rows} evaluation rows of "
            f"{dataset.rows}: both need at least one (check split.cutoff / split.test_size)"
        )
    logger.info("Split %s: %d training rows, %d evaluation rows.", dataset.source, train_rows, eval_rows)
    return Splits(train_path, eval_path, train_rows, eval_rows, features, dataset.streamed)


def _split_frame(frame: pd.DataFrame, config: PipelineConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    spec = config.split
    if spec.kind == "source":
        held_out = read_source(spec.eval_source)
        return frame, held_out
    if spec.kind == "time":
        dates = pd.to_datetime(frame[spec.column])
        if spec.cutoff is not None:
            mask = (dates >= pd.Timestamp(spec.cutoff)).to_numpy()
        else:
            n_eval = math.ceil(len(frame) * spec.test_size)
            order = np.argsort(dates.to_numpy(), kind="stable")
            mask = np.zeros(len(frame), dtype=bool)
            mask[order[len(frame) - n_eval :]] = True
        return frame[~mask].reset_index(drop=True), frame[mask].reset_index(drop=True)
    from sklearn.model_selection import train_test_split

    stratify = spec.stratify if spec.stratify is not None else bool(config.estimator.is_classifier)
    labels = frame[config.target] if stratify else None
    try:
        train, held_out = train_test_split(frame, test_size=spec.test_size, random_state=spec.seed, stratify=labels)
    except ValueError as exc:
        if not stratify:
            raise
        raise ValueError(
            f"a stratified split of target {config.target!r} is not possible ({exc}); set split.stratify: false"
        ) from None
    return train.reset_index(drop=True), held_out.reset_index(drop=True)


def read_part(path: str, columns: list[str] | None = None) -> pd.DataFrame:
    """The rows of a split's Parquet file (the columns given, in that order)."""
    return pd.read_parquet(path, columns=columns)


def _maybe(name: str | None) -> list[str]:
    return [name] if name else []
