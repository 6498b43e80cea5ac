"""Run identity: one MLflow run per training, its id passed explicitly, kept in model_dir.

`model_dir/mlflow_run.json` holds the run id, experiment id and tracking URI of the run that trains
that model (and the params logged to it), so a fit resumed from the model's checkpoints continues
the same run. MLflow's fluent "active run" is never used: it is thread-local, and Prefect tasks run
in threads.
"""

from __future__ import annotations

import functools
import getpass
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flows.tracking.store import (
    DEFAULT_EXPERIMENT,
    bounded_requests,
    get_client,
    get_or_create_experiment,
    resolve_store,
)

__all__ = [
    "RUN_FILE",
    "TrackedRun",
    "TrackingUnavailableError",
    "create_run",
    "default_tags",
    "end_run",
    "read_run_record",
    "write_run_record",
]

logger = logging.getLogger("skflow")

RUN_FILE = "mlflow_run.json"


class TrackingUnavailableError(ConnectionError):
    """The tracking store could not be reached to create or read a run."""


@dataclass(frozen=True)
class TrackedRun:
    """An MLflow run, addressed explicitly (never through MLflow's thread-local active run).

    Attributes:
        run_id: the MLflow run id.
        experiment_id: its experiment.
        tracking_uri: the tracking store that holds it.
    """

    run_id: str
    experiment_id: str
    tracking_uri: str


def create_run(
    experiment_name: str = DEFAULT_EXPERIMENT,
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
    tracking_uri: str | None = None,
    model_dir: str | os.PathLike | None = None,
    attempts_s: float = 30.0,
) -> TrackedRun:
    """Create a RUNNING run in `experiment_name` (created with an explicit artifact location if new).

    Args:
        experiment_name: the experiment. default="skflow".
        run_name: the run's name; None lets MLflow draw one. default=None.
        tags: tags to set on the run, besides `default_tags()`. default=None.
        tracking_uri: default: `MLFLOW_TRACKING_URI`, else the embedded SQLite store (`resolve_store`).
        model_dir: when given, the run is recorded in `model_dir/mlflow_run.json`, so an
            `MlflowMonitor` fitting that model_dir continues it. default=None.
        attempts_s: keep trying this long while the store is unreachable. default=30.

    Returns:
        the new run as a `TrackedRun`.

    Raises:
        TrackingUnavailableError: the store could not be reached within `attempts_s`.
    """
    store = resolve_store(tracking_uri)
    all_tags = {**default_tags(), **(tags or {})}

    def create() -> TrackedRun:
        experiment_id = get_or_create_experiment(store, experiment_name)
        with bounded_requests():
            run = get_client(store.tracking_uri).create_run(experiment_id, tags=all_tags, run_name=run_name)
        return TrackedRun(run.info.run_id, experiment_id, store.tracking_uri)

    run = retry_until(create, attempts_s, f"create a run in experiment {experiment_name!r}", store.tracking_uri)
    if model_dir is not None:
        write_run_record(os.fspath(model_dir), record_of(run))
    logger.info("MLflow run %s in experiment %s (%s).", run.run_id, experiment_name, store.tracking_uri)
    return run


def end_run(run: TrackedRun, status: str = "FINISHED", attempts_s: float = 30.0) -> None:
    """Set the run's terminal status ("FINISHED", "FAILED" or "KILLED") now.

    Raises:
        TrackingUnavailableError: the store could not be reached within `attempts_s`.
    """

    def terminate() -> None:
        with bounded_requests():
            get_client(run.tracking_uri).set_terminated(run.run_id, status)

    retry_until(terminate, attempts_s, f"end run {run.run_id}", run.tracking_uri)


def retry_until(fn: Any, seconds: float, what: str, uri: str) -> Any:
    """Call `fn()` until it succeeds, for at most about `seconds`, backing off between attempts;
    an MLflow error that is not about reaching the store is raised at once."""
    from flows.tracking.ops import is_transient

    deadline = time.monotonic() + seconds
    delay = 0.5
    while True:
        try:
            return fn()
        except Exception as exc:
            if not is_transient(exc):
                raise
            if time.monotonic() + delay > deadline:
                raise TrackingUnavailableError(
                    f"Could not {what}: the MLflow tracking store {uri} did not answer for {seconds:g} s "
                    f"({type(exc).__name__}: {str(exc)[:300]}). Start it (or set MLFLOW_TRACKING_URI to one "
                    "that runs) and try again."
                ) from exc
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def default_tags(model_fn: str | None = None) -> dict[str, str]:
    """Tags every skflow run gets: `skflow.version`, `skflow.git_commit` (when the current
    directory is in a git work tree), `skflow.model_fn` (when given), and MLflow's user and source."""
    tags = {
        "skflow.version": _skflow_version(),
        "mlflow.user": _user(),
        "mlflow.source.name": os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python",
        "mlflow.source.type": "LOCAL",
    }
    commit = git_commit(os.getcwd())
    if commit:
        tags["skflow.git_commit"] = commit
    if model_fn:
        tags["skflow.model_fn"] = model_fn
    return tags


@functools.cache
def _skflow_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("skflow")
    except PackageNotFoundError:
        return "unknown"


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment (a container without passwd)
        return "unknown"


@functools.lru_cache(maxsize=8)
def git_commit(directory: str) -> str | None:
    """The HEAD commit of the git work tree holding `directory`, or None (no git, not a work tree)."""
    try:
        result = subprocess.run(
            ["git", "-C", directory, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=2, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = result.stdout.strip()
    return commit if result.returncode == 0 and len(commit) == 40 else None


# ---------------------------------------------------------------------- model_dir/mlflow_run.json
def record_of(run: TrackedRun, params: Mapping[str, str] | None = None) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "experiment_id": run.experiment_id,
        "tracking_uri": run.tracking_uri,
        "params": dict(params or {}),
    }


def read_run_record(model_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The run recorded in `model_dir/mlflow_run.json`, or None (no file, or not readable as a run)."""
    path = os.path.join(os.fspath(model_dir), RUN_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        logger.warning("Ignoring %s: %s", path, exc)
        return None
    if not isinstance(record, dict) or not all(isinstance(record.get(k), str) for k in ("run_id", "tracking_uri")):
        logger.warning("Ignoring %s: it names no run.", path)
        return None
    record.setdefault("params", {})
    return record


def write_run_record(model_dir: str, record: Mapping[str, Any]) -> None:
    """Write `model_dir/mlflow_run.json` atomically (a temporary file renamed over it)."""
    os.makedirs(model_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".mlflow_run.", dir=model_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(dict(record), f, indent=1, sort_keys=True)
        os.replace(tmp, os.path.join(model_dir, RUN_FILE))
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
