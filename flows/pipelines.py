"""The flows: `train_flow(config)` and `batch_predict_flow(model_uri, source, output)`. Control flow only.

`train_flow`: check the config against the source's columns (a `ConfigError` before anything
exists) -> one MLflow run for this flow run, tagged with it both ways -> ingest -> validate ->
split -> build_feeders -> fit (retried attempts resume) -> evaluate -> log the model -> register it
as a new version of the registered model (`tracking.registered_model`, default the experiment's
name; its first version becomes `champion`, later ones `challenger`) -> predict
(when the config has a `predict` section) -> the run ends FINISHED, and a markdown artifact links
it. A failing step fails the flow run and ends the MLflow run FAILED with the error recorded;
KeyboardInterrupt ends it KILLED. The model_dir (`<model_root>/<experiment>/<run id>`) keeps its
checkpoints either way.

Example::

    from flows import load_config, train_flow
    result = train_flow(load_config("configs/digits.yaml"))
    print(result.run_id, result.metrics)
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import datetime

from prefect import flow

from flows import tasks
from flows.config import PipelineConfig, SqlSource, load_config
from flows.sources import check_columns, describe

__all__ = ["PredictResult", "TrainResult", "batch_predict_flow", "train_flow"]


@dataclass
class TrainResult:
    """What a `train_flow` run produced.

    Attributes:
        run_id: the MLflow run. experiment: its experiment. tracking_uri: its store.
        status: the MLflow run's status ("FINISHED"). metrics: held-out metrics (`eval_*`).
        model_uri: the logged model (`models:/<id>`), None when it could not be logged.
        registered_model, model_version, model_alias: its registered model, version and alias
            ("champion" for the first version, else "challenger"); None when no model was logged,
            or for a nested run (a sweep's trial: its parent registers the best).
        model_dir: checkpoints. global_step: the step training reached.
        predictions: the predictions file (when the config has `predict`). flow_run_id: the Prefect run.
        seconds: wall time.
    """

    run_id: str
    experiment: str
    tracking_uri: str
    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    model_uri: str | None = None
    model_dir: str = ""
    global_step: int = 0
    predictions: str | None = None
    flow_run_id: str | None = None
    seconds: float = 0.0
    registered_model: str | None = None
    model_version: str | None = None
    model_alias: str | None = None


@dataclass
class PredictResult:
    """What a `batch_predict_flow` run wrote: output path, rows, seconds, columns."""

    output: str
    rows: int
    seconds: float
    columns: list[str]


def _train_run_name() -> str:
    from prefect.runtime import flow_run

    config = flow_run.parameters.get("config")
    experiment = config.experiment if isinstance(config, PipelineConfig) else (config or {}).get("experiment", "train")
    return f"{tasks.slug(str(experiment))}-{datetime.now():%Y%m%d-%H%M%S}"


@flow(name="train", flow_run_name=_train_run_name, persist_result=False)
def train_flow(config: PipelineConfig, run_tags: dict[str, str] | None = None) -> TrainResult:
    """Train, evaluate, log and (optionally) batch-predict as `config` says, as one MLflow run.

    Args:
        config: the pipeline (`flows.config.PipelineConfig`; a dict is validated into one).
        run_tags: extra tags of the MLflow run, set when it is created (a sweep's trial gets
            `mlflow.parentRunId`). default=None.

    Returns:
        a `TrainResult`.

    Raises:
        ConfigError: the config names columns its source lacks (before any run or model_dir exists).
        Exception: whatever failed a step; the MLflow run is then FAILED with the error recorded.
    """
    from prefect.artifacts import create_markdown_artifact
    from prefect.runtime import flow_run

    from flows.lineage import artifact_key, fail_run, finish_run, run_summary_markdown, start_run
    from flows.run_logs import skflow_logs_in_prefect

    started = time.perf_counter()
    from flows.server import use_server_environment  # only its cheap environment module

    use_server_environment()  # the credentials of a `skflow server --auth` the URLs point at
    config = config if isinstance(config, PipelineConfig) else load_config(config)
    check_columns(config)
    with skflow_logs_in_prefect():
        run = start_run(config.experiment, config.tracking.uri, tags=run_tags)
        model_dir, data_dir = tasks.run_dirs(config, run.run_id)
        ingest, fit = tasks.retrying(config)
        try:
            dataset = ingest(config.source, data_dir, config.fit.memory_budget_mb)
            features = tasks.validate(dataset, config)
            splits = tasks.split(dataset, config, features, data_dir)
            data = tasks.build_feeders(splits, config)
            fitted = fit(config, data, run, model_dir, dataset.fingerprint, dataset.source)
            metrics = tasks.evaluate(run, fitted, data, config)
            model_uri = tasks.log_model(run, fitted, data, config) if config.tracking.log_model else None
            # A nested run (a sweep's trial, tagged mlflow.parentRunId) is not registered: its parent
            # registers the best trial.
            nested = bool((run_tags or {}).get("mlflow.parentRunId"))
            registered = (
                tasks.register(run, model_uri, config, fitted, splits, dataset.fingerprint)
                if model_uri and not nested
                else None
            )
            predictions = None
            if config.predict is not None:
                spec = config.predict
                predictions = tasks.predict(
                    model_uri,
                    spec.source,
                    spec.output,
                    id_column=spec.id_column or config.id_column,
                    fitted=fitted,
                    features=features,
                    tracking_uri=run.tracking_uri,
                )
        except BaseException as exc:
            fail_run(run, exc, config.experiment, model_dir)
            raise
        status = finish_run(run)
    details = {
        "data": f"{dataset.source} ({dataset.rows} rows, fingerprint {dataset.fingerprint[:12]})",
        "split": f"{splits.train_rows} training / {splits.eval_rows} evaluation rows ({config.split.kind})",
        "global step": fitted.step,
        "model_dir": model_dir,
        "model": model_uri or "not logged",
    }
    if registered is not None:
        details["registered"] = f"{registered.name} version {registered.version} (@{registered.alias})"
    if predictions is not None:
        details["predictions"] = f"{predictions.output} ({predictions.rows} rows)"
    create_markdown_artifact(
        run_summary_markdown(run, config.experiment, metrics, details),
        key=artifact_key(f"{config.experiment}-run"),
        description=f"MLflow run {run.run_id} of experiment {config.experiment}",
    )
    return TrainResult(
        run_id=run.run_id,
        experiment=config.experiment,
        tracking_uri=run.tracking_uri,
        status=status,
        metrics=dict(metrics),
        model_uri=model_uri,
        model_dir=model_dir,
        global_step=fitted.step,
        predictions=predictions.output if predictions is not None else None,
        flow_run_id=str(flow_run.id) if flow_run.id else None,
        seconds=time.perf_counter() - started,
        registered_model=registered.name if registered else None,
        model_version=registered.version if registered else None,
        model_alias=registered.alias if registered else None,
    )


def _predict_run_name() -> str:
    from prefect.runtime import flow_run

    output = os.path.basename(str(flow_run.parameters.get("output", "predictions")))
    return f"predict-{tasks.slug(output)}-{datetime.now():%Y%m%d-%H%M%S}"


@flow(name="batch-predict", flow_run_name=_predict_run_name, persist_result=False)
def batch_predict_flow(
    model_uri: str,
    source: str | SqlSource,
    output: str,
    id_column: str | None = None,
    tracking_uri: str | None = None,
) -> PredictResult:
    """Predict every row of `source` with a logged model, streamed into `output` (.parquet/.csv).

    Args:
        model_uri: `models:/NAME@ALIAS`, `models:/NAME/VERSION`, `models:/<model id>` or `runs:/<run id>/model`.
        source: the rows (a file, directory or glob of CSV/Parquet, a SQL source, ...).
        output: a .parquet or .csv path.
        id_column: a column of the source copied next to the predictions. default=None.
        tracking_uri: the store holding the model (default: MLFLOW_TRACKING_URI, else the embedded one).
    """
    from prefect.artifacts import create_markdown_artifact

    from flows.lineage import artifact_key
    from flows.server import use_server_environment  # only its cheap environment module

    use_server_environment()
    result = tasks.predict(model_uri, source, output, id_column=id_column, tracking_uri=tracking_uri)
    create_markdown_artifact(
        f"# Predictions\n\n{result.rows} rows of `{describe(source)}` predicted by `{model_uri}` into "
        f"`{result.output}` in {result.seconds:.1f} s.\n\nColumns: {', '.join(result.columns)}",
        key=artifact_key(f"predictions-{os.path.basename(output)}"),
    )
    return PredictResult(result.output, result.rows, result.seconds, result.columns)
