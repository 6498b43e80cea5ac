"""Hyper-parameter sweeps: trials of one pipeline fanned out on Dask, one MLflow parent run over them.

`sweep_flow(config, trials)` is a Prefect flow whose task runner is prefect-dask's `DaskTaskRunner`:
a local cluster of `workers` worker processes (one TensorFlow per process, each imports it once:
9-12 s), or an existing Dask scheduler at `address` (workers on other machines must see the same
data paths, model_root and tracking store). Each trial is a task that runs `train_flow` (the same
ingest -> split -> fit -> evaluate -> log model path as `skflow run`) as a nested flow run, with
its own MLflow run: a child of the sweep's parent run (tag `mlflow.parentRunId`), named after the
values it tries (`trial-2 learning_rate=0.1 batch_size=32`).

A trial that fails is recorded (its MLflow run FAILED with the error in `skflow.error`, its task
run Failed in Prefect) and the sweep carries on. When the trials are done the parent run gets the
space (params `sweep.space.<field>`), the best trial (tags `skflow.sweep.best_*`, metric
`best_<metric>`) and a results table (as JSON and as a markdown summary); the best trial's
model is registered as a new version with the alias `challenger` (`flows.tracking.registry`).
The parent ends FINISHED when at least one trial finished, else FAILED.

`workers=0` runs the trials one after another in this process (no Dask), the baseline the
benchmark compares with.

Example::

    from flows.sweep import prepare_sweep, sweep_flow
    plan = prepare_sweep("configs/digits.yaml", grid=["estimator.params.learning_rate=0.001,0.01"])
    result = sweep_flow(plan.config, plan.trials, workers=2)
    print(result.best.name, result.best.metric)
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.config import PipelineConfig
from flows.sweep_space import SweepPlan, prepare_sweep, yaml_text

__all__ = ["SweepPlan", "SweepResult", "TrialOutcome", "prepare_sweep", "print_sweep", "results_table", "sweep_flow"]

logger = logging.getLogger("skflow")

CHALLENGER = "challenger"


@dataclass
class TrialOutcome:
    """What one trial did.

    Attributes:
        number, name, values: the trial (see `flows.sweep_space.Trial`).
        status: its MLflow run's status ("FINISHED", "FAILED"); "FAILED" with run_id None when no
            run was created. metric: the sweep's metric, None when not logged.
        run_id, model_uri: its MLflow run and logged model. error: "Type: message" of a failure.
        seconds: the trial's wall time (finished trials).
    """

    number: int
    name: str
    values: dict[str, Any]
    status: str
    metric: float | None = None
    run_id: str | None = None
    model_uri: str | None = None
    error: str | None = None
    seconds: float = 0.0


@dataclass
class SweepResult:
    """What a sweep produced.

    Attributes:
        parent_run_id, experiment, experiment_id, tracking_uri: the MLflow parent run and where it is.
        metric, goal: what ranked the trials ("eval_accuracy", "max").
        outcomes: every trial, best first (failed and unscored last).
        best: the best finished trial, or None when every trial failed.
        registered: (model name, version) of the best trial's model with alias `challenger`, or None.
        seconds: wall time. status: the parent run's status.
    """

    parent_run_id: str
    experiment: str
    experiment_id: str
    tracking_uri: str
    metric: str
    goal: str
    outcomes: list[TrialOutcome] = field(default_factory=list)
    best: TrialOutcome | None = None
    registered: tuple[str, str] | None = None
    seconds: float = 0.0
    status: str = "FINISHED"


def _settle_paths(config: PipelineConfig, tracking_uri: str) -> PipelineConfig:
    """The trial's config with its store and model_root absolute, the same in every worker."""
    tracking = config.tracking.model_copy(update={"uri": tracking_uri})
    return config.model_copy(update={"tracking": tracking, "model_root": os.path.abspath(config.model_root)})


@task(name="trial", cache_policy=NO_CACHE, persist_result=False)
def run_trial(config: PipelineConfig, name: str, tags: dict[str, str]) -> Any:
    """Train one trial as a nested `train_flow` run (in a Dask worker), its MLflow run tagged with `tags`."""
    from flows.foreground import without_heartbeats
    from flows.pipelines import train_flow

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with without_heartbeats():
        return train_flow.with_options(flow_run_name=name)(config, run_tags=tags)


