"""`skflow server` on its default backend, for real: PostgreSQL from the pgserver wheel, a Prefect
server and an MLflow tracking server on 127.0.0.1, started once per session (`pg_servers`, shared
with test_serve.py) and stopped by this module's last test (which proves nothing is left)."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

import pytest

from flows.server import commands, server_status
from flows.server.lifecycle import TRIGRAM
from flows.server.postgres import DATABASES, database_url, ensure_databases, has_extension, ping

from .conftest import assert_nothing_left, drain_prefect_workers, processes_of_state

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture
def servers(pg_servers):
    return pg_servers  # started once per session (conftest.py), shared with test_serve.py


def test_start_runs_postgres_from_pgserver_mlflow_and_prefect_all_healthy(servers):
    status = server_status(servers.directory)
    assert status.healthy, status.services
    assert {s.name for s in status.services} == {"mlflow", "prefect", "postgres"}
    assert servers.postgres == "pgserver"
    assert f"host={servers.directory}/postgres" in servers.databases["postgres"]
    assert servers.databases["mlflow"].startswith("postgresql://")
    assert "skflow_mlflow" in servers.databases["mlflow"]
    for url in (servers.mlflow_url, servers.prefect_url):
        assert url.startswith("http://127.0.0.1:")
    assert set(servers.startup_s) == {"postgres", "mlflow", "prefect", "total"}


def test_prefect_is_on_postgresql_when_pg_trgm_exists_else_on_sqlite_with_a_note(servers):
    if has_extension(servers.databases["postgres"], TRIGRAM):
        assert servers.databases["prefect"].startswith("postgresql+asyncpg://")
        assert "skflow_prefect" in servers.databases["prefect"]
        assert servers.notes == []
    else:
        assert servers.databases["prefect"] == f"sqlite+aiosqlite:///{servers.directory}/prefect/prefect.db"
        assert "pg_trgm" in servers.notes[0]


def test_mlflow_keeps_its_runs_in_postgresql(servers):
    assert ping(database_url(servers.databases["postgres"], DATABASES["mlflow"]))
    import psycopg2

    with psycopg2.connect(database_url(servers.databases["postgres"], DATABASES["mlflow"])) as connection:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM experiments")
            assert cursor.fetchone()[0] >= 1  # MLflow's Default experiment


def test_ensure_databases_creates_a_missing_database_once(servers):
    admin = servers.databases["postgres"]
    assert ensure_databases(admin, ["skflow_test_extra", DATABASES["mlflow"]]) == ["skflow_test_extra"]
    assert ensure_databases(admin, ["skflow_test_extra"]) == []
    assert ping(database_url(admin, "skflow_test_extra"))


def test_status_names_both_urls_and_the_environment_to_export(servers, capsys):
    assert commands.status(servers.directory) == 0
    out = capsys.readouterr().out
    assert f"export PREFECT_API_URL={servers.prefect_url}/api" in out
    assert f"export MLFLOW_TRACKING_URI={servers.mlflow_url}" in out
    assert out.count("healthy") == 3
    assert "MLFLOW_TRACKING_PASSWORD" not in out  # no --auth, no credentials


def test_env_prints_export_lines_for_eval(servers, capsys):
    assert commands.env(servers.directory) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"export PREFECT_API_URL={servers.prefect_url}/api",
        f"export MLFLOW_TRACKING_URI={servers.mlflow_url}",
    ]


def test_start_when_running_says_so_exits_0_and_starts_nothing(servers, capsys):
    pids = {name: record.pid for name, record in servers.processes.items()}
    assert commands.start(servers.directory, auth=True) == 0
    out = capsys.readouterr().out
    assert "Already running" in out
    assert "Not applied: auth=True (running: auth=False)" in out
    assert f"export MLFLOW_TRACKING_URI={servers.mlflow_url}" in out  # the status follows
    assert {n: r.pid for n, r in server_status(servers.directory).state.processes.items()} == pids


def test_mlflow_server_stores_a_run_and_serves_its_artifact(servers, monkeypatch):
    from mlflow import MlflowClient

    from flows.tracking.store import get_or_create_experiment, resolve_store

    monkeypatch.setenv("MLFLOW_TRACKING_URI", servers.mlflow_url)
    store = resolve_store()
    assert store.is_remote
    experiment_id = get_or_create_experiment(store, "server-test")  # skflow's tracking layer
    client = MlflowClient(servers.mlflow_url)
    run = client.create_run(experiment_id)
    client.log_metric(run.info.run_id, "loss", 0.25, step=3)
    client.log_text(run.info.run_id, "hello from skflow", "notes/hello.txt")
    client.set_terminated(run.info.run_id)

    stored = client.get_run(run.info.run_id)
    assert stored.data.metrics == {"loss": 0.25}
    assert stored.info.status == "FINISHED"
    assert stored.info.artifact_uri.startswith("mlflow-artifacts:")
    url = f"{servers.mlflow_url}/get-artifact?path=notes/hello.txt&run_uuid={run.info.run_id}"
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == b"hello from skflow"
    stored_files = list(Path(servers.directory, "mlflow", "artifacts").glob("**/notes/hello.txt"))
    assert [p.read_text() for p in stored_files] == ["hello from skflow"]


def test_prefect_server_answers_read_flow_runs_and_records_a_flow_run(servers):
    from prefect import flow, get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    @flow(name="skflow-server-test")
    def add_one(x: int) -> int:
        return x + 1

    with temporary_settings(updates={PREFECT_API_URL: f"{servers.prefect_url}/api"}):
        state = add_one(41, return_state=True)
        assert state.result() == 42
        with get_client(sync_client=True) as client:
            assert client.api_url.host == "127.0.0.1"
            runs = client.read_flow_runs()
        drain_prefect_workers()
    recorded = {run.id: run for run in runs}
    assert state.state_details.flow_run_id in recorded
    assert recorded[state.state_details.flow_run_id].state.is_completed()


def test_prefect_scheduler_service_schedules_runs_of_a_cron_deployment(servers):
    """Only the server's scheduler service creates the runs of a schedule (an ephemeral server
    cannot): its "recent deployments" loop picks a new deployment up within ~5 s."""
    from prefect import get_client
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.client.schemas.schedules import CronSchedule
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: f"{servers.prefect_url}/api"}):
        with get_client(sync_client=True) as client:
            flow_id = client.create_flow_from_name("skflow-scheduled")
            schedule = DeploymentScheduleCreate(schedule=CronSchedule(cron="0 3 * * *"))
            deployment_id = client.create_deployment(flow_id, "nightly", schedules=[schedule])
            only_it = DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
            deadline = time.monotonic() + 60
            while not (runs := client.read_flow_runs(deployment_filter=only_it)) and time.monotonic() < deadline:
                time.sleep(0.5)
        drain_prefect_workers()
    assert runs, "no run was scheduled within 60 s: is the scheduler service on?"
    assert all(run.state.is_scheduled() and run.expected_start_time.hour == 3 for run in runs)


def test_stop_leaves_no_process_and_no_listening_port(servers, capsys):
    before = processes_of_state(servers)
    assert len(before) >= 4  # two servers (MLflow has a worker child), the postmaster and its children
    assert commands.stop(servers.directory) == 0
    assert "Stopped postgres, mlflow, prefect" in capsys.readouterr().out
    assert_nothing_left(servers, before)
    assert commands.status(servers.directory) == commands.NOT_RUNNING
