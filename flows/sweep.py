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
`best_<metric>`) and a results table (`sweep_results.json`, `sweep_summary.md`); the best trial's
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

import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.config import PipelineConfig, load_config
from flows.sweep_space import SweepSpace, Trial, draw_trials, parse_space, plan_trials

__all__ = ["SweepPlan", "SweepResult", "TrialOutcome", "prepare_sweep", "sweep_flow"]

logger = logging.getLogger("skflow")

CHALLENGER = "challenger"
LOWER_IS_BETTER = ("loss", "log_loss", "mse", "rmse", "mae")


@dataclass
class SweepPlan:
    """A checked sweep: the base config, the space, and each trial with its validated config."""

    config: PipelineConfig
    space: SweepSpace
    trials: list[tuple[Trial, PipelineConfig]]
    mode: str
    seed: int | None
    metric: str
    goal: str
    model_name: str | None


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
        parent_run_id, experiment, tracking_uri: the MLflow parent run and where it is.
        metric, goal: what ranked the trials ("eval_accuracy", "max").
        outcomes: every trial, best first (failed and unscored last).
        best: the best finished trial, or None when every trial failed.
        registered: (model name, version) of the best trial's model with alias `challenger`, or None.
        seconds: wall time. status: the parent run's status.
    """

    parent_run_id: str
    experiment: str
    tracking_uri: str
    metric: str
    goal: str
    outcomes: list[TrialOutcome] = field(default_factory=list)
    best: TrialOutcome | None = None
    registered: tuple[str, str] | None = None
    seconds: float = 0.0
    status: str = "FINISHED"


def metric_goal(metric: str) -> str:
    """ "min" for a loss or error metric, else "max" (an `eval_` prefix is ignored)."""
    return "min" if metric.removeprefix("eval_") in LOWER_IS_BETTER else "max"


def prepare_sweep(
    config: str | dict[str, Any],
    overrides: list[str] | None = None,
    grid: list[str] | None = None,
    samples: list[str] | None = None,
    random: int | None = None,
    seed: int = 0,
    metric: str | None = None,
    model_name: str | None = None,
    register: bool = True,
) -> SweepPlan:
    """Parse and check a sweep without starting anything: the space, the trials, every trial's config.

    Args:
        config: the pipeline's YAML file (or a dict). overrides: `--set` overrides for every trial.
        grid: `FIELD=V1,V2` items. samples: `FIELD=DIST` items (with `random`).
        random: draw this many trials (None: every grid combination). seed: the draws' seed. default=0.
        metric: the metric ranking the trials (default: the config's primary metric, as `skflow run` logs it).
        model_name: the registered model the best trial joins (default: `tracking.registered_model`,
            else the experiment's name). register: register the best trial's model. default=True.

    Returns:
        a `SweepPlan`. Each trial logs its model when registering (the registry needs one), does
        not register it itself, skips the config's `predict` section (trials would overwrite one
        file) and shows no progress bar (trials print at once).

    Raises:
        ConfigError: a bad option, field or value, naming it.
    """
    from flows.evaluation import primary_metric
    from flows.sources import check_columns

    overrides = list(overrides or [])
    base = load_config(config, overrides)
    space = parse_space(grid or [], samples or [])
    trials = draw_trials(space, random=random, seed=seed)
    chosen = primary_metric(base)[0] if metric is None else metric.strip()
    if not chosen.startswith("eval_"):
        chosen = f"eval_{chosen}"
    name = (model_name or base.tracking.registered_model or base.experiment) if register else None
    fixed = ["tracking.registered_model=null", "predict=null"]
    if register:
        fixed.append("tracking.log_model=true")
    if "verbose" not in base.estimator.config:
        fixed.append("estimator.config.verbose=0")
    planned = plan_trials(config, overrides, trials, fixed)
    for _, trial_config in planned:
        check_columns(trial_config)
    return SweepPlan(
        base, space, planned, "random" if random else "grid", seed if random else None, chosen,
        metric_goal(chosen), name,
    )  # fmt: skip


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
        outcomes = _outcomes(parent, plan, results)
        result = SweepResult(parent.run_id, config.experiment, tracking_uri, plan.metric, plan.goal, outcomes)
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
        "sweep.metric": plan.metric,
        "sweep.goal": plan.goal,
        "sweep.runner": where,
        **{f"sweep.space.{k}": v[:6000] for k, v in plan.space.describe().items()},
    }
    if plan.seed is not None:
        params["sweep.seed"] = str(plan.seed)
    with bounded_requests():
        get_client(parent.tracking_uri).log_batch(parent.run_id, params=[Param(k, v) for k, v in params.items()])


def _outcomes(parent: Any, plan: SweepPlan, results: list[Any]) -> list[TrialOutcome]:
    """Each trial's outcome (its MLflow child run found by its tags), best first."""
    from flows.tracking.store import bounded_requests, get_client

    client = get_client(parent.tracking_uri)
    with bounded_requests():
        children = client.search_runs(
            [parent.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent.run_id}'", max_results=5000
        )
    runs = {r.data.tags.get("skflow.sweep.trial"): r for r in children}
    outcomes = []
    for (trial, _), result in zip(plan.trials, results, strict=True):
        run = runs.get(str(trial.number))
        outcome = TrialOutcome(trial.number, trial.name, trial.values, "FAILED", run_id=run and run.info.run_id)
        if isinstance(result, BaseException):
            outcome.error = f"{type(result).__name__}: {str(result).strip().splitlines()[0] if str(result) else ''}"
            outcome.status = run.info.status if run is not None and run.info.status != "RUNNING" else "FAILED"
        else:
            outcome.status, outcome.model_uri, outcome.seconds = result.status, result.model_uri, result.seconds
            value = result.metrics.get(plan.metric)
            outcome.metric = float(value) if value is not None and math.isfinite(value) else None
        outcomes.append(outcome)
    sign = -1.0 if plan.goal == "max" else 1.0
    return sorted(outcomes, key=lambda o: (o.metric is None, sign * (o.metric or 0.0), o.number))


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
            "params": ", ".join(f"{k}={json.dumps(v)}" for k, v in o.values.items()),
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
    metrics = [
        Metric("trials_finished", finished, stamp, 0),
        Metric("trials_failed", len(result.outcomes) - finished, stamp, 0),
    ]
    tags = []
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
