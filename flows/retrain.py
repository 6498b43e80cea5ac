"""`retrain_flow(config)`: retrain on the newest data and let the better model serve (champion/challenger).

Every `train_flow` registers its model as a version of the pipeline's registered model
(`PipelineConfig.registered_model_name`); the first version is the `champion`. A retrain:

1. fingerprints the newest data (every partition of the source so far, or a window on a date
   column: `retrain.window_days` back from the newest date, or rows `retrain.since` a date) and,
   when it equals the last retrain's (or the champion's training data's), says so and trains
   nothing: no MLflow run, no model_dir;
2. checks the source's columns and their kinds against the champion's saved signature, before any
   run or model_dir exists: a missing or retyped column fails the retrain naming it
   (`flows.drift.SchemaError`);
3. opens one MLflow run (tagged `skflow.retrain`), ingests, validates and splits like `train_flow`,
   and reports per-feature drift (PSI and KS, the champion's training rows against the new rows)
   as a run artifact (`drift/`) and a Prefect table;
4. trains the challenger, from scratch or (`retrain.warm_start`) from the champion's checkpoint,
   evaluates, logs and registers it (alias `challenger`; `champion` when there is none yet);
5. scores champion and challenger with the same code (`flows.promotion.score_predictions`) on
   the same newest held-out rows (the champion from its logged model; the challenger from the
   estimator in memory, the weights it just logged), and promotes the challenger (moves `champion`) only when it wins
   on `PipelineConfig.retrain_metric` by at least `retrain.min_delta` (`flows.promotion.decide`).
   The decision, both scores and the reason go on the challenger's run (tags
   `skflow.promotion.*`, metrics `retrain.champion_<metric>` / `retrain.challenger_<metric>`), on
   its model version (the same tags) and into a Prefect markdown artifact.

`batch_predict_flow("models:/NAME@champion", ...)` resolves the alias when it runs, so it always
uses the current champion.

Example::

    from flows import load_config
    from flows.retrain import retrain_flow
    result = retrain_flow(load_config("configs/churn.yaml"))
    print(result.summary)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.config import PipelineConfig, load_config
from flows.data import Dataset, read_part
from flows.drift import DriftReport, check_kinds, drift_report, dtype_kind
from flows.promotion import Decision, decide
from flows.sources import check_columns, describe, read_source, source_columns, source_fingerprint

__all__ = [
    "Champion",
    "RetrainResult",
    "check_source_schema",
    "data_fingerprint",
    "drift_against_champion",
    "find_champion",
    "seen_fingerprints",
    "log_drift",
    "record_decision",
    "retrain_flow",
    "select_rows",
    "warm_start_from",
]

logger = logging.getLogger("skflow")

FINGERPRINT_TAG = "skflow.retrain.fingerprint"
_IN_PROCESS = {"cache_policy": NO_CACHE, "persist_result": False}
_SIGNATURE_KINDS = {"boolean": "numeric", "bool": "numeric"}  # a model takes booleans as numbers


# ---------------------------------------------------------------------------------------- library
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
    """Log a drift report to `run`: `drift/drift.md`, `drift/drift.json` and the metric `drift_psi_max`."""
    from flows.tracking.store import bounded_requests, get_client

    client = get_client(run.tracking_uri)
    with bounded_requests(timeout=60):
        client.log_text(run.run_id, report.to_markdown(), "drift/drift.md")
        client.log_dict(run.run_id, {"features": report.to_records()}, "drift/drift.json")
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


# ---------------------------------------------------------------------------------------- tasks
@task(name="fingerprint", retries=2, retry_delay_seconds=[1, 2], **_IN_PROCESS)
def fingerprint_task(config: PipelineConfig) -> str:
    """The fingerprint of the data a retrain would train on (`data_fingerprint`)."""
    return data_fingerprint(config)


@task(name="check-schema", **_IN_PROCESS)
def check_schema_task(config: PipelineConfig, champion: Champion) -> None:
    """The source's columns and kinds against the champion's signature (`check_source_schema`)."""
    check_source_schema(config, champion)


# ---------------------------------------------------------------------------------------- flow
@dataclass
class RetrainResult:
    """What a `retrain_flow` run did.

    Attributes:
        registered_model: the registered model. skipped: no new data, nothing trained.
        reason: why (the decision's reason, or why nothing was trained).
        promoted: the challenger became champion. metric, champion_score, challenger_score: the
            comparison (on the same held-out rows).
        champion_version: the champion after the retrain. challenger_version: the version trained.
        run_id: the challenger's MLflow run (None when skipped). tracking_uri: the store.
        fingerprint: the data's fingerprint. drifted: features with a major shift.
        metrics: the challenger's held-out `eval_*` metrics. model_dir: its checkpoints.
        flow_run_id: the Prefect flow run. seconds: wall time.
    """

    registered_model: str
    skipped: bool
    reason: str
    promoted: bool = False
    metric: str | None = None
    champion_score: float | None = None
    challenger_score: float | None = None
    champion_version: str | None = None
    challenger_version: str | None = None
    run_id: str | None = None
    tracking_uri: str | None = None
    fingerprint: str = ""
    drifted: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    model_dir: str | None = None
    flow_run_id: str | None = None
    seconds: float = 0.0

    @property
    def summary(self) -> str:
        """One line: what was decided and why."""
        if self.skipped:
            return f"{self.registered_model}: nothing trained. {self.reason}"
        verdict = (
            f"promoted version {self.challenger_version} to champion"
            if self.promoted
            else f"kept champion version {self.champion_version} (challenger: version {self.challenger_version})"
        )
        return f"{self.registered_model}: {verdict}. {self.reason}"


def _retrain_run_name() -> str:
    from prefect.runtime import flow_run

    from flows.lineage import artifact_key

    config = flow_run.parameters.get("config")
    experiment = config.experiment if isinstance(config, PipelineConfig) else (config or {}).get("experiment", "model")
    return f"retrain-{artifact_key(str(experiment))}-{datetime.now():%Y%m%d-%H%M%S}"


@flow(name="retrain", flow_run_name=_retrain_run_name, persist_result=False)
def retrain_flow(config: PipelineConfig) -> RetrainResult:
    """Retrain on the newest data; promote the challenger only when it beats the champion on the same
    held-out rows by at least `retrain.min_delta` (see the module's docstring for the steps).

    Args:
        config: the pipeline (`flows.config.PipelineConfig`; a dict is validated into one). Its
            `retrain` section says which rows are new, warm start, the metric and min_delta.

    Returns:
        a `RetrainResult` (`.summary` says what was decided and why).

    Raises:
        ConfigError: the config cannot retrain (no logged model, no metric to judge on, columns
            the source lacks), before anything is created.
        SchemaError: the source's columns or kinds differ from the champion's, before any run.
        Exception: whatever failed a step; the MLflow run is then FAILED with the error recorded.
    """
    from prefect.artifacts import create_markdown_artifact
    from prefect.runtime import flow_run

    from flows.lineage import artifact_key, finish_run, start_run
    from flows.run_logs import skflow_logs_in_prefect
    from flows.tracking.store import resolve_store

    started = time.perf_counter()
    from flows.server import use_server_environment  # only its cheap environment module

    use_server_environment()  # the credentials of a `skflow server --auth` the URLs point at
    config = config if isinstance(config, PipelineConfig) else load_config(config)
    metric = config.check_retrainable()
    name = config.registered_model_name
    tracking_uri = resolve_store(config.tracking.uri).tracking_uri
    flow_run_id = str(flow_run.id) if flow_run.id else None
    key = artifact_key(f"{name}-retrain")
    champion = find_champion(name, tracking_uri)
    fingerprint = fingerprint_task(config)
    if fingerprint in seen_fingerprints(name, champion, tracking_uri):
        reason = (
            f"No new data since the last retrain: source {describe(config.source)!r} has the same fingerprint "
            f"({fingerprint[:12]}) as the data champion version "
            f"{champion.version if champion else '?'} or the last retrain used."
        )
        logger.info(reason)
        create_markdown_artifact(f"# Retrain of {name}: skipped\n\n{reason}", key=key, description=reason)
        return RetrainResult(
            registered_model=name,
            skipped=True,
            reason=reason,
            champion_version=champion.version if champion else None,
            tracking_uri=tracking_uri,
            fingerprint=fingerprint,
            flow_run_id=flow_run_id,
            seconds=time.perf_counter() - started,
        )
    if champion is not None:
        check_schema_task(config, champion)  # before any run or model_dir exists
    check_columns(config)
    # Imported here: a retrain with nothing new never loads TensorFlow (a scheduled run stays cheap).
    from flows import tasks
    from flows.pipelines import _slug

    with skflow_logs_in_prefect():
        tags = {"skflow.retrain": "true", "skflow.registered_model": name}
        if champion is not None:
            tags["skflow.retrain.champion_version"] = champion.version
        run = start_run(config.experiment, tracking_uri, tags=tags)
        model_dir = os.path.abspath(os.path.join(config.model_root, _slug(config.experiment), run.run_id))
        data_dir = os.path.join(model_dir, "data")
        retries = config.retries
        backoff = [retries.delay_seconds * 2**i for i in range(max(retries.ingest, 1))]
        ingest = tasks.ingest.with_options(retries=retries.ingest, retry_delay_seconds=backoff)
        fit = tasks.fit.with_options(retries=retries.fit, retry_delay_seconds=retries.delay_seconds)
        try:
            dataset = ingest(config.source, data_dir, config.fit.memory_budget_mb)
            dataset = tasks.select_window(dataset, config, data_dir)
            features = tasks.validate(dataset, config)
            splits = tasks.split(dataset, config, features, data_dir)
            drift = tasks.drift(run, champion, dataset, features)
            data = tasks.build_feeders(splits, config)
            start_step = 0
            if config.retrain.warm_start and champion is not None:
                if not champion.model_dir:
                    raise ValueError(
                        f"retrain.warm_start: champion version {champion.version} records no model_dir (tag "
                        "skflow.model_dir); set retrain.warm_start: false"
                    )
                start_step = warm_start_from(champion.model_dir, model_dir)
            fitted = fit(config, data, run, model_dir, dataset.fingerprint, dataset.source, start_step)
            metrics = tasks.evaluate(run, fitted, data, config)
            model_uri = tasks.log_model(run, fitted, data, config)
            registered = tasks.register(run, model_uri, config, fitted, splits, dataset.fingerprint)
            champion_score, challenger_score = tasks.compare(champion, fitted, model_uri, splits, config, tracking_uri)
            decision = decide(metric, champion_score, challenger_score, config.retrain.min_delta)
            tasks.promote(run, decision, registered, fingerprint)
        except BaseException as exc:
            try:
                status = f"ended {finish_run(run, exc)}"
            except Exception as unrecorded:  # the store is away: never mask the step's own error
                status = f"could not be ended ({type(unrecorded).__name__}: {unrecorded})"
            exc.add_note(f"MLflow run {run.run_id} ({config.experiment}) {status}; checkpoints in {model_dir}")
            raise
        finish_run(run)
    champion_after = registered.version if decision.promote else champion.version  # champion is None -> promote
    drifted = drift.drifted if drift is not None else []
    lines = [
        f"# Retrain of {name}: {'promoted' if decision.promote else 'kept the champion'}",
        "",
        decision.to_markdown(),
        "",
        f"- **challenger**: version {registered.version}, MLflow run `{run.run_id}`, step {fitted.step}",
        f"- **champion now**: version {champion_after}",
        f"- **data**: {dataset.source} ({dataset.rows} rows, fingerprint {fingerprint[:12]}); "
        f"{splits.eval_rows} held-out rows scored both models",
        f"- **drift**: {', '.join(drifted) or 'no major shift'}" if drift is not None else "- **drift**: no reference",
    ]
    create_markdown_artifact("\n".join(lines), key=key, description=decision.reason)
    return RetrainResult(
        registered_model=name,
        skipped=False,
        reason=decision.reason,
        promoted=decision.promote,
        metric=metric,
        champion_score=decision.champion_score,
        challenger_score=decision.challenger_score,
        champion_version=champion_after,
        challenger_version=registered.version,
        run_id=run.run_id,
        tracking_uri=tracking_uri,
        fingerprint=fingerprint,
        drifted=drifted,
        metrics=dict(metrics),
        model_dir=model_dir,
        flow_run_id=flow_run_id,
        seconds=time.perf_counter() - started,
    )
