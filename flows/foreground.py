"""What a pipeline run in the foreground of a command needs: Prefect's local server, started before
the heavy imports; Prefect settings without flow heartbeats; a quick exit.

Without a configured Prefect API (`PREFECT_API_URL` in the environment or the active Prefect
profile), Prefect starts a temporary server on the first flow call and waits for it (4-9 s here).
`skflow run` starts the same server (the same uvicorn command and settings as Prefect's
`SubprocessASGIServer`, on Prefect's own database in `PREFECT_HOME`) as its first step, so that it
boots in its own process while this one imports TensorFlow, and points Prefect at it through
`PREFECT_API_URL`, set before Prefect is imported. The server stops when the command exits.

`without_heartbeats()` and `exit_now(code)` are explained where they are defined. Nothing here
imports Prefect at module level: it must run before Prefect reads its settings.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from pathlib import Path

__all__ = ["LocalPrefectServer", "configured_api_url", "exit_now", "start_local_server", "without_heartbeats"]

STARTUP_TIMEOUT_S = 90.0


def configured_api_url() -> str | None:
    """The Prefect API this process would use: `PREFECT_API_URL`, else the active profile's (None: ephemeral)."""
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    home = Path(os.environ.get("PREFECT_HOME", Path.home() / ".prefect")).expanduser()
    path = Path(os.environ.get("PREFECT_PROFILES_PATH", home / "profiles.toml")).expanduser()
    try:
        profiles = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return None
    active = os.environ.get("PREFECT_PROFILE") or profiles.get("active", "ephemeral")
    return (profiles.get("profiles", {}).get(active) or {}).get("PREFECT_API_URL") or None


class LocalPrefectServer:
    """A Prefect API server subprocess on 127.0.0.1 (what Prefect's ephemeral mode starts).

    Attributes:
        port: its port. api_url: `http://127.0.0.1:<port>/api`. log: its output file.
    """

    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.log = tempfile.NamedTemporaryFile(prefix="skflow_prefect_server_", suffix=".log", delete=False)  # noqa: SIM115
        self.started = time.monotonic()
        self.ready_after: float | None = None
        env = {
            **os.environ,
            "PREFECT_UI_ENABLED": "0",
            "PREFECT__SERVER_EPHEMERAL": "1",
            "PREFECT__SERVER_FINAL": "1",
        }
        env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # no network here: its telemetry only logs errors
        prefect_dir = Path(importlib.util.find_spec("prefect").origin).parent
        command = [
            sys.executable, "-m", "uvicorn", "--app-dir", str(prefect_dir.parent), "--factory",
            "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(self.port),
            "--log-level", "error", "--lifespan", "on",
        ]  # fmt: skip
        self.process: subprocess.Popen | None = subprocess.Popen(
            command, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        atexit.register(self.stop)

    def wait(self, timeout: float = STARTUP_TIMEOUT_S) -> float:
        """Block until the server answers /health; returns the seconds since it was started.

        Raises:
            RuntimeError: it exited or did not answer within `timeout` (the end of its log included).
        """
        while self.ready_after is None:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"The Prefect server exited at start. Its log ({self.log.name}):\n{self._tail()}")
            if time.monotonic() - self.started > timeout:
                self.stop()
                raise RuntimeError(f"The Prefect server did not start within {timeout:g} s:\n{self._tail()}")
            try:
                with urllib.request.urlopen(f"{self.api_url}/health", timeout=1) as response:
                    if response.status == 200:
                        self.ready_after = time.monotonic() - self.started
            except OSError:
                time.sleep(0.1)
        return self.ready_after

    def stop(self) -> None:
        """Terminate the server (SIGTERM, then SIGKILL after 5 s) and remove its log."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.log.close()
        if os.path.exists(self.log.name):
            os.remove(self.log.name)

    def _tail(self, size: int = 3000) -> str:
        self.log.flush()
        with open(self.log.name, encoding="utf-8", errors="replace") as f:
            return f.read()[-size:]


def start_local_server() -> LocalPrefectServer | None:
    """Start a local server and point Prefect at it (`PREFECT_API_URL`), unless an API is configured
    (or Prefect is already imported: too late to change its settings). Returns it, or None."""
    if configured_api_url() or "prefect" in sys.modules:
        return None
    server = LocalPrefectServer()
    os.environ["PREFECT_API_URL"] = server.api_url
    return server


@contextlib.contextmanager
def without_heartbeats() -> Iterator[None]:
    """Prefect settings for flows this process runs in its foreground (`skflow run`, `skflow predict`):
    no flow-run heartbeats. Heartbeats let a server mark a worker's vanished run as crashed; a
    foreground run ends with its process, which reports its state itself. Prefect joins the
    heartbeat thread at the end of every sync flow, which sleeps in 1-s steps: measured here, an
    empty flow took 1.08 s with them and 0.12-0.16 s without, a batch prediction of 20,000 rows
    1.12 s and 0.34-0.42 s."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


def exit_now(code: int) -> None:
    """Exit with `code` once the exit handlers have run, skipping the interpreter's teardown when
    TensorFlow is loaded: its destructors took ~5 s at every exit here (measured after a pipeline
    run: 5.6 s from the end of the command to the end of the process, 0.8 s this way). The
    handlers are what must finish (the Prefect and MLflow workers' flushes, the local Prefect
    server's stop, the temporary model downloads); they run first, then stdout and stderr are
    flushed."""
    if "tensorflow" not in sys.modules:
        sys.exit(code)
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