def _task_runner(workers: int, address: str | None) -> Any:
    if address:
        from prefect_dask import DaskTaskRunner

        return DaskTaskRunner(address=address)
    if workers == 0:
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=1)
    from prefect_dask import DaskTaskRunner

    cluster = {
        "n_workers": workers,
        "processes": True,
        "threads_per_worker": 1,  # one trial per process: TensorFlow uses the process's cores
        "host": "127.0.0.1",
        "dashboard_address": None,
        "silence_logs": logging.ERROR,
    }
    return DaskTaskRunner(cluster_kwargs=cluster)


def _sweep_run_name() -> str:
    from prefect.runtime import flow_run

    config = flow_run.parameters.get("config")
    experiment = config.experiment if isinstance(config, PipelineConfig) else "pipeline"
    return f"sweep-{experiment}-{datetime.now():%Y%m%d-%H%M%S}"


def sweep_flow(plan: SweepPlan, workers: int = 2, address: str | None = None) -> SweepResult:
    """Run the plan's trials on Dask (`workers` local processes, or the scheduler at `address`).

    Args:
        plan: from `prepare_sweep`.
        workers: local Dask worker processes; 0 runs the trials one after another in this process. default=2.
        address: an existing Dask scheduler (`tcp://host:8786`) instead of a local cluster. default=None.

    Returns:
        a `SweepResult` (a sweep whose every trial failed returns too, with status "FAILED").

    Raises:
        ValueError: `workers` below 0.
        Exception: what failed outside the trials (the tracking store, the Dask cluster, the
            registry); the parent run then ends FAILED with the error recorded.
    """
    if workers < 0:
        raise ValueError(f"Invalid value for argument `workers`. Received: workers={workers}. Expected >= 0.")
    runner = _task_runner(workers, address)
    logging.getLogger("distributed").setLevel(logging.WARNING)  # the cluster's start and stop, step by step
    where = address or (f"{workers} local Dask worker processes" if workers else "this process, one after another")
    return _sweep.with_options(task_runner=runner)(plan.config, plan, where)


@flow(name="sweep", flow_run_name=_sweep_run_name, persist_result=False, validate_parameters=False)
def _sweep(config: PipelineConfig, plan: SweepPlan, where: str) -> SweepResult:
    from flows.lineage import finish_run, start_run
    from flows.server import use_server_environment
    from flows.tracking import resolve_store

    started = time.perf_counter()
    use_server_environment()
    tracking_uri = resolve_store(config.tracking.uri).tracking_uri
    parent = start_run(config.experiment, tracking_uri, tags={"skflow.sweep": "parent"})
    try:
        _log_plan(parent, plan, where)
        futures = []
        for trial, trial_config in plan.trials:
            tags = {"mlflow.parentRunId": parent.run_id, "skflow.sweep.trial": str(trial.number)}
            settled = _settle_paths(trial_config, tracking_uri)
            futures.append(run_trial.with_options(name=f"trial-{trial.number}").submit(settled, trial.name, tags))
        results = [f.result(raise_on_failure=False) for f in futures]
        outcomes, metric, goal = _outcomes(parent, plan, results)
        result = SweepResult(
            parent.run_id, config.experiment, parent.experiment_id, tracking_uri, metric, goal, outcomes
        )
        result.best = next((o for o in outcomes if o.status == "FINISHED" and o.metric is not None), None)
        if result.best is not None and plan.model_name:
            result.registered = _register(result.best, plan.model_name, tracking_uri)
        _log_results(parent, result)
    except BaseException as exc:
        try:
            finish_run(parent, exc)
        except Exception as unrecorded:  # never mask the sweep's own error
            exc.add_note(f"The sweep's MLflow run {parent.run_id} could not be ended: {unrecorded}")
        raise
    if not any(o.status == "FINISHED" for o in outcomes):
        result.status = finish_run(parent, RuntimeError(f"All {len(outcomes)} trials failed."))
    else:
        result.status = finish_run(parent)
    result.seconds = time.perf_counter() - started
    _prefect_summary(result)
    return result


