"""Where runs are recorded: the tracking URI, the artifact root, experiments and clients.

The embedded default is a SQLite file in the project: `sqlite:///<cwd>/mlruns/mlflow.db`, with
artifacts in `<cwd>/mlruns/artifacts`. `MLFLOW_TRACKING_URI` (or `mlflow.set_tracking_uri`, which
sets it) overrides it; both are read when a run starts, never at import. Experiments are created
with an explicit artifact location (MLflow would otherwise write into `./mlruns` of whatever the
current directory is), except on a tracking server, which places artifacts itself
(`mlflow server --artifacts-destination`).

Calls to a tracking server go through `bounded_requests()`: MLflow's defaults retry a request for
about four minutes (reference: 247 s for one `log_metric` to a dead server).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

__all__ = [
    "DEFAULT_EXPERIMENT",
    "TrackingStore",
    "bounded_requests",
    "get_client",
    "get_or_create_experiment",
    "resolve_store",
]

DEFAULT_EXPERIMENT = "skflow"
DEFAULT_DIR = "mlruns"


@dataclass(frozen=True)
class TrackingStore:
    """A tracking URI and where artifacts of the experiments it creates go.

    Attributes:
        tracking_uri: the MLflow tracking URI (`sqlite:///...`, `http://host:port`, ...).
        artifact_root: the directory (a `file://` URI) under which new experiments keep their
            artifacts, or None when a tracking server decides (http, https).
    """

    tracking_uri: str
    artifact_root: str | None

    @property
    def is_remote(self) -> bool:
        """Whether calls go over HTTP to a tracking server."""
        return _scheme(self.tracking_uri) in ("http", "https")

    def experiment_artifact_location(self, experiment_name: str) -> str | None:
        """The artifact location a new experiment named `experiment_name` gets (None: the server's)."""
        if self.artifact_root is None:
            return None
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", experiment_name).strip("_") or "experiment"
        return f"{self.artifact_root.rstrip('/')}/{slug}"


def resolve_store(tracking_uri: str | None = None, root: str | os.PathLike | None = None) -> TrackingStore:
    """The tracking store a run uses now: `tracking_uri`, else `MLFLOW_TRACKING_URI`, else the
    embedded SQLite default under `root` (default: the current directory).

    Args:
        tracking_uri: an explicit tracking URI. default=None.
        root: the project folder holding `mlruns/` for the embedded default. default=None: cwd.

    Returns:
        a `TrackingStore`. A SQLite store keeps its artifacts in an `artifacts` directory beside
        the database file; other database stores under `<root>/mlruns/artifacts`.

    Example:
        >>> resolve_store(root="/srv/project").tracking_uri
        'sqlite:////srv/project/mlruns/mlflow.db'
    """
    base = Path(root if root is not None else os.getcwd()).absolute() / DEFAULT_DIR
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{base / 'mlflow.db'}"
    scheme = _scheme(uri)
    if scheme in ("http", "https", "databricks"):
        return TrackingStore(uri, None)
    if scheme == "sqlite":
        db = _sqlite_path(uri)
        if db is not None:
            db.parent.mkdir(parents=True, exist_ok=True)
            return TrackingStore(uri, (db.parent / "artifacts").as_uri())
    if scheme in ("", "file"):
        path = Path(unquote(urlparse(uri).path) if scheme == "file" else uri).absolute()
        return TrackingStore(path.as_uri(), (path / "artifacts").as_uri())
    return TrackingStore(uri, (base / "artifacts").as_uri())


def _scheme(uri: str) -> str:
    scheme = urlparse(uri).scheme
    return "" if len(scheme) == 1 else scheme  # a Windows drive letter is not a scheme


def _sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///path` URI (None for an in-memory database)."""
    path = uri[len("sqlite:///") :].split("?")[0]  # sqlite:///relative.db, sqlite:////absolute.db
    if path in ("", ":memory:"):
        return None
    return Path(path).absolute()


_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


def get_client(tracking_uri: str) -> Any:
    """One `mlflow.MlflowClient` per tracking URI (its registry is the same store)."""
    with _clients_lock:
        client = _clients.get(tracking_uri)
        if client is None:
            from mlflow import MlflowClient

            client = _clients[tracking_uri] = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        return client


def get_or_create_experiment(store: TrackingStore, name: str = DEFAULT_EXPERIMENT) -> str:
    """The id of experiment `name`, created with an explicit artifact location if it is new."""
    from mlflow.exceptions import MlflowException

    client = get_client(store.tracking_uri)
    with bounded_requests():
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        try:
            return client.create_experiment(name, artifact_location=store.experiment_artifact_location(name))
        except MlflowException as exc:  # created meanwhile by another process
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise exc from None
            return experiment.experiment_id


# MLflow reads these when it sends a request (mlflow.environment_variables); they are process-wide.
_BOUNDED_ENV = (
    "MLFLOW_HTTP_REQUEST_TIMEOUT",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT",
)
_env_lock = threading.Lock()
_env_depth = 0
_env_saved: dict[str, str | None] = {}
REQUEST_TIMEOUT_S = 5


@contextmanager
def bounded_requests(timeout: int = REQUEST_TIMEOUT_S) -> Iterator[None]:
    """Make MLflow's HTTP requests inside this block give up after `timeout` seconds, without
    urllib3 retries (skflow's logger retries on its own schedule), and not print run URLs.

    MLflow reads these settings from the environment at each request, so they are set in
    `os.environ` while at least one such block is open, in any thread, and restored when the last
    one closes: an MLflow call another thread makes meanwhile is bounded too. The first block to
    open chooses the timeout.
    """
    global _env_depth, _env_saved
    with _env_lock:
        if _env_depth == 0:
            _env_saved = {k: os.environ.get(k) for k in _BOUNDED_ENV}
            os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(max(int(timeout), 1))
            os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
            os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
        _env_depth += 1
    try:
        yield
    finally:
        with _env_lock:
            _env_depth -= 1
            if _env_depth == 0:
                for key, value in _env_saved.items():
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value
