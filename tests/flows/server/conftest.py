"""Helpers for the server tests: what runs of a server directory, and how to prove nothing does.

Real servers are started with bounded waits and stopped by the last test that uses them (which
proves nothing is left), and again, as a safety net, by their fixture:
- `pg_servers`: `skflow server start` on pgserver's PostgreSQL, once per session, shared by
  test_serve.py (a served cron deployment and its runs) and test_servers.py (whose last test stops it).
- test_auth.py starts its own `--auth` servers on SQLite (a different configuration).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import psutil
import pytest

from flows.server.processes import port_accepts, processes_of
from flows.server.state import ServerState

START_TIMEOUT_S = 150.0  # start-to-healthy is 10-20 s here; generous for two loaded cores


def processes_of_state(state: ServerState) -> list[psutil.Process]:
    """Every process the state's services run: both servers' process groups, the postmaster and
    its children."""
    found = []
    for name, record in state.processes.items():
        found += processes_of(record, group=name != "postgres")
    return found


def processes_naming(directory: Path) -> list[psutil.Process]:
    """Running processes whose command line or environment names `directory` (zombies excluded):
    the servers carry it in PREFECT_HOME / MLFLOW_ARTIFACTS_DESTINATION, PostgreSQL in `-D`."""
    needle = str(directory)
    found = []
    for process in psutil.process_iter():
        if process.pid == os.getpid():
            continue
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
            if any(needle in arg for arg in process.cmdline()) or any(
                needle in value for value in process.environ().values()
            ):
                found.append(process)
        except psutil.Error:
            continue
    return found


def assert_nothing_left(state: ServerState, before: list[psutil.Process]) -> None:
    """No process of `before` runs, none names the directory, no port of the state listens."""
    directory = Path(state.directory)
    still = [p for p in before if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert still == [], still
    assert processes_naming(directory) == []
    for url in (state.mlflow_url, state.prefect_url):
        assert not port_accepts(int(url.rsplit(":", 1)[1])), f"{url} still accepts connections"
    assert not (directory / "state.json").exists()
    assert not (directory / "postgres" / "postmaster.pid").exists()


@pytest.fixture(scope="session")
def pg_servers():
    """`skflow server start` on its default backend (PostgreSQL from pgserver), once per session."""
    from flows.server import start_servers, stop_servers

    # Not under pytest's base directory: as root, pgserver runs PostgreSQL as its own user and opens
    # the path's folders to it, but any other pytest session of the machine resets
    # /tmp/pytest-of-root to 0700 when it starts ("pg_ctl: could not access directory").
    directory = Path(tempfile.mkdtemp(prefix="skflow-servers-"))
    result = start_servers(directory, timeout=START_TIMEOUT_S)
    yield result.state
    stop_servers(directory)  # test_servers.py's last test stops them; this is the safety net
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def clean_prefect_settings():
    """Restore the environment and Prefect's global settings after a test that changed them."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)
    import prefect.context

    prefect.context.refresh_global_settings_context()


def drain_prefect_workers() -> None:
    """Deliver the logs and events Prefect's background workers still hold for the server, before
    it stops (else they retry against a closed port when the test process exits)."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)
    EventsWorker.drain_all(timeout=10)