def _log_plan(parent: Any, plan: SweepPlan, where: str) -> None:
    from mlflow.entities import Param

    from flows.tracking.store import bounded_requests, get_client

    params = {
        "sweep.mode": plan.mode,
        "sweep.trials": str(len(plan.trials)),
        "sweep.metric": plan.metric or "the trials' primary metric",
        "sweep.runner": where,
        **{f"sweep.space.{k}": v[:6000] for k, v in plan.space.describe().items()},
    }
    if plan.seed is not None:
        params["sweep.seed"] = str(plan.seed)
    with bounded_requests():
        get_client(parent.tracking_uri).log_batch(parent.run_id, params=[Param(k, v) for k, v in params.items()])


def _outcomes(parent: Any, plan: SweepPlan, results: list[Any]) -> tuple[list[TrialOutcome], str, str]:
    """Each trial's outcome, best first, and the metric and goal that ranked them.

    A failed trial's MLflow child run is found by its tags; one left RUNNING (its worker died) is
    ended FAILED, and one that failed before its run existed gets a FAILED run, so that every
    trial is in the tracking store with its error."""
    from mlflow.entities import Param

    from flows.lineage import finish_run
    from flows.tracking import TrackedRun, create_run
    from flows.tracking.store import bounded_requests, get_client

    client = get_client(parent.tracking_uri)
    with bounded_requests():
        children = client.search_runs(
            [parent.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent.run_id}'", max_results=5000
        )
    runs = {r.data.tags.get("skflow.sweep.trial"): r for r in children}
    metric, goal = plan.metric, plan.goal
    if metric is None:  # the primary metric the trials' runs recorded (flows.evaluation), the commonest
        tagged = [(t["skflow.primary_metric"], t.get("skflow.primary_metric_goal", "max")) for t in tags_of(children)]
        metric, goal = Counter(tagged).most_common(1)[0][0] if tagged else ("eval_loss", "min")
    outcomes = []
    for (trial, _), result in zip(plan.trials, results, strict=True):
        run = runs.get(str(trial.number))
        outcome = TrialOutcome(trial.number, trial.name, trial.values, "FAILED", run_id=run and run.info.run_id)
        if isinstance(result, BaseException):
            message = str(result).strip().splitlines()[0] if str(result).strip() else ""
            outcome.error = f"{type(result).__name__}: {message}"
            if run is None:
                tags = {"mlflow.parentRunId": parent.run_id, "skflow.sweep.trial": str(trial.number)}
                created = create_run(plan.config.experiment, trial.name, tags, parent.tracking_uri)
                outcome.run_id = created.run_id
                finish_run(created, result)
            elif run.info.status == "RUNNING":
                finish_run(TrackedRun(run.info.run_id, run.info.experiment_id, parent.tracking_uri), result)
        else:
            outcome.status, outcome.model_uri, outcome.seconds = result.status, result.model_uri, result.seconds
            value = result.metrics.get(metric)
            outcome.metric = float(value) if value is not None and math.isfinite(value) else None
        outcomes.append(outcome)
        if outcome.run_id is not None:  # the values tried, on every trial's run (a failed one has no others)
            params = [Param(f"sweep.{k}", yaml_text(v)[:6000]) for k, v in trial.values.items()]
            with bounded_requests():
                client.log_batch(outcome.run_id, params=params)
    sign = -1.0 if goal == "max" else 1.0
    ranked = sorted(outcomes, key=lambda o: (o.metric is None, sign * (o.metric or 0.0), o.number))
    return ranked, metric, goal


def tags_of(runs: list[Any]) -> list[dict[str, str]]:
    """The tags of the runs that recorded a primary metric."""
    return [r.data.tags for r in runs if "skflow.primary_metric" in r.data.tags]


def _register(best: TrialOutcome, name: str, tracking_uri: str) -> tuple[str, str] | None:
    from flows.tracking import register_model, set_alias

    if best.model_uri is None:
        logger.warning("The best trial (%s) logged no model: nothing is registered.", best.name)
        return None
    version = register_model(best.model_uri, name, tracking_uri=tracking_uri)
    set_alias(name, CHALLENGER, version, tracking_uri=tracking_uri)
    logger.info("Registered the best trial's model as version %s of %s, alias %s.", version, name, CHALLENGER)
    return name, version


def results_table(result: SweepResult) -> list[dict[str, Any]]:
    """The trials as rows (trial, params, metric, status, run_id, error), best first."""
    return [
        {
            "trial": o.number,
            "params": ", ".join(f"{k}={yaml_text(v)}" for k, v in o.values.items()),
            result.metric: o.metric,
            "status": o.status,
            "run_id": o.run_id or "",
            "error": o.error or "",
        }
        for o in result.outcomes
    ]


