"""The server directory without servers: arguments, stale states, pid reuse, credentials, the
client environment, and the promise that the embedded default path never loads this package."""

from __future__ import annotations

import ast
import json
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from flows.server import commands, start_servers, stop_servers, use_server_environment
from flows.server.credentials import load_or_create_credentials, write_mlflow_auth_config
from flows.server.layout import ServerLayout, server_directory
from flows.server.postgres import database_url, normalize_dsn, redact
from flows.server.state import ProcessRecord, ServerState, read_state, write_state

ROOT = Path(__file__).resolve().parents[3]


def _exited_process() -> ProcessRecord:
    """The record of a process that has exited (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    record = ProcessRecord.of(process.pid)
    process.wait()
    return record


def _state(directory: Path, processes: dict[str, ProcessRecord], auth: bool = False) -> ServerState:
    return ServerState(
        directory=str(directory),
        backend="sqlite",
        auth=auth,
        phase="running",
        processes=processes,
        mlflow_url="http://127.0.0.1:15005",
        prefect_url="http://127.0.0.1:14205",
    )


@pytest.fixture
def sleeper():
    """A process in a session of its own, as the servers are started; killed at the end."""
    process = subprocess.Popen(["sleep", "60"], start_new_session=True)
    yield process
    process.kill()
    process.wait()


# --- arguments -------------------------------------------------------------------------------


def test_an_unknown_backend_is_refused_with_the_choices(tmp_path):
    with pytest.raises(ValueError, match=r"argument `backend`. Received: backend='mysql'. Expected one of"):
        start_servers(tmp_path, backend="mysql")


def test_a_dsn_with_the_sqlite_backend_is_refused_without_showing_its_password(tmp_path):
    with pytest.raises(ValueError, match=r"Received: dsn='postgresql://u:\*\*\*@db/x' with backend='sqlite'"):
        start_servers(tmp_path, backend="sqlite", dsn="postgresql://u:secret@db/x")


def test_a_dsn_that_is_not_postgresql_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"Expected a PostgreSQL URL"):
        start_servers(tmp_path, dsn="mysql://u@db/x")


def test_a_port_in_use_is_refused_and_nothing_is_started(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ValueError, match=rf"Received: prefect_port={port}, which another process is using"):
            start_servers(tmp_path, backend="sqlite", prefect_port=port)
    assert not (tmp_path / "state.json").exists()


@pytest.mark.parametrize("port", [0, 70000, "4200", True])
def test_an_invalid_port_is_refused(tmp_path, port):
    with pytest.raises(ValueError, match=r"argument `mlflow_port`.*Expected an integer from 1 to 65535"):
        start_servers(tmp_path, mlflow_port=port)


def test_the_same_port_twice_is_refused(tmp_path):
    with pytest.raises(ValueError, match="Expected two different ports"):
        start_servers(tmp_path, prefect_port=4999, mlflow_port=4999)


def test_the_start_command_exits_2_on_an_invalid_argument(tmp_path, capsys):
    assert commands.start(tmp_path, backend="mysql") == 2
    assert "Invalid value for argument `backend`" in capsys.readouterr().err


# --- the directory -------------------------------------------------------------------------------


def test_the_directory_is_the_argument_else_the_environment_else_dot_skflow(monkeypatch, tmp_path):
    monkeypatch.delenv("SKFLOW_SERVER_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert server_directory() == tmp_path / ".skflow" / "server"
    monkeypatch.setenv("SKFLOW_SERVER_DIR", str(tmp_path / "elsewhere"))
    assert server_directory() == tmp_path / "elsewhere"
    assert server_directory(tmp_path / "given") == tmp_path / "given"


def test_the_directory_is_private_and_ignored_by_git(tmp_path):
    layout = ServerLayout(tmp_path / "server")
    layout.create()
    assert stat.S_IMODE(layout.root.stat().st_mode) == 0o700
    assert (layout.root / ".gitignore").read_text().splitlines()[-1] == "*"


# --- stale states and pid reuse ----------------------------------------------------------------


def test_status_detects_a_state_whose_processes_are_gone_and_cleans_it(tmp_path, capsys):
    ServerLayout(tmp_path).create()
    write_state(tmp_path / "state.json", _state(tmp_path, {"mlflow": _exited_process(), "prefect": _exited_process()}))
    assert commands.status(tmp_path) == commands.NOT_RUNNING
    assert "Stale state cleaned" in capsys.readouterr().out
    assert not (tmp_path / "state.json").exists()


def test_stop_with_a_stale_state_stops_the_survivor_and_cleans_the_state(tmp_path, sleeper):
    ServerLayout(tmp_path).create()
    processes = {"mlflow": ProcessRecord.of(sleeper.pid), "prefect": _exited_process()}
    write_state(tmp_path / "state.json", _state(tmp_path, processes))
    result = stop_servers(tmp_path, timeout=5)
    assert (result.stopped, result.stale, result.survivors) == (["mlflow"], True, [])
    assert sleeper.wait(timeout=5) == -15  # SIGTERM to its process group
    assert not (tmp_path / "state.json").exists()


def test_a_reused_pid_is_not_taken_for_the_recorded_process_and_never_signalled(tmp_path, sleeper):
    ServerLayout(tmp_path).create()
    impostor = ProcessRecord(sleeper.pid, psutil.Process(sleeper.pid).create_time() - 100)
    assert not impostor.is_alive()
    write_state(tmp_path / "state.json", _state(tmp_path, {"mlflow": impostor, "prefect": _exited_process()}))
    assert stop_servers(tmp_path, timeout=2).stopped == []
    time.sleep(0.2)
    assert sleeper.poll() is None


def test_stop_with_nothing_started_says_so_and_exits_0(tmp_path, capsys):
    assert commands.stop(tmp_path / "never") == 0
    assert "Nothing was running" in capsys.readouterr().out


def test_a_state_file_of_another_version_is_refused_with_the_fix(tmp_path):
    (tmp_path / "state.json").write_text(json.dumps({"version": 99}))
    with pytest.raises(ValueError, match="is not a state file of this skflow version.*delete the file"):
        read_state(tmp_path / "state.json")


# --- credentials and the client environment ---------------------------------------------------


def test_credentials_are_created_once_mode_0600_and_reused(tmp_path):
    layout = ServerLayout(tmp_path)
    layout.create()
    first = load_or_create_credentials(layout)
    assert stat.S_IMODE(layout.credentials_file.stat().st_mode) == 0o600
    assert load_or_create_credentials(layout) == first
    config = write_mlflow_auth_config(layout, first).read_text()
    assert f"database_uri = sqlite:///{layout.mlflow_auth_db}" in config
    assert "auth_cache_ttl_seconds = 300" in config
    assert first.mlflow_password not in config


def test_a_user_database_without_its_credentials_is_refused_with_the_fix(tmp_path):
    layout = ServerLayout(tmp_path)
    layout.create()
    layout.mlflow_auth_db.write_bytes(b"")
    with pytest.raises(RuntimeError, match=r"basic_auth.db exists but .*credentials.json does not.*Delete"):
        load_or_create_credentials(layout)


@pytest.fixture
def auth_directory(tmp_path, sleeper, monkeypatch):
    """A directory whose state says an --auth server runs (the sleeper stands in for both)."""
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    for name in ("PREFECT_API_URL", "PREFECT_API_AUTH_STRING"):
        monkeypatch.delenv(name, raising=False)
    layout = ServerLayout(tmp_path)
    layout.create()
    record = ProcessRecord.of(sleeper.pid)
    write_state(layout.state_file, _state(tmp_path, {"mlflow": record, "prefect": record}, auth=True))
    return layout, load_or_create_credentials(layout)


def test_use_server_environment_sets_credentials_only_for_the_urls_that_point_at_the_server(
    auth_directory, monkeypatch
):
    layout, credentials = auth_directory
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://localhost:15005/")
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9999/api")  # another server
    assert use_server_environment(layout.root) == {
        "MLFLOW_TRACKING_USERNAME": "skflow",
        "MLFLOW_TRACKING_PASSWORD": credentials.mlflow_password,
    }
    assert os.environ["MLFLOW_TRACKING_PASSWORD"] == credentials.mlflow_password
    assert "PREFECT_API_AUTH_STRING" not in os.environ


def test_use_server_environment_leaves_an_explicit_setting_alone(auth_directory, monkeypatch):
    layout, _ = auth_directory
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:14205/api")
    monkeypatch.setenv("PREFECT_API_AUTH_STRING", "someone:else")
    assert use_server_environment(layout.root) == {}
    assert os.environ["PREFECT_API_AUTH_STRING"] == "someone:else"


def test_use_server_environment_with_set_urls_points_the_clients_at_a_running_server(auth_directory):
    layout, credentials = auth_directory
    assert use_server_environment(layout.root, set_urls=True) == {
        "PREFECT_API_URL": "http://127.0.0.1:14205/api",
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:15005",
        "MLFLOW_TRACKING_USERNAME": "skflow",
        "MLFLOW_TRACKING_PASSWORD": credentials.mlflow_password,
        "PREFECT_API_AUTH_STRING": credentials.prefect_auth_string,
    }


def test_use_server_environment_does_nothing_without_a_server_or_for_a_dead_one(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    assert use_server_environment(tmp_path / "nothing", set_urls=True) == {}
    ServerLayout(tmp_path).create()
    write_state(tmp_path / "state.json", _state(tmp_path, {"mlflow": _exited_process(), "prefect": _exited_process()}))
    assert use_server_environment(tmp_path, set_urls=True) == {}
    assert "MLFLOW_TRACKING_URI" not in os.environ


def _run(code: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=120)


def test_use_server_environment_loads_neither_mlflow_prefect_nor_a_database_driver():
    _run(
        "import sys\n"
        "from flows.server import use_server_environment\n"
        "use_server_environment('/nonexistent')\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('prefect', 'mlflow', 'pgserver', 'psycopg2'))\n"
        "assert not bad, bad\n"
    )


def test_the_embedded_default_path_never_imports_flows_server():
    _run(
        "import sys, flows, flows.config, flows.tracking, flows.tracking.store, flows.tracking.logger\n"
        "flows.tracking.store.resolve_store()\n"
        "assert 'flows.server' not in sys.modules, 'the default path imported flows.server'\n"
    )


def test_no_module_outside_flows_server_imports_it_at_import_time():
    """Wiring (the CLI) imports flows.server inside the function that runs `skflow server`."""
    bad = []
    for path in sorted((ROOT / "flows").rglob("*.py")):
        if "server" in path.relative_to(ROOT / "flows").parts[:1]:
            continue
        for node in ast.parse(path.read_text()).body:
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            bad += [f"{path.relative_to(ROOT)}:{node.lineno}" for n in names if n.startswith("flows.server")]
    assert bad == []


# --- DSN helpers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dsn",
    [
        "postgres://u:p@db:5433/postgres",
        "postgresql+psycopg2://u:p@db:5433/postgres",
        "postgresql://u:p@db:5433/postgres",
    ],
)
def test_dsn_spellings_are_normalized_to_a_libpq_url(dsn):
    assert normalize_dsn(dsn) == "postgresql://u:p@db:5433/postgres"


def test_database_url_keeps_the_server_and_its_options():
    admin = "postgresql://postgres:@/postgres?host=/srv/pg"
    assert database_url(admin, "skflow_mlflow") == "postgresql://postgres:@/skflow_mlflow?host=/srv/pg"
    assert database_url(admin, "skflow_prefect", "asyncpg").startswith(
        "postgresql+asyncpg://postgres:@/skflow_prefect?"
    )


def test_redact_hides_a_password_and_nothing_else():
    assert redact("postgresql://u:s3cret@db:5432/x?sslmode=require") == "postgresql://u:***@db:5432/x?sslmode=require"
    assert redact("postgresql://postgres:@/postgres?host=/srv/pg") == "postgresql://postgres:@/postgres?host=/srv/pg"
    assert redact("postgresql://u@db/x") == "postgresql://u@db/x"


def test_python_m_flows_server_runs_the_commands(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "flows.server", "status", "--dir", str(tmp_path / "none")]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == commands.NOT_RUNNING
    assert "No skflow server runs in" in result.stdout
    assert "python -m flows.server start" in result.stdout


def test_the_servers_bind_loopback_run_the_scheduler_and_keep_secrets_off_their_command_lines(tmp_path, monkeypatch):
    from flows.server.services import mlflow_spec, prefect_spec

    monkeypatch.setenv("PREFECT_API_URL", "http://elsewhere:4200/api")  # a client setting of the shell
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://elsewhere:5000")
    layout = ServerLayout(tmp_path)
    layout.create()
    credentials = load_or_create_credentials(layout)
    mlflow = mlflow_spec(layout, 5001, "postgresql://u:s3cr3t-dsn@db/skflow_mlflow", credentials)
    prefect = prefect_spec(layout, 4201, "postgresql+asyncpg://u:s3cr3t-dsn@db/skflow_prefect", credentials)
    secrets = ("s3cr3t-dsn", credentials.mlflow_password, credentials.prefect_auth_string, credentials.flask_secret_key)
    for spec in (mlflow, prefect):
        command = " ".join(spec.command)
        assert "--host 127.0.0.1 --port" in command
        assert not [s for s in secrets if s in command]
        assert "PREFECT_API_URL" not in spec.env and "MLFLOW_TRACKING_URI" not in spec.env
    assert "--app-name basic-auth" in " ".join(mlflow.command)
    assert mlflow.env["MLFLOW_BACKEND_STORE_URI"].endswith("@db/skflow_mlflow")
    assert prefect.env["PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED"] == "true"
    assert prefect.env["PREFECT_SERVER_API_AUTH_STRING"] == credentials.prefect_auth_string
    assert prefect.env["PREFECT_HOME"] == str(layout.prefect_home)
