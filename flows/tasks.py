"""The pipeline's Prefect tasks: a few lines each around library code (`flows.data`,
`flows.training`, `flows.evaluation`, `flows.prediction`, and for retraining `flows.champion`
and `flows.promotion`).

Cache and result settings, chosen on purpose: every task runs with `cache_policy=NO_CACHE` and
`persist_result=False`.

- Prefect's default cache key hashes a task's inputs: built `tf.data` feeders cannot be hashed (an
  ERROR per attempt) and estimators should not be; and a cache hit would hand one flow run the
  files of another run's directory, while each run must record its own data and model.
- Persisting results would pickle DataFrames, feeders and estimators into Prefect's result
  storage; they live in this process only. What outlives a task is on disk where the library
  wrote it: the run's Parquet files, the model_dir's checkpoints, MLflow.

Retries go where they help: `ingest` (I/O: a file share, a database) with a doubling delay, and
`fit`, whose attempts resume from the checkpoints of the one before (`flows.training`); Prefect
hands a retried task the same arguments, so `fit` builds its estimator and monitors afresh from
the config every time and trains to an absolute step. `with_options` sets both from the config
when the flow starts.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from flows import champion as champions
from flows import data as data_steps
from flows import evaluation, prediction, training
from flows.champion import Champion
from flows.config import PipelineConfig, SqlSource
from flows.data import Dataset, Splits, read_part
from flows.drift import DriftReport
from flows.promotion import Decision, score_model
from flows.training import TrainingData

__all__ = [
    "Fitted",
    "build_feeders",
    "evaluate",
    "fit",
    "ingest",
    "log_model",
    "compare",
    "drift",
    "predict",
    "promote",
    "register",
    "select_window",
    "split",
    "validate",
]

logger = logging.getLogger("skflow")

_IN_PROCESS = {"cache_policy": NO_CACHE, "persist_result": False}


@dataclass
class Fitted:
    """A trained estimator (in this process only), the global step it reached and its model_dir."""

    estimator: Any
    step: int
    model_dir: str


@task(name="ingest", retries=2, retry_delay_seconds=[1, 2], **_IN_PROCESS)
def ingest(source: str | SqlSource, directory: str, memory_budget_mb: float | None = None) -> Dataset:
    """Read the source once into `directory` (or leave files over the budget where they are) and fingerprint it."""
    return data_steps.ingest(source, directory, memory_budget_mb)


@task(name="validate", **_IN_PROCESS)
def validate(dataset: Dataset, config: PipelineConfig) -> list[str]:
    """Check the target and feature columns and their types; returns the feature columns."""
    return data_steps.validate(dataset, config)


@task(name="split", **_IN_PROCESS)
def split(dataset: Dataset, config: PipelineConfig, features: list[str], directory: str) -> Splits:
    """Training and evaluation rows as Parquet files in `directory`."""
    return data_steps.split(dataset, config, features, directory)


@task(name="build-feeders", **_IN_PROCESS)
def build_feeders(splits: Splits, config: PipelineConfig) -> TrainingData:
    """The rows as the estimator takes them: DataFrames, or FileDataFeeders for streamed files."""
    return training.load_training_data(splits, config)


@task(name="fit", retries=1, retry_delay_seconds=0, **_IN_PROCESS)
def fit(
    config: PipelineConfig,
    data: TrainingData,
    run: Any,
    model_dir: str,
    fingerprint: str,
    source: str,
    start_step: int = 0,
) -> Fitted:
    """Train to the configured global step in `model_dir`, resuming from its checkpoints, recording
    into `run`; `start_step`: the step of checkpoints a warm start copied there (the fit trains the
    configured steps beyond it)."""
    from prefect.runtime import task_run

    if task_run.run_count > 1:
        logger.info("Attempt %d of the fit: resuming from the checkpoints in %s.", task_run.run_count, model_dir)
    target = start_step + training.total_steps(config.fit, data.train_rows)
    estimator = training.build_estimator(config, model_dir, target)
    monitors = training.build_monitors(config, data, run, fingerprint, source)
    try:
        step = training.train_to_step(estimator, data, target, monitors, config.fit.batch_size, config.fit.impute)
    finally:
        monitors[-1].close(timeout=30)  # the MlflowMonitor: last metrics, checkpoints and loss curve delivered
    return Fitted(estimator, step, model_dir)


@task(name="evaluate", **_IN_PROCESS)
def evaluate(run: Any, fitted: Fitted, data: TrainingData, config: PipelineConfig) -> dict[str, float]:
    """Held-out metrics, logged to MLflow at the final step and shown as a Prefect table artifact."""
    from prefect.artifacts import create_table_artifact

    from flows.lineage import artifact_key

    values = evaluation.evaluate_model(run, fitted.estimator, data, config, fitted.step)
    create_table_artifact(
        [{"metric": k, "value": round(v, 6)} for k, v in sorted(values.items())],
        key=artifact_key(f"{config.experiment}-evaluation"),
        description=f"Held-out metrics of MLflow run {run.run_id} at step {fitted.step} ({data.eval_rows} rows)",
    )
    return values


@task(name="log-model", retries=1, retry_delay_seconds=2, **_IN_PROCESS)
def log_model(run: Any, fitted: Fitted, data: TrainingData, config: PipelineConfig) -> str | None:
    """Log the model as the run's pyfunc model; returns its `models:/<id>` URI."""
    return evaluation.log_trained_model(run, fitted.estimator, data, config, fitted.step)