def _log_results(parent: Any, result: SweepResult) -> None:
    from mlflow.entities import Metric, RunTag

    from flows.tracking.store import bounded_requests, get_client

    client = get_client(parent.tracking_uri)
    finished = sum(o.status == "FINISHED" for o in result.outcomes)
    stamp = int(time.time() * 1000)
    tags = [RunTag("skflow.sweep.metric", result.metric), RunTag("skflow.sweep.goal", result.goal)]
    metrics = [
        Metric("trials_finished", finished, stamp, 0),
        Metric("trials_failed", len(result.outcomes) - finished, stamp, 0),
    ]
    if result.best is not None:
        metrics.append(Metric(f"best_{result.metric}", result.best.metric, stamp, 0))
        tags += [
            RunTag("skflow.sweep.best_run_id", result.best.run_id or ""),
            RunTag("skflow.sweep.best_trial", result.best.name),
        ]
    if result.registered is not None:
        tags.append(RunTag("skflow.sweep.registered", f"models:/{result.registered[0]}/{result.registered[1]}"))
    rows = results_table(result)
    with bounded_requests():
        client.log_batch(parent.run_id, metrics=metrics, tags=tags)
        if result.best is not None and result.best.run_id:
            client.set_tag(result.best.run_id, "skflow.sweep.best", "true")
        client.log_table(
            parent.run_id, data={k: [r[k] for r in rows] for k in rows[0]}, artifact_file="sweep_results.json"
        )
        client.log_text(parent.run_id, _markdown(result), "sweep_summary.md")


def _markdown(result: SweepResult) -> str:
    lines = [
        f"# Sweep: {len(result.outcomes)} trials of {result.experiment}, ranked by {result.metric} ({result.goal})",
        "",
        f"| trial | params | {result.metric} | status | run |",
        "|---|---|---:|---|---|",
    ]
    for row in results_table(result):
        value = row[result.metric]
        shown = "—" if value is None else f"{value:.6g}"
        status = row["status"] + (f" ({row['error']})" if row["error"] else "")
        lines.append(f"| {row['trial']} | {row['params']} | {shown} | {status} | {row['run_id']} |")
    if result.registered:
        lines += [
            "",
            f"Best trial registered as `models:/{result.registered[0]}@{CHALLENGER}` (version {result.registered[1]}).",
        ]
    return "\n".join(lines)


def _prefect_summary(result: SweepResult) -> None:
    from prefect.artifacts import create_markdown_artifact

    from flows.lineage import artifact_key

    create_markdown_artifact(_markdown(result), key=artifact_key(f"{result.experiment}-sweep"))


def print_sweep(result: SweepResult) -> None:
    """Print the trials (trial, params, metric, status), best first, then the best and where it went."""
    from rich.console import Console
    from rich.table import Table

    from flows.lineage import mlflow_run_url
    from flows.tracking import TrackedRun

    console = Console()
    console = console if console.is_terminal else Console(width=200)  # a log or a pipe: do not fold the table
    finished = sum(o.status == "FINISHED" for o in result.outcomes)
    console.print(
        f"Sweep of {result.experiment}: {finished} of {len(result.outcomes)} trials finished in {result.seconds:.1f} s, "
        f"ranked by {result.metric} ({'higher' if result.goal == 'max' else 'lower'} is better)"
    )
    table = Table()
    for name, justify in (("trial", "right"), ("params", "left"), (result.metric, "right"), ("status", "left")):
        table.add_column(name, justify=justify)
    for row in results_table(result):
        value = row[result.metric]
        error = row["error"] if len(row["error"]) <= 100 else row["error"][:99] + "…"
        status = row["status"] + (f": {error}" if error else "")
        table.add_row(str(row["trial"]), row["params"], "-" if value is None else f"{value:.6g}", status)
    console.print(table)
    if result.best is not None:
        console.print(f"best: {result.best.name} (MLflow run {result.best.run_id})")
    if result.registered is not None:
        name, version = result.registered
        console.print(f"registered: models:/{name}@{CHALLENGER} (version {version})")
    parent = TrackedRun(result.parent_run_id, result.experiment_id, result.tracking_uri)
    console.print(f"MLflow parent run {result.parent_run_id}: {mlflow_run_url(parent)}")
