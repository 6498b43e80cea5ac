"""What the `skflow` commands print: a finished run, the runs of an experiment (best first), runs
side by side. Tables are `rich` tables on stdout; the data comes from the MLflow store.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["compare_runs", "print_result", "print_runs", "run_rows", "tracking_uri_for_ui"]

_KEY_PARAMS = (
    "estimator.class",
    "estimator.hidden_units",
    "estimator.learning_rate",
    "estimator.params.hidden_units",
    "estimator.params.learning_rate",
    "batch_size",
    "max_steps",
)


def _console() -> Any:
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=200)  # a log or a pipe: do not fold the tables


def tracking_uri_for_ui() -> str:
    """The tracking URI `skflow ui` serves: `MLFLOW_TRACKING_URI`, else the embedded SQLite store."""
    from flows.tracking import resolve_store

    return resolve_store().tracking_uri


def print_result(result: Any) -> None:
    """Print a `TrainResult`: run, status, metrics, where the model and predictions went."""
    from rich.table import Table

    from flows.lineage import mlflow_run_url

    console = _console()
    console.print(f"MLflow run {result.run_id} ({result.experiment}): {result.status}")
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in sorted(result.metrics.items()):
        table.add_row(name, f"{value:.6g}")
    console.print(table)
    console.print(f"global step {result.global_step}, {result.seconds:.1f} s; checkpoints in {result.model_dir}")
    console.print(f"model: {result.model_uri or 'not logged (see the run tag skflow.model_not_logged)'}")
    if result.predictions:
        console.print(f"predictions: {result.predictions}")
    run = _Run(result.run_id, result.tracking_uri)
    console.print(f"MLflow: {mlflow_run_url(run)}" + ("" if run.remote else "  (after `skflow ui`)"))


class _Run:
    def __init__(self, run_id: str, tracking_uri: str, experiment_id: str | None = None) -> None:
        self.run_id, self.tracking_uri = run_id, tracking_uri
        self.experiment_id = experiment_id or _experiment_of(run_id, tracking_uri)
        self.remote = tracking_uri.startswith(("http://", "https://"))


def _experiment_of(run_id: str, tracking_uri: str) -> str:
    from flows.tracking.store import get_client

    return get_client(tracking_uri).get_run(run_id).info.experiment_id


def run_rows(experiment: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """The runs of `experiment` (default: every experiment), best first by each run's primary
    metric (tag `skflow.primary_metric`), then newest first; one dict per run."""
    from flows.tracking import resolve_store
    from flows.tracking.store import get_client

    client = get_client(resolve_store().tracking_uri)
    if experiment is None:
        experiments = [e for e in client.search_experiments() if e.name != "Default"]
    else:
        found = client.get_experiment_by_name(experiment)
        experiments = [found] if found is not None else []
    rows = []
    for exp in experiments:
        found = client.search_runs([exp.experiment_id], max_results=limit, order_by=["attributes.start_time DESC"])
        rows.extend(_row(exp.name, run) for run in found)
    return sorted(rows, key=_rank)


def _row(experiment: str, run: Any) -> dict[str, Any]:
    tags, metrics, params = run.data.tags, run.data.metrics, run.data.params
    primary = tags.get("skflow.primary_metric")
    return {
        "experiment": experiment,
        "run_id": run.info.run_id,
        "name": run.info.run_name,
        "status": run.info.status,
        "start_time": run.info.start_time or 0,
        "primary": primary,
        "goal": tags.get("skflow.primary_metric_goal", "max"),
        "score": metrics.get(primary) if primary else None,
        "metrics": {k: v for k, v in metrics.items() if k.startswith("eval_")},
        "params": {k: params[k] for k in _KEY_PARAMS if k in params},
        "flow_run": tags.get("prefect.flow_run_id"),
    }


def _rank(row: dict[str, Any]) -> tuple[Any, ...]:
    score = row["score"]
    missing = score is None or (isinstance(score, float) and math.isnan(score))
    value = 0.0 if missing else (-score if row["goal"] == "max" else score)
    return (row["experiment"], missing, value, -row["start_time"])


def print_runs(experiment: str | None = None, limit: int = 20) -> bool:
    """Print the runs table; False (with a message) when there is no such experiment or run."""
    from rich.table import Table

    console = _console()
    rows = run_rows(experiment, limit)
    if not rows:
        where = f"experiment {experiment!r}" if experiment else "the tracking store"
        console.print(f"No runs in {where} ({tracking_uri_for_ui()}). Start one: skflow run CONFIG")
        return False
    metric_names = sorted({k for r in rows for k in r["metrics"]})
    param_names = [k for k in _KEY_PARAMS if any(k in r["params"] for r in rows)]
    table = Table(title=f"Runs, best first ({tracking_uri_for_ui()})", title_justify="left")
    for column in ["experiment", "run", "status", *param_names, *metric_names]:
        table.add_column(column.removeprefix("estimator."), overflow="fold")
    for r in rows:
        values = [r["params"].get(k, "") for k in param_names]
        scores = [_fmt(r["metrics"].get(k)) for k in metric_names]
        table.add_row(r["experiment"], f"{r['name']}\n{r['run_id']}", r["status"], *values, *scores)
    console.print(table)
    return True


def compare_runs(results: Sequence[Any], titles: Sequence[str] | None = None) -> None:
    """Print `TrainResult`s side by side: params that differ, held-out metrics, where each went."""
    from rich.table import Table

    from flows.tracking.store import get_client

    params = [get_client(r.tracking_uri).get_run(r.run_id).data.params for r in results]
    differing = sorted(
        k for k in set().union(*params) if len({p.get(k) for p in params}) > 1 and not k.endswith("model_dir")
    )
    table = Table(title="Runs side by side", title_justify="left")
    table.add_column("")
    for i, r in enumerate(results):
        table.add_column(titles[i] if titles else r.run_id[:8], overflow="fold")
    table.add_row("MLflow run", *(r.run_id for r in results))
    table.add_row("status", *(r.status for r in results))
    for key in differing:
        table.add_row(key, *(p.get(key, "") for p in params))
    for name in sorted({k for r in results for k in r.metrics}):
        table.add_row(name, *(_fmt(r.metrics.get(name)) for r in results))
    table.add_row("global step", *(str(r.global_step) for r in results))
    table.add_row("seconds", *(f"{r.seconds:.1f}" for r in results))
    _console().print(table)


def _fmt(value: Any) -> str:
    return "" if value is None else f"{value:.4g}"
