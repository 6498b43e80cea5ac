"""skflow end to end against the services of `infra/compose`, started here without Docker.

The compose deployment is PostgreSQL + an MLflow server (basic auth, `--artifacts-destination` on S3)
+ a Prefect server (auth string). `skflow server start --backend postgres --auth` starts the same three
on 127.0.0.1 (PostgreSQL from pgserver, MLflow's artifacts in a local directory standing in for the
bucket). This test writes a compose `.env` the way infra/compose/README.md says (the template, every
placeholder set), starts those services *with that file's credentials and ports* (the variables the
compose file hands its services: MLFLOW_AUTH_ADMIN_USERNAME/PASSWORD = MLFLOW_TRACKING_USERNAME/
PASSWORD, PREFECT_SERVER_API_AUTH_STRING = PREFECT_API_AUTH_STRING, MLFLOW_FLASK_SERVER_SECRET_KEY),
then runs the `skflow` command with nothing but the client environment skflow derives from that file
(`compose_environment`): a tiny `skflow run` that registers its model, then `skflow predict` from
`models:/...`. One start (~20-30 s), one run, one prediction.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import pytest
import yaml

from flows.server import start_servers, stop_servers
from flows.server.compose import compose_environment, read_env_file
from flows.server.credentials import Credentials
from flows.server.layout import ServerLayout
from flows.server.processes import free_port
from flows.server.state import write_private_file

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "compose" / ".env.template"
SERVICE_VARIABLES = ("MLFLOW_", "PREFECT_", "SKFLOW_SERVER_DIR", "AWS_")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def _env_file(path: Path) -> Path:
    """The template with every CHANGE placeholder replaced by a secret, on two free ports."""
    text = re.sub(r"CHANGE-[\w-]*", lambda _: secrets.token_urlsafe(18), TEMPLATE.read_text())
    text = re.sub(r"^MLFLOW_PORT=.*$", f"MLFLOW_PORT={free_port()}", text, flags=re.M)
    text = re.sub(r"^PREFECT_PORT=.*$", f"PREFECT_PORT={free_port()}", text, flags=re.M)
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    """The compose services started locally from a `.env`; yields (state, .env values, client env)."""
    root = tmp_path_factory.mktemp("compose_e2e")
    env_file = _env_file(root / ".env")
    values = read_env_file(env_file)
    layout = ServerLayout.at(root / "server")
    layout.root.mkdir(mode=0o700)
    # What the compose file gives its services, as the credentials of the local start.
    credentials = Credentials(
        username=values["MLFLOW_TRACKING_USERNAME"],
        mlflow_password=values["MLFLOW_TRACKING_PASSWORD"],
        prefect_auth_string=values["PREFECT_API_AUTH_STRING"],
        flask_secret_key=values["MLFLOW_FLASK_SERVER_SECRET_KEY"],
    )
    write_private_file(layout.credentials_file, json.dumps(asdict(credentials)))
    result = start_servers(
        layout.root,
        backend="postgres",
        auth=True,
        mlflow_port=int(values["MLFLOW_PORT"]),
        prefect_port=int(values["PREFECT_PORT"]),
        timeout=180,
    )
    try:
        yield result.state, values, compose_environment(env_file), root
    finally:
        stop_servers(layout.root)


def _skflow(*args: str, cwd: Path, client_env: dict[str, str]) -> subprocess.CompletedProcess:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(SERVICE_VARIABLES)}
    env = {**inherited, **client_env, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    env["SKFLOW_SERVER_DIR"] = str(cwd / "no-local-server")  # only the compose environment counts
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=400
    )


def _prefect_flow_runs(url: str, auth_string: str) -> list[dict]:
    request = urllib.request.Request(
        f"{url}/api/flow_runs/filter", data=b"{}", headers={"Content-Type": "application/json"}
    )
    request.add_header("Authorization", "Basic " + base64.b64encode(auth_string.encode()).decode())
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_skflow_runs_and_predicts_from_the_registry_against_the_compose_services(deployment, monkeypatch):
    state, values, client_env, root = deployment
    # The client environment points at the services as started, with the credentials they require.
    assert client_env["MLFLOW_TRACKING_URI"] == state.mlflow_url
    assert client_env["PREFECT_API_URL"] == f"{state.prefect_url}/api"
    assert state.databases["mlflow"].startswith("postgresql")  # MLflow's runs in PostgreSQL, as in compose

    project = root / "project"
    project.mkdir()
    config = {
        "experiment": "compose-e2e",
        "source": "sklearn:iris",
        "target": "target",
        "estimator": {"name": "LinearClassifier", "params": {"learning_rate": 0.1}},
        "fit": {"steps": 20, "batch_size": 32},
        "tracking": {"log_every_n_steps": 10, "registered_model": "compose-e2e-iris"},
    }
    (project / "pipeline.yaml").write_text(yaml.safe_dump(config))
    started = time.monotonic()
    done = _skflow("run", "pipeline.yaml", cwd=project, client_env=client_env)
    assert done.returncode == 0, done.stderr[-3000:]
    run_s = time.monotonic() - started

    from mlflow import MlflowClient

    for name, value in client_env.items():
        monkeypatch.setenv(name, value)
    client = MlflowClient(state.mlflow_url)
    (run,) = client.search_runs([client.get_experiment_by_name("compose-e2e").experiment_id])
    assert run.info.status == "FINISHED" and run.data.metrics["eval_accuracy"] > 0.5
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/")  # served by the server, as from S3
    artifacts = ServerLayout.at(state.directory).artifacts
    assert any(artifacts.rglob("MLmodel")), "the model's files are in the artifact destination"
    (version,) = client.search_model_versions("name='compose-e2e-iris'")
    flows = _prefect_flow_runs(state.prefect_url, values["PREFECT_API_AUTH_STRING"])
    assert [f["state_type"] for f in flows] == ["COMPLETED"]

    from flows.sources import read_source

    rows = read_source("sklearn:iris").drop(columns="target").head(30)
    rows.to_csv(project / "rows.csv", index=False)
    uri = f"models:/compose-e2e-iris/{version.version}"
    started = time.monotonic()
    done = _skflow("predict", uri, "rows.csv", "predictions.parquet", cwd=project, client_env=client_env)
    assert done.returncode == 0, done.stderr[-3000:]
    print(f"\nskflow run {run_s:.1f} s, skflow predict {time.monotonic() - started:.1f} s")
    predictions = pd.read_parquet(project / "predictions.parquet")
    assert len(predictions) == 30 and predictions.notna().all().all()
    assert len(_prefect_flow_runs(state.prefect_url, values["PREFECT_API_AUTH_STRING"])) == 2
