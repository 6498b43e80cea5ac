"""Prefect <-> MLflow: one MLflow run per flow run, each pointing at the other, and the run's summary.

- The MLflow run gets the Prefect flow run's id, name, flow name and UI URL as tags
  (`prefect.flow_run_id`, `prefect.flow_run_name`, `prefect.flow_name`, `prefect.flow_run_url`).
- The Prefect flow run gets the tags `mlflow.run_id:<id>` and `mlflow.experiment:<name>`, and a
  markdown artifact linking the MLflow run and summarising its metrics.
- `finish_run` ends the MLflow run FINISHED, FAILED (the error in the tag `skflow.error`) or
  KILLED (KeyboardInterrupt, SIGTERM), whichever step the flow stopped at.

Called from inside a flow run; outside one (a plain function call) the Prefect parts are skipped.
"""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

__all__ = [
    "fail_run",
    "finish_run",
    "mlflow_run_url",
    "prefect_tags",
    "run_summary_markdown",
    "start_run",
    "tag_flow_run",
]

logger = logging.getLogger("skflow")

_ERROR_LIMIT = 8000
UI_URL = "http://127.0.0.1:5000"  # where `skflow ui` serves the embedded store


def prefect_tags() -> dict[str, str]:
    """The current Prefect flow run as MLflow tags ({} outside a flow run)."""
    from prefect.runtime import flow_run

    if not flow_run.id:
        return {}
    tags = {
        "prefect.flow_run_id": str(flow_run.id),
        "prefect.flow_run_name": str(flow_run.name),
        "prefect.flow_name": str(flow_run.flow_name),
    }
    if flow_run.ui_url:
        tags["prefect.flow_run_url"] = str(flow_run.ui_url)
    return tags


def start_run(experiment: str, tracking_uri: str | None = None, tags: Mapping[str, str] | None = None) -> Any:
    """Create the flow run's MLflow run (named like the flow run, tagged with it) and tag the flow
    run with it; returns the `TrackedRun`."""
    from prefect.runtime import flow_run

    from flows.tracking import create_run

    run = create_run(
        experiment,
        run_name=flow_run.name or None,
        tags={**prefect_tags(), **(tags or {})},
        tracking_uri=tracking_uri,
    )
    tag_flow_run(run, experiment)
    return run


def tag_flow_run(run: Any, experiment: str) -> None:
    """Add `mlflow.run_id:<id>` and `mlflow.experiment:<name>` to the current flow run's tags."""
    from prefect import get_client
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return
    current = list(context.flow_run.tags or [])
    added = [f"mlflow.run_id:{run.run_id}", f"mlflow.experiment:{experiment}"]
    try:
        with get_client(sync_client=True) as client:
            client.update_flow_run(context.flow_run.id, tags=[*current, *(t for t in added if t not in current)])
    except Exception as exc:  # lineage never fails a training
        logger.warning("Could not tag Prefect flow run %s with its MLflow run: %s", context.flow_run.id, exc)


def finish_run(run: Any, error: BaseException | None = None) -> str:
    """End `run` FINISHED (no error), KILLED (KeyboardInterrupt, SystemExit) or FAILED (the error's
    traceback in the tag `skflow.error`); returns the status."""
    from flows.tracking import end_run
    from flows.tracking.store import bounded_requests, get_client

    if error is None:
        status = "FINISHED"
    elif isinstance(error, (KeyboardInterrupt, SystemExit)):
        status = "KILLED"
    else:
        status = "FAILED"
        text = "".join(traceback.format_exception(error))[-_ERROR_LIMIT:]
        try:
            with bounded_requests():
                get_client(run.tracking_uri).set_tag(run.run_id, "skflow.error", text)
        except Exception as exc:
            logger.warning("Could not record the error on MLflow run %s: %s", run.run_id, exc)
    end_run(run, status)
    return status


def fail_run(run: Any, error: BaseException, experiment: str, model_dir: str) -> None:
    """End `run` KILLED or FAILED for `error` (`finish_run`) and add a note to the error naming the run,
    how it ended and where its checkpoints are. A store that cannot end the run never masks the error."""
    try:
        status = f"ended {finish_run(run, error)}"
    except Exception as unrecorded:  # the store is away: the step's own error is what the user needs
        status = f"could not be ended ({type(unrecorded).__name__}: {unrecorded})"
    error.add_note(f"MLflow run {run.run_id} ({experiment}) {status}; checkpoints in {model_dir}")


def mlflow_run_url(run: Any) -> str:
    """The run's page in the MLflow UI: the tracking server's, or the one `skflow ui` serves."""
    scheme = urlparse(run.tracking_uri).scheme
    base = run.tracking_uri.rstrip("/") if scheme in ("http", "https") else UI_URL
    return f"{base}/#/experiments/{run.experiment_id}/runs/{run.run_id}"


def run_summary_markdown(run: Any, experiment: str, metrics: Mapping[str, float], details: Mapping[str, Any]) -> str:
    """The flow run's markdown artifact: a link to the MLflow run, its metrics and the details."""
    url = mlflow_run_url(run)
    local = urlparse(run.tracking_uri).scheme not in ("http", "https")
    lines = [
        f"# MLflow run [{run.run_id}]({url})",
        "",
        f"Experiment **{experiment}**, tracking store `{run.tracking_uri}`"
        + (" (open it with `skflow ui`)." if local else "."),
        "",
        "| metric | value |",
        "|---|---|",
        *(f"| {k} | {_number(v)} |" for k, v in sorted(metrics.items())),
        "",
        *(f"- **{k}**: {v}" for k, v in details.items()),
    ]
    return "\n".join(lines)


def artifact_key(text: str) -> str:
    """A Prefect artifact key (lowercase letters, digits and dashes) made from `text`."""
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:100] or "skflow"


def _number(value: Any) -> str:
    try:
        return f"{float(value):.6g}"
    except (TypeError, ValueError):
        return str(value)
