"""The credentials of `skflow server start --auth`: generated once, kept where only the user can read.

With `--auth` the MLflow server runs MLflow's basic-auth app and the Prefect server requires an
auth string; a request without them gets HTTP 401 (`/health` and `/api/health` stay open). The
secrets come from `secrets.token_urlsafe` the first time and are stored in
`<directory>/credentials.json` (mode 0600), then reused at every start: MLflow keeps its user's
password hash in `basic_auth.db` once created, so a new password would lock skflow out.

One user, `skflow`, is MLflow's admin on this server (a single-user, loopback-only service).
The secrets reach the servers through their environment (readable by the same user only), never
through a command line that `ps` shows. To rotate them: `stop`, delete `credentials.json` and
`mlflow/basic_auth.db`, `start --auth`.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from flows.server.layout import ServerLayout
from flows.server.state import write_private_file

__all__ = ["USERNAME", "Credentials", "load_credentials", "load_or_create_credentials", "write_mlflow_auth_config"]

USERNAME = "skflow"
# A successful password check is cached this long inside the MLflow server: without the cache each
# authenticated request costs ~4 s of PBKDF2 on these machines.
AUTH_CACHE_TTL_S = 300


@dataclass(frozen=True)
class Credentials:
    """The secrets of one server directory.

    Attributes:
        username: MLflow's user (its admin on this server), also the user part of Prefect's string.
        mlflow_password: that user's MLflow password.
        prefect_auth_string: `user:password` that Prefect clients send (PREFECT_API_AUTH_STRING).
        flask_secret_key: MLflow's MLFLOW_FLASK_SERVER_SECRET_KEY (signs its UI sessions).
    """

    username: str
    mlflow_password: str
    prefect_auth_string: str
    flask_secret_key: str

    @classmethod
    def generate(cls, username: str = USERNAME) -> Credentials:
        return cls(
            username=username,
            mlflow_password=secrets.token_urlsafe(24),
            prefect_auth_string=f"{username}:{secrets.token_urlsafe(24)}",
            flask_secret_key=secrets.token_urlsafe(32),
        )

    def mlflow_client_environment(self) -> dict[str, str]:
        """The variables MLflow's clients read for basic auth."""
        return {"MLFLOW_TRACKING_USERNAME": self.username, "MLFLOW_TRACKING_PASSWORD": self.mlflow_password}

    def prefect_client_environment(self) -> dict[str, str]:
        """The variable Prefect's clients read for the server's auth string."""
        return {"PREFECT_API_AUTH_STRING": self.prefect_auth_string}

    def mlflow_server_environment(self, layout: ServerLayout) -> dict[str, str]:
        """What `mlflow server --app-name basic-auth` needs in its environment."""
        return {
            "MLFLOW_AUTH_CONFIG_PATH": str(layout.mlflow_auth_config),
            "MLFLOW_AUTH_ADMIN_PASSWORD": self.mlflow_password,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": self.flask_secret_key,
        }

    def prefect_server_environment(self) -> dict[str, str]:
        """What `prefect server start` needs in its environment to require the auth string."""
        return {"PREFECT_SERVER_API_AUTH_STRING": self.prefect_auth_string}


def load_credentials(path: str | Path) -> Credentials | None:
    """The credentials stored in `path`, or None if the file does not exist."""
    try:
        return Credentials(**json.loads(Path(path).read_text()))
    except FileNotFoundError:
        return None


def load_or_create_credentials(layout: ServerLayout) -> Credentials:
    """The directory's credentials, generated and stored (mode 0600) on first use.

    Raises:
        RuntimeError: MLflow's user database exists without the credentials file: its password is
            unknown, so the server would refuse skflow. The message says how to reset it.
    """
    credentials = load_credentials(layout.credentials_file)
    if credentials is not None:
        return credentials
    if layout.mlflow_auth_db.exists():
        raise RuntimeError(
            f"{layout.mlflow_auth_db} exists but {layout.credentials_file} does not: MLflow's user "
            f"{USERNAME!r} has a password skflow no longer knows. Delete {layout.mlflow_auth_db} (it "
            "holds MLflow's users and permissions) and start again to generate new credentials."
        )
    credentials = Credentials.generate()
    write_private_file(layout.credentials_file, json.dumps(asdict(credentials), indent=2) + "\n")
    return credentials


def write_mlflow_auth_config(layout: ServerLayout, credentials: Credentials) -> Path:
    """Write MLflow's basic-auth config (MLFLOW_AUTH_CONFIG_PATH), mode 0600, and return its path.

    It places `basic_auth.db` in the directory (else MLflow creates it in its working directory),
    names the admin user, and caches password checks for `AUTH_CACHE_TTL_S` seconds.
    """
    text = (
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{layout.mlflow_auth_db}\n"
        f"admin_username = {credentials.username}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        f"auth_cache_ttl_seconds = {AUTH_CACHE_TTL_S}\n"
    )
    write_private_file(layout.mlflow_auth_config, text)
    return layout.mlflow_auth_config
