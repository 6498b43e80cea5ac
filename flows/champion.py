"""The champion a retrain challenges, as plain library code (`flows.retrain` is the flow around it).

- `find_champion`: the version the alias `champion` names, its signature's columns (from its
  MLmodel) and what its registration recorded (model_dir, training rows, data fingerprint).
- `data_fingerprint` / `seen_fingerprints`: "no new data" means the source's fingerprint (with the
  retrain window's settings) is the champion's training data's or the last retrain's.
- `select_rows`: the retrain window on a date column; `check_source_schema`: the source's columns
  and kinds (each file of a directory of partitions) against the champion's signature.
- `warm_start_from`: the champion's checkpoints copied into a challenger's new model_dir.
- `drift_against_champion` / `log_drift`: per-feature drift of the new rows against the champion's
  training rows; `record_decision`: the decision on the challenger's run and model version, the
  alias moved when it won.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any

import pandas as pd

from flows.config import PipelineConfig
from flows.data import Dataset, read_part
from flows.drift import DriftReport, check_kinds, drift_report, dtype_kind
from flows.promotion import Decision
from flows.sources import describe, read_source, source_columns, source_fingerprint

__all__ = [
    "DRIFT_FOLDER",
    "FINGERPRINT_TAG",
    "Champion",
    "check_source_schema",
    "data_fingerprint",
    "drift_against_champion",
    "find_champion",
    "log_drift",
    "record_decision",
    "seen_fingerprints",
    "select_rows",
    "warm_start_from",
]

logger = logging.getLogger("skflow")

FINGERPRINT_TAG = "skflow.retrain.fingerprint"
DRIFT_FOLDER = "drift"  # the run's artifact folder of the drift report
_SIGNATURE_KINDS = {"boolean": "numeric", "bool": "numeric"}  # a model takes booleans as numbers


@dataclass(frozen=True)
class Champion:
    """The model version the alias `champion` names, and what a retrain needs of it.

    Attributes:
        name, version: the registered model and version. run_id: the run that trained it.
        model_uri: `models:/NAME/VERSION` (pinned: the alias may move during the retrain).
        columns: its input columns -> kind ("numeric", "categorical", "datetime"), from its signature.
        model_dir: its checkpoints (a warm start's starting point), or None if unknown.
        train_data: its training rows (the drift reference), or None if unknown.
        fingerprint: the fingerprint of its training data, or None.
    """

    name: str
    version: str
    run_id: str | None
    model_uri: str
    columns: dict[str, str]
    model_dir: str | None = None
    train_data: str | None = None
    fingerprint: str | None = None


def find_champion(name: str, tracking_uri: str | None = None) -> Champion | None:
    """The champion version of registered model `name`, with its signature's columns; None when the
    model or its alias does not exist (the retrain's challenger then becomes the first champion)."""
    from mlflow.models import Model

    from flows.prediction import resolve_model_uri
    from flows.tracking.registry import CHAMPION, version_by_alias
    from flows.tracking.store import bounded_requests, resolve_store

    uri = resolve_store(tracking_uri).tracking_uri
    found = version_by_alias(name, CHAMPION, uri)
    if found is None:
        return None
    pinned = f"models:/{name}/{found.version}"
    location = resolve_model_uri(pinned, uri)
    import mlflow

    with tempfile.TemporaryDirectory(prefix="skflow_champion_") as tmp, bounded_requests(timeout=60):
        local = mlflow.artifacts.download_artifacts(f"{location.rstrip('/')}/MLmodel", dst_path=tmp, tracking_uri=uri)
        signature = Model.load(local).signature
    columns: dict[str, str] = {}
    if signature is not None:
        for spec in signature.inputs.inputs:
            if spec.name is not None:
                kind = spec.type.name if hasattr(spec.type, "name") else str(spec.type)
                columns[spec.name] = _SIGNATURE_KINDS.get(kind, dtype_kind(kind))
    tags = dict(found.tags or {})
    return Champion(
        name=name,
        version=str(found.version),
        run_id=found.run_id,
        model_uri=pinned,
        columns=columns,
        model_dir=tags.get("skflow.model_dir"),
        train_data=tags.get("skflow.train_data"),
        fingerprint=tags.get("skflow.data.fingerprint"),
    )


def data_fingerprint(config: PipelineConfig) -> str:
    """The fingerprint of the data a retrain would train on: the source's (its files' bytes, else its
    rows), combined with the window settings when `retrain` selects a window (the selection is a
    function of the content: `window_days` counts back from the newest date in the data, not today)."""
    base = source_fingerprint(config.source)
    spec = config.retrain
    if spec.window_days is None and spec.since is None:
        return base
    window = json.dumps([spec.window_days, spec.since, _date_column(config)])
    return hashlib.sha256(f"{base}\0{window}".encode()).hexdigest()


def seen_fingerprints(name: str, champion: Champion | None, tracking_uri: str | None = None) -> set[str]:
    """The fingerprints counted as "no new data": the last retrain's (a tag on the registered model)
    and the champion's training data's."""
    from flows.tracking.registry import registered_model_tags

    known = set()
    tags = registered_model_tags(name, tracking_uri) or {}
    if tags.get(FINGERPRINT_TAG):
        known.add(tags[FINGERPRINT_TAG])
    if champion is not None and champion.fingerprint:
        known.add(champion.fingerprint)
    return known


def _date_column(config: PipelineConfig) -> str | None:
    return config.retrain.date_column or (config.split.column if config.split.kind == "time" else None)


def select_rows(dataset: Dataset, config: PipelineConfig, directory: str) -> Dataset:
    """The rows of `dataset` in the retrain window (`retrain.window_days` back from the newest date of
    the date column, and/or `retrain.since`), written to `directory/window.parquet`; `dataset`
    itself when no window is set.

    Raises:
        ValueError: a streamed source (the window needs the rows in memory), a missing or non-date
            column, or a window holding no row.
    """
    spec = config.retrain
    if spec.window_days is None and spec.since is None:
        return dataset
    column = _date_column(config)
    if dataset.streamed:
        raise ValueError(
            f"retrain.window_days/since select rows in memory, but source {dataset.source!r} is over "
            "fit.memory_budget_mb and is streamed: raise the budget, or drop the window and keep the new "
            "partitions in the source's directory"
        )
    frame = read_source(dataset.path)
    if column not in frame.columns:
        raise ValueError(f"retrain.date_column {column!r} is not a column of {dataset.source!r}; it has {list(frame)}")
    try:
        dates = pd.to_datetime(frame[column])
    except (ValueError, TypeError) as exc:
        raise ValueError(f"retrain.date_column {column!r} does not hold dates ({exc})") from None
    keep = pd.Series(True, index=frame.index)
    described = []
    if spec.window_days is not None:
        start = dates.max() - pd.Timedelta(days=spec.window_days)
        keep &= dates >= start
        described.append(f"the last {spec.window_days:g} days of {column}")
    if spec.since is not None:
        since = pd.Timestamp(spec.since)
        if dates.dt.tz is not None and since.tz is None:
            since = since.tz_localize(dates.dt.tz)
        keep &= dates >= since
        described.append(f"{column} >= {spec.since}")
    selected = frame[keep.to_numpy()].reset_index(drop=True)
    if selected.empty:
        raise ValueError(
            f"the retrain window ({' and '.join(described)}) holds no row of {dataset.source!r} "
            f"(its dates run from {dates.min()} to {dates.max()}); widen retrain.window_days or move retrain.since"
        )
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "window.parquet")
    selected.to_parquet(path, index=False)
    logger.info("Retrain window %s: %d of %d rows.", " and ".join(described), len(selected), len(frame))
    columns = {str(c): str(t) for c, t in selected.dtypes.items()}
    source = f"{dataset.source} ({' and '.join(described)})"
    return Dataset(path, data_fingerprint(config), len(selected), columns, False, source)


def check_source_schema(config: PipelineConfig, champion: Champion) -> None:
    """Check the source's columns and their kinds (from schemas alone: every file's, for a directory
    or glob of partitions) against the champion's signature.

    Raises:
        SchemaError: naming the file, each missing column and each changed kind, and the fix.
    """
    where = f"(champion: {champion.name} version {champion.version})"
    for name, columns in _schemas(config.source):
        kinds = {c: _SIGNATURE_KINDS.get(dtype_kind(t), dtype_kind(t)) for c, t in columns.items()}
        check_kinds(champion.columns, kinds, where=f"{name} {where}")


def _schemas(source: Any) -> list[tuple[str, dict[str, str]]]:
    """(name, column -> dtype) of each file of a file source, else of the whole source."""
    from flows.sources import list_files

    if not isinstance(source, str) or (source.startswith(("sklearn:", "demo:")) and not os.path.exists(source)):
        return [(f"source {describe(source)!r}", source_columns(source))]
    return [(f"file {path!r} of source {source!r}", source_columns(path)) for path in list_files(source)]


def warm_start_from(champion_dir: str, model_dir: str) -> int:
    """Copy the champion's checkpoints (and the estimator's saved state beside them) into the new
    `model_dir`, so the challenger's fit continues from them; returns their global step.

    The champion's own files are only read. Its run record, spool, exports and data are not copied
    (the challenger records into its own run).

    Raises:
        ValueError: the champion's model_dir is missing or holds no checkpoint.
    """
    from flows.training import checkpoint_step

    step = checkpoint_step(champion_dir)
    if not step:
        raise ValueError(
            f"retrain.warm_start: the champion's model_dir {champion_dir!r} holds no checkpoint (moved or "
            "deleted?); set retrain.warm_start: false to train the challenger from scratch"
        )
    skipped = ("data", "mlflow_run.json", "export", "best")
    os.makedirs(model_dir, exist_ok=True)
    for name in os.listdir(champion_dir):
        if name in skipped or name.startswith(("mlflow_spool", "events.out", "eval", ".")):
            continue
        source, target = os.path.join(champion_dir, name), os.path.join(model_dir, name)
        if os.path.isdir(source):
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            shutil.copy2(source, target)
    return step


def drift_against_champion(champion: Champion | None, dataset: Dataset, features: list[str]) -> DriftReport | None:
    """Per-feature drift of the new rows (`dataset`) against the champion's training rows; None
    (with a warning) when there is no champion or its training rows are gone."""
    if champion is None or not champion.train_data or not os.path.exists(champion.train_data):
        logger.warning("No drift report: the champion's training rows are not available (%s).", champion)
        return None
    reference = read_part(champion.train_data)
    shared = [c for c in features if c in reference.columns]
    current = read_source(dataset.path, columns=shared)
    return drift_report(reference[shared], current[shared])


def log_drift(run: Any, report: DriftReport) -> None:
    """Log a drift report to `run`: the artifacts `report.txt` (its Markdown table) and `report.json`
    in the folder `drift`, and the metric `drift_psi_max`."""
    from flows.tracking.store import bounded_requests, get_client

    client = get_client(run.tracking_uri)
    with bounded_requests(timeout=60):
        client.log_text(run.run_id, report.to_markdown(), f"{DRIFT_FOLDER}/report.txt")
        client.log_dict(run.run_id, {"features": report.to_records()}, f"{DRIFT_FOLDER}/report.json")
        if len(report.table):
            client.log_metric(run.run_id, "drift_psi_max", float(report.table["psi"].max()))


def record_decision(run: Any, decision: Decision, registered: Any, fingerprint: str) -> None:
    """Record a champion/challenger decision: its tags (`skflow.promotion.*`) on the challenger's run
    and model version, both scores as run metrics (`retrain.champion_<metric>`,
    `retrain.challenger_<metric>`); move `champion` to the challenger when it won; remember the
    data's fingerprint on the registered model (the next retrain's "no new data" test)."""
    from flows.tracking.registry import CHAMPION, set_alias, set_registered_model_tag, set_version_tags
    from flows.tracking.store import bounded_requests, get_client

    tags = decision.as_tags()
    metrics = {f"retrain.challenger_{decision.metric}": decision.challenger_score}
    if decision.champion_score is not None:
        metrics[f"retrain.champion_{decision.metric}"] = decision.champion_score
    from mlflow.entities import Metric, RunTag

    from flows.tracking.logger import now_ms

    stamp = now_ms()
    with bounded_requests():
        get_client(run.tracking_uri).log_batch(
            run.run_id,
            metrics=[Metric(k, v, stamp, 0) for k, v in metrics.items()],
            tags=[RunTag(k, v) for k, v in tags.items()],
        )
    set_version_tags(registered.name, registered.version, tags, tracking_uri=run.tracking_uri)
    if decision.promote:
        set_alias(registered.name, CHAMPION, registered.version, tracking_uri=run.tracking_uri)
    set_registered_model_tag(registered.name, FINGERPRINT_TAG, fingerprint, tracking_uri=run.tracking_uri)
