"""`skflow server start --backend sqlite --auth`, for real: anonymous requests are refused (HTTP 401)
by both servers; skflow's clients, given only the URLs, are let in through `use_server_environment`,
`skflow run` included (a whole pipeline, end to end).
One start for this module; its last test stops the servers and proves nothing is left."""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from flows.server import commands, start_servers, stop_servers, use_server_environment

from ..conftest import IRIS_PIPELINE
from .conftest import START_TIMEOUT_S, assert_nothing_left, drain_prefect_workers, processes_of_state

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    directory = tmp_path_factory.mktemp("auth_servers")
    result = start_servers(directory, backend="sqlite", auth=True, timeout=START_TIMEOUT_S)
    yield result.state
    stop_servers(directory)


def _status_of(url: str, data: bytes | None = None, credentials: str | None = None) -> int:
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    if credentials is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(credentials.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _credentials(servers) -> dict:
    return json.loads(Path(servers.directory, "credentials.json").read_text())


def test_both_databases_are_sqlite_files_in_the_directory(servers):
    assert servers.backend == "sqlite" and servers.postgres is None
    assert servers.databases == {
        "mlflow": f"sqlite:///{servers.directory}/mlflow/mlflow.db",
        "prefect": f"sqlite+aiosqlite:///{servers.directory}/prefect/prefect.db",
    }
    assert set(servers.processes) == {"mlflow", "prefect"}
    assert Path(servers.directory, "mlflow", "basic_auth.db").exists()


def test_credentials_are_generated_into_a_file_only_the_user_can_read(servers):
    path = Path(servers.directory, "credentials.json")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(Path(servers.directory, "mlflow", "basic_auth.ini").stat().st_mode) == 0o600
    credentials = _credentials(servers)
    assert credentials["username"] == "skflow"
    assert len(credentials["mlflow_password"]) >= 12  # MLflow refuses shorter admin passwords
    assert credentials["prefect_auth_string"].startswith("skflow:")


def test_mlflow_refuses_an_anonymous_request_and_keeps_health_open(servers):
    assert _status_of(f"{servers.mlflow_url}/api/2.0/mlflow/experiments/search?max_results=1") == 401
    assert _status_of(f"{servers.mlflow_url}/health") == 200


def test_prefect_refuses_an_anonymous_request_and_keeps_health_open(servers):
    assert _status_of(f"{servers.prefect_url}/api/flows/filter", data=b"{}") == 401
    assert _status_of(f"{servers.prefect_url}/api/health") == 200


def test_wrong_credentials_are_refused_too(servers):
    assert _status_of(f"{servers.prefect_url}/api/flows/filter", data=b"{}", credentials="skflow:wrong") == 401
    url = f"{servers.mlflow_url}/api/2.0/mlflow/experiments/search?max_results=1"
    assert _status_of(url, credentials="skflow:wrong-password") == 401


def test_mlflow_accepts_skflow_with_use_server_environment_creates_an_experiment_and_logs_a_metric(
    servers, monkeypatch
):
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", servers.mlflow_url.replace("127.0.0.1", "localhost") + "/")
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    set_now = use_server_environment(servers.directory)
    assert sorted(set_now) == ["MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_USERNAME"]  # Prefect's URL unset

    client = MlflowClient(servers.mlflow_url)
    experiment_id = client.create_experiment("auth-test")
    run = client.create_run(experiment_id)
    client.log_metric(run.info.run_id, "accuracy", 0.9)
    assert client.get_run(run.info.run_id).data.metrics == {"accuracy": 0.9}


def test_prefect_accepts_skflow_with_use_server_environment_after_prefect_was_imported(servers, clean_prefect_settings):
    import prefect.context
    from prefect import get_client
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    os.environ.pop("PREFECT_API_AUTH_STRING", None)
    os.environ["PREFECT_API_URL"] = f"{servers.prefect_url}/api"
    assert "PREFECT_API_AUTH_STRING" in use_server_environment(servers.directory)
    # Prefect was imported before: its global settings were refreshed from the environment.
    assert prefect.context.GLOBAL_SETTINGS_CONTEXT.settings.api.url == f"{servers.prefect_url}/api"
    assert prefect.context.GLOBAL_SETTINGS_CONTEXT.settings.api.auth_string is not None
    # The client is built in a settings block of its own: a test harness of another test module
    # may hold an outer one for the whole session.
    updates = {
        PREFECT_API_URL: os.environ["PREFECT_API_URL"],
        PREFECT_API_AUTH_STRING: os.environ["PREFECT_API_AUTH_STRING"],
    }
    with temporary_settings(updates=updates), get_client(sync_client=True) as client:
        assert client.read_flows() == []
        drain_prefect_workers()


def test_skflow_run_end_to_end_on_the_auth_servers_given_only_their_urls(servers, tmp_path):
    """`skflow run` with only the servers' URLs exported (and SKFLOW_SERVER_DIR): the flow run lands in
    the Prefect server and the MLflow run in the tracking server, both behind their credentials."""
    pipeline = copy.deepcopy(IRIS_PIPELINE)
    pipeline.update(experiment="iris-auth", model_root=str(tmp_path / "models"))
    pipeline["tracking"]["uri"] = servers.mlflow_url
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump(pipeline))
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING_", "PREFECT_", "SKFLOW_"))}
    env = {
        **inherited,
        "PYTHONPATH": str(ROOT),
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "PREFECT_HOME": str(tmp_path / "prefect_home"),
        "PREFECT_API_URL": servers.prefect_api_url,
        "MLFLOW_TRACKING_URI": servers.mlflow_url,
        "SKFLOW_SERVER_DIR": str(servers.directory),
    }
    result = subprocess.run(
        [sys.executable, "-m", "flows.cli", "run", str(config)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    run_id = re.search(r"MLflow run ([0-9a-f]{32}) \(iris-auth\): FINISHED", result.stdout).group(1)

    credentials = _credentials(servers)
    mlflow_login = f"{credentials['username']}:{credentials['mlflow_password']}"
    url = f"{servers.mlflow_url}/api/2.0/mlflow/runs/get?run_id={run_id}"
    assert _status_of(url) == 401
    run = _json_of(url, credentials=mlflow_login)["run"]
    assert run["info"]["status"] == "FINISHED"
    assert {p["key"]: p["value"] for p in run["data"]["params"]}["max_steps"] == "40"
    query = f"run_id={run_id}&metric_key=loss"
    history = _json_of(f"{servers.mlflow_url}/api/2.0/mlflow/metrics/get-history?{query}", credentials=mlflow_login)
    assert [m["step"] for m in history["metrics"]] == [10, 20, 30, 40]

    flow_runs = _json_of(
        f"{servers.prefect_url}/api/flow_runs/filter",
        data={"flow_runs": {"tags": {"all_": [f"mlflow.run_id:{run_id}"]}}},
        credentials=credentials["prefect_auth_string"],
    )
    assert [r["state_type"] for r in flow_runs] == ["COMPLETED"]


def _json_of(url: str, data: dict | None = None, credentials: str | None = None):
    body = None if data is None else json.dumps(data).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    if credentials is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(credentials.encode()).decode())
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_skflow_serve_refuses_the_auth_server_without_its_credentials_and_accepts_them(servers):
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    from flows.serve import ServeError, require_prefect_server

    api = servers.prefect_api_url
    with temporary_settings(updates={PREFECT_API_URL: api}, restore_defaults={PREFECT_API_AUTH_STRING}):
        with pytest.raises(ServeError, match=r"refused skflow's credentials \(HTTP 401\)"):
            require_prefect_server()
    auth = _credentials(servers)["prefect_auth_string"]
    with temporary_settings(updates={PREFECT_API_URL: api, PREFECT_API_AUTH_STRING: auth}):
        assert require_prefect_server() == api


def test_status_masks_the_secrets_and_env_prints_them_for_eval(servers, capsys):
    credentials = _credentials(servers)
    assert commands.status(servers.directory) == 0
    out = capsys.readouterr().out
    assert "export MLFLOW_TRACKING_USERNAME=skflow" in out
    assert "export MLFLOW_TRACKING_PASSWORD='********'" in out
    assert "export PREFECT_API_AUTH_STRING='********'" in out
    assert credentials["mlflow_password"] not in out
    assert commands.env(servers.directory) == 0
    out = capsys.readouterr().out
    assert f"export MLFLOW_TRACKING_PASSWORD={credentials['mlflow_password']}" in out
    assert f"export PREFECT_API_AUTH_STRING={credentials['prefect_auth_string']}" in out


def test_stop_leaves_no_process_and_no_listening_port(servers):
    before = processes_of_state(servers)
    result = stop_servers(servers.directory)
    assert sorted(result.stopped) == ["mlflow", "prefect"] and result.survivors == []
    assert_nothing_left(servers, before)
