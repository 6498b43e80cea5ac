"""The client environment for the team deployment of `infra/compose`: what a laptop (or CI) exports
to run skflow against those services.

`compose_environment(env_file)` reads the deployment's `.env` file (the one `docker compose
--env-file` reads) and returns the variables MLflow's and Prefect's clients read:
`MLFLOW_TRACKING_URI` and `PREFECT_API_URL` (the ports the compose file publishes on 127.0.0.1),
`MLFLOW_TRACKING_USERNAME`/`MLFLOW_TRACKING_PASSWORD` (the MLflow admin the server creates from
the same file) and `PREFECT_API_AUTH_STRING` (the string the Prefect server requires).
"""

from __future__ import annotations

import os
import shlex

__all__ = ["compose_environment", "read_env_file"]


def read_env_file(path: str | os.PathLike) -> dict[str, str]:
    """`NAME=value` lines of a docker compose `.env` file (comments and blank lines skipped; quotes
    around a value removed).

    Raises:
        FileNotFoundError: no such file, naming the template to copy.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such .env file; copy infra/compose/.env.template and set its values.")
    values = {}
    with open(path) as f:
        for raw in f:
            line = raw.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            name, _, value = line.partition("=")
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                value = value[1:-1]
            values[name.strip()] = value
    return values


def compose_environment(env_file: str | os.PathLike, host: str = "127.0.0.1") -> dict[str, str]:
    """The variables skflow's clients need for the services of `infra/compose/docker-compose.yml`.

    Raises:
        ValueError: a variable the deployment needs is missing from the file, or still holds the
            template's `CHANGE-...` placeholder.
    """
    values = read_env_file(env_file)
    needed = (
        "MLFLOW_PORT",
        "PREFECT_PORT",
        "MLFLOW_TRACKING_USERNAME",
        "MLFLOW_TRACKING_PASSWORD",
        "PREFECT_API_AUTH_STRING",
    )
    missing = [n for n in needed if not values.get(n)]
    if missing:
        raise ValueError(f"{env_file} lacks {missing}: the deployment and its clients need them (see .env.template).")
    placeholders = sorted(n for n, v in values.items() if v.startswith("CHANGE"))
    if placeholders:
        raise ValueError(f"{env_file} still has template placeholders for {placeholders}: set real values first.")
    return {
        "MLFLOW_TRACKING_URI": f"http://{host}:{values['MLFLOW_PORT']}",
        "MLFLOW_TRACKING_USERNAME": values["MLFLOW_TRACKING_USERNAME"],
        "MLFLOW_TRACKING_PASSWORD": values["MLFLOW_TRACKING_PASSWORD"],
        "PREFECT_API_URL": f"http://{host}:{values['PREFECT_PORT']}/api",
        "PREFECT_API_AUTH_STRING": values["PREFECT_API_AUTH_STRING"],
    }


def export_lines(environment: dict[str, str]) -> str:
    """`export NAME=value` lines, shell-quoted, for `eval`."""
    return "\n".join(f"export {name}={shlex.quote(value)}" for name, value in environment.items())
