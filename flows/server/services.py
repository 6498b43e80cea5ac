"""How the two servers are started: their command lines, environments and health URLs.

- MLflow: `mlflow server --host 127.0.0.1 --port P --workers 1 --artifacts-destination
  <dir>/mlflow/artifacts` (artifacts served as `mlflow-artifacts:/`), its store given through
  MLFLOW_BACKEND_STORE_URI so that a DSN's password never shows in `ps`;
  MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false (else it starts ~5 job processes); with auth
  `--app-name basic-auth` and the variables of `Credentials.mlflow_server_environment`.
  Healthy when GET /health answers 200 (7-28 s on two shared cores).
- Prefect: `prefect server start --host 127.0.0.1 --port P`, PREFECT_HOME in the directory, its
  database through PREFECT_SERVER_DATABASE_CONNECTION_URL, the scheduler service on (cron schedules
  of deployments fire only on a real server), no analytics; with auth
  PREFECT_SERVER_API_AUTH_STRING. Healthy when GET /api/health answers 200 (9-12 s).

Neither server inherits the caller's PREFECT_* or MLFLOW_* variables: client settings such as
PREFECT_API_URL, PREFECT_HOME or MLFLOW_TRACKING_URI would otherwise change what the server does.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from flows.server.credentials import Credentials, write_mlflow_auth_config
from flows.server.layout import ServerLayout

__all__ = ["HOST", "ServiceSpec", "mlflow_spec", "prefect_spec", "server_environment"]

HOST = "127.0.0.1"


@dataclass(frozen=True)
class ServiceSpec:
    """What `launch` needs to start one server, and where it answers.

    Attributes:
        name: "mlflow" or "prefect".
        command: the command line (no secret in it).
        env: the complete environment of the process.
        cwd: its working directory (inside the server directory).
        log: the file its output is appended to.
        url: the base URL users and clients see.
        health_url: the URL that answers 200 once it serves requests.
    """

    name: str
    command: list[str]
    env: dict[str, str]
    cwd: Path
    log: Path
    url: str
    health_url: str


def server_environment() -> dict[str, str]:
    """The caller's environment without its PREFECT_* and MLFLOW_* variables."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}


def mlflow_spec(layout: ServerLayout, port: int, store_uri: str, credentials: Credentials | None = None) -> ServiceSpec:
    """`mlflow server` on 127.0.0.1:`port` storing runs in `store_uri` (basic auth with `credentials`)."""
    command = [sys.executable, "-m", "mlflow", "server", "--host", HOST, "--port", str(port), "--workers", "1"]
    env = {
        **server_environment(),
        "MLFLOW_BACKEND_STORE_URI": store_uri,
        "MLFLOW_ARTIFACTS_DESTINATION": str(layout.artifacts),
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    if credentials is not None:
        write_mlflow_auth_config(layout, credentials)
        command += ["--app-name", "basic-auth"]
        env.update(credentials.mlflow_server_environment(layout))
    url = f"http://{HOST}:{port}"
    return ServiceSpec("mlflow", command, env, layout.mlflow_home, layout.log("mlflow"), url, f"{url}/health")


def prefect_spec(
    layout: ServerLayout, port: int, database_url: str, credentials: Credentials | None = None
) -> ServiceSpec:
    """`prefect server start` on 127.0.0.1:`port` on the SQLAlchemy `database_url`, scheduler on
    (auth string required with `credentials`)."""
    command = [sys.executable, "-m", "prefect", "server", "start", "--host", HOST, "--port", str(port)]
    env = {
        **server_environment(),
        "PREFECT_HOME": str(layout.prefect_home),
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": database_url,
        "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "true",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    if credentials is not None:
        env.update(credentials.prefect_server_environment())
    url = f"http://{HOST}:{port}"
    return ServiceSpec("prefect", command, env, layout.prefect_home, layout.log("prefect"), url, f"{url}/api/health")
