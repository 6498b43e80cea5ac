"""MLflow fixtures shared by the tracking tests: real stores, set up once per session.

- `mlflow_template_db`: one SQLite database migrated once (1.5-3.5 s); every test copies it (~0.06 s).
- `tracking_uri`: a fresh copy per test, set as `MLFLOW_TRACKING_URI` (artifacts land beside it).
- `mlflow_server`: one real `mlflow server` on 127.0.0.1 per session (healthy after 5-30 s), which
  outage tests kill (SIGKILL to its whole process group) and restart on the same port and store.
- `prefect_api`: one `prefect_test_harness` per session (its server takes 14-25 s to start), for the
  pipeline tests only; its API URL, which subprocesses (`skflow run`) get as PREFECT_API_URL.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

HEALTH_TIMEOUT_S = 90


@pytest.fixture(scope="session")
def mlflow_template_db(tmp_path_factory):
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow_template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()  # runs the migrations once
    return path


@pytest.fixture
def tracking_uri(tmp_path, mlflow_template_db, monkeypatch):
    """A fresh SQLite tracking store for this test, as MLFLOW_TRACKING_URI."""
    db = tmp_path / "mlruns" / "mlflow.db"
    db.parent.mkdir()
    shutil.copy(mlflow_template_db, db)
    uri = f"sqlite:///{db}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


@pytest.fixture(autouse=True)
def _quiet_mlflow_logs_and_no_logger_left_running():
    for name in ("mlflow", "alembic", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)
    yield
    from flows.tracking import close_loggers

    close_loggers(timeout=5)


class MlflowServer:
    """A real `mlflow server` subprocess on 127.0.0.1:`port`, in its own process group."""

    def __init__(self, root, template_db) -> None:
        self.root = root
        self.db = root / "server.db"
        shutil.copy(template_db, self.db)
        self.artifacts = root / "artifacts"
        self.artifacts.mkdir()
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.log = open(root / "server.log", "ab")  # noqa: SIM115 (closed in stop_for_good)

    def start(self) -> float:
        """Start it and wait until /health answers; returns the seconds that took."""
        command = [
            sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port),
            "--workers", "1", "--backend-store-uri", f"sqlite:///{self.db}",
            "--artifacts-destination", str(self.artifacts),
        ]  # fmt: skip
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        env.pop("MLFLOW_TRACKING_URI", None)
        started = time.monotonic()
        self.process = subprocess.Popen(
            command, cwd=self.root, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        while time.monotonic() - started < HEALTH_TIMEOUT_S:
            if self.process.poll() is not None:
                raise RuntimeError(f"mlflow server exited with {self.process.returncode}; see {self.root}/server.log")
            if self.healthy():
                return time.monotonic() - started
            time.sleep(0.25)
        self.kill()
        raise RuntimeError(f"mlflow server not healthy after {HEALTH_TIMEOUT_S} s; see {self.root}/server.log")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL the server's whole process group (the CLI and its uvicorn worker)."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=30)
        self.process = None

    def ensure_running(self) -> None:
        if self.process is None or self.process.poll() is not None or not self.healthy():
            self.kill()
            self.start()


@pytest.fixture(scope="session")
def _mlflow_server_session(tmp_path_factory, mlflow_template_db):
    server = MlflowServer(tmp_path_factory.mktemp("mlflow_server"), mlflow_template_db)
    server.start()
    yield server
    server.kill()
    server.log.close()


@pytest.fixture
def mlflow_server(_mlflow_server_session, monkeypatch):
    """The session's tracking server (restarted first if a test left it down), as MLFLOW_TRACKING_URI."""
    _mlflow_server_session.ensure_running()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", _mlflow_server_session.url)
    return _mlflow_server_session


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory):
    """Prefect's test harness (a temporary server and database) for the whole session; its API URL."""
    # No network here: the server's telemetry would only log errors (and lock its SQLite database).
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield PREFECT_API_URL.value()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------- pipelines
IRIS_PIPELINE = {
    "experiment": "iris",
    "source": "sklearn:iris",
    "target": "target",
    "estimator": {"name": "DNNClassifier", "params": {"hidden_units": [8], "learning_rate": 0.05}},
    "fit": {"steps": 40, "batch_size": 16},
    "tracking": {"log_every_n_steps": 10, "log_model": False},
    "retries": {"ingest": 2, "fit": 1, "delay_seconds": 0},
}


def pipeline_overrides(root, tracking) -> list[str]:
    """`--set` overrides that keep a pipeline's files under `root` and its runs in `tracking`."""
    return [f"model_root={root / 'models'}", f"tracking.uri={tracking}"]


@pytest.fixture
def pipeline_config(tmp_path, tracking_uri):
    """`make(source=IRIS_PIPELINE, *overrides)`: a PipelineConfig writing under tmp_path, tracked in
    this test's store."""
    import copy

    from flows.config import load_config

    def make(source=None, *overrides: str):
        source = copy.deepcopy(IRIS_PIPELINE) if source is None else source
        return load_config(source, [*pipeline_overrides(tmp_path, tracking_uri), *overrides])

    return make
