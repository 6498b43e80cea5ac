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

import logging
import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.champion import (
    Champion,
    check_source_schema,
    data_fingerprint,
    find_champion,
    seen_fingerprints,
    warm_start_from,
)
from flows.config import PipelineConfig, load_config
from flows.promotion import decide
from flows.sources import check_columns, describe

__all__ = ["RetrainResult", "load_retrain_config", "retrain_flow"]

logger = logging.getLogger("skflow")

_IN_PROCESS = {"cache_policy": NO_CACHE, "persist_result": False}


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

    def report(self) -> str:
        """What `skflow retrain` prints: the summary, and for a retrain that trained, both scores,
        the challenger's MLflow run and the drifted features."""
        if self.skipped:
            return self.summary
        champion = "-" if self.champion_score is None else f"{self.champion_score:.6g}"
        return (
            f"{self.summary}\n{self.metric}: champion {champion}, challenger {self.challenger_score:.6g} "
            f"(MLflow run {self.run_id}); drifted features: {', '.join(self.drifted) or 'none'}"
        )


def load_retrain_config(
    source: str | os.PathLike | dict[str, Any], overrides: list[str] | None = None
) -> PipelineConfig:
    """`load_config`, then what a retrain needs of the config (`PipelineConfig.check_retrainable`)
    and the source's columns (`check_columns`): everything checked before a retrain starts.

    Raises:
        ConfigError: naming each problem and the field that fixes it.
    """
    config = load_config(source, overrides)
    config.check_retrainable()
    check_columns(config)
    return config


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

    from flows.lineage import artifact_key, fail_run, finish_run, start_run
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

    with skflow_logs_in_prefect():
        tags = {"skflow.retrain": "true", "skflow.registered_model": name}
        if champion is not None:
            tags["skflow.retrain.champion_version"] = champion.version
        run = start_run(config.experiment, tracking_uri, tags=tags)
        model_dir, data_dir = tasks.run_dirs(config, run.run_id)  # train_flow's layout
        ingest, fit = tasks.retrying(config)
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
            fail_run(run, exc, config.experiment, model_dir)
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