@task(name="register", retries=1, retry_delay_seconds=2, **_IN_PROCESS)
def register(
    run: Any, model_uri: str, config: PipelineConfig, fitted: Fitted, splits: Splits, fingerprint: str
) -> evaluation.RegisteredVersion:
    """Register the logged model as a new version of the pipeline's registered model, aliased
    `champion` (the first) or `challenger`."""
    return evaluation.register_trained_model(run, model_uri, config, fitted.model_dir, splits.train, fingerprint)


@task(name="predict", **_IN_PROCESS)
def predict(
    model_uri: str | None,
    source: str | SqlSource,
    output: str,
    id_column: str | None = None,
    fitted: Fitted | None = None,
    features: list[str] | None = None,
    tracking_uri: str | None = None,
) -> prediction.PredictionResult:
    """Predict every row of `source` into `output` with the logged model (or, when none could be
    logged, the estimator in memory), streamed, the id column kept."""
    if model_uri is not None:
        model = prediction.load_logged_model(model_uri, tracking_uri)
        predictor, columns = prediction.model_predictor(model)
    elif fitted is not None:
        predictor, columns = prediction.estimator_predictor(fitted.estimator, features or [])
    else:
        raise ValueError("predict needs a model URI or a fitted estimator")
    return prediction.predict_to_file(predictor, source, output, columns=columns, id_column=id_column)


# ---------------------------------------------------------------------------------------- retraining
@task(name="select-window", **_IN_PROCESS)
def select_window(dataset: Dataset, config: PipelineConfig, directory: str) -> Dataset:
    """The rows in the retrain window (`flows.champion.select_rows`)."""
    return champions.select_rows(dataset, config, directory)


@task(name="drift", **_IN_PROCESS)
def drift(run: Any, champion: Champion | None, dataset: Dataset, features: list[str]) -> DriftReport | None:
    """Drift of the new rows against the champion's training rows, logged to `run` and shown as a
    Prefect table (`flows.champion.drift_against_champion`); None without a reference."""
    from prefect.artifacts import create_table_artifact

    from flows.lineage import artifact_key

    report = champions.drift_against_champion(champion, dataset, features)
    if report is None:
        return None
    champions.log_drift(run, report)
    create_table_artifact(
        report.to_records(),
        key=artifact_key(f"{champion.name}-drift"),
        description=f"Drift of {report.current_rows} new rows against champion version {champion.version}'s "
        f"{report.reference_rows} training rows (PSI > 0.25: major)",
    )
    return report


@task(name="compare", **_IN_PROCESS)
def compare(
    champion: Champion | None,
    challenger: Fitted,
    challenger_uri: str,
    splits: Splits,
    config: PipelineConfig,
    tracking_uri: str,
) -> tuple[float | None, float]:
    """Score champion and challenger with the same scoring code on the same held-out rows
    (`splits.eval`): (the champion's score, None without one; the challenger's). The champion is its
    logged model; the challenger the estimator in memory, which holds the weights just logged (its
    logged model with `fit.keep_best`, whose best checkpoint is not the latest)."""
    rows = read_part(splits.eval)
    metric = config.retrain_metric
    if config.fit.keep_best:
        ours = score_model(challenger_uri, rows, config.target, metric, tracking_uri)
    else:
        ours = score_model(None, rows, config.target, metric, estimator=challenger.estimator, features=splits.features)
    theirs = score_model(champion.model_uri, rows, config.target, metric, tracking_uri) if champion else None
    return theirs, ours


@task(name="promote", retries=1, retry_delay_seconds=2, **_IN_PROCESS)
def promote(run: Any, decision: Decision, registered: evaluation.RegisteredVersion, fingerprint: str) -> None:
    """Record the decision and move `champion` when the challenger won (`flows.champion.record_decision`)."""
    champions.record_decision(run, decision, registered, fingerprint)


def run_dirs(config: PipelineConfig, run_id: str) -> tuple[str, str]:
    """A training run's model_dir, `<model_root>/<experiment, slugged>/<MLflow run id>` (a retried fit
    finds its checkpoints there), and the data folder inside it."""
    model_dir = os.path.abspath(os.path.join(config.model_root, slug(config.experiment), run_id))
    return model_dir, os.path.join(model_dir, "data")


def slug(text: str) -> str:
    """`text` in characters a folder, a run name and a URL take."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "run"


def retrying(config: PipelineConfig) -> tuple[Any, Any]:
    """The ingest and fit tasks with the config's retries: ingest backs off (delay doubling each try),
    fit retries at a fixed delay (a retried fit resumes from its checkpoints)."""
    retries = config.retries
    backoff = [retries.delay_seconds * 2**i for i in range(max(retries.ingest, 1))]
    return (
        ingest.with_options(retries=retries.ingest, retry_delay_seconds=backoff),
        fit.with_options(retries=retries.fit, retry_delay_seconds=retries.delay_seconds),
    )
