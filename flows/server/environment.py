"""What a client of the servers needs in its environment, and `use_server_environment` to set it.

MLflow's and Prefect's clients find a server through environment variables: MLFLOW_TRACKING_URI and
PREFECT_API_URL, plus with `--auth` MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD and
PREFECT_API_AUTH_STRING. `status` prints them to export (`skflow server env` prints them for
`eval`); a flow calls `use_server_environment()` when it starts, so that a user who exported only
the URLs is authenticated without handling the secrets.

Reading the state and credentials files costs well under a millisecond and imports neither MLflow
nor Prefect; when no server was started it does nothing.
"""

from __future__ import annotations

import os
import sys
from urllib.parse import urlsplit

from flows.server.credentials import Credentials, load_credentials
from flows.server.layout import ServerLayout
from flows.server.state import ServerState, read_state

__all__ = ["client_environment", "use_server_environment"]


def client_environment(state: ServerState, credentials: Credentials | None = None) -> dict[str, str]:
    """The variables a client exports to use the servers of `state` (credentials with auth)."""
    env = {"PREFECT_API_URL": state.prefect_api_url, "MLFLOW_TRACKING_URI": state.mlflow_url}
    if state.auth and credentials is not None:
        env.update(credentials.mlflow_client_environment())
        env.update(credentials.prefect_client_environment())
    return env


def use_server_environment(directory: str | os.PathLike | None = None, *, set_urls: bool = False) -> dict[str, str]:
    """Set, in this process, the credentials of the `skflow server` whose URLs the environment uses.

    When MLFLOW_TRACKING_URI points at this directory's MLflow server (127.0.0.1 or localhost, its
    port), MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD are set from `credentials.json`;
    when PREFECT_API_URL points at its Prefect server, PREFECT_API_AUTH_STRING. A variable already
    set is left alone (an explicit setting wins). Nothing happens when no server was started here,
    when it runs without `--auth`, or when the URLs point elsewhere (or nowhere: the embedded
    defaults stay the default).

    Call it when a flow or command starts, before it creates an MLflow or Prefect client. Prefect
    reads its settings when `prefect` is imported; if it already is, its global settings are
    refreshed (`prefect.context.refresh_global_settings_context`). A `temporary_settings` block
    already open keeps its own values.

    Args:
        directory: the server directory. default=None: `$SKFLOW_SERVER_DIR`, else `./.skflow/server`.
        set_urls: also set MLFLOW_TRACKING_URI and PREFECT_API_URL to this server when they are
            unset and its processes run. default=False.

    Returns:
        the variables it set (name -> value; values may be secrets: do not log them).

    Example:
        >>> use_server_environment("/nonexistent")  # no server was started there: nothing to do
        {}
    """
    layout = ServerLayout.at(directory)
    try:
        state = read_state(layout.state_file)
    except ValueError:
        return {}
    if state is None:
        return {}
    updates: dict[str, str] = {}
    if set_urls and state.phase == "running" and all(state.alive().values()):
        for key, value in client_environment(state).items():
            if not os.environ.get(key):
                updates[key] = value
    credentials = load_credentials(layout.credentials_file) if state.auth else None
    if credentials is not None:
        current = {**os.environ, **updates}
        wanted = {}
        if _same_server(current.get("MLFLOW_TRACKING_URI"), state.mlflow_url):
            wanted.update(credentials.mlflow_client_environment())
        if _same_server(current.get("PREFECT_API_URL"), state.prefect_api_url):
            wanted.update(credentials.prefect_client_environment())
        updates.update({k: v for k, v in wanted.items() if not os.environ.get(k)})
    os.environ.update(updates)
    prefect_context = sys.modules.get("prefect.context")
    if prefect_context is not None and any(k.startswith("PREFECT_") for k in updates):
        refresh = getattr(prefect_context, "refresh_global_settings_context", None)
        if refresh is not None:
            refresh()
    return updates


def _same_server(url: str | None, server_url: str) -> bool:
    """Whether `url` names `server_url` (localhost and 127.0.0.1 alike; a trailing slash ignored)."""
    if not url:
        return False
    return _normalized(url) == _normalized(server_url)


def _normalized(url: str) -> tuple[str, str, int | None, str]:
    parts = urlsplit(url.strip())
    host = parts.hostname or ""
    if host == "localhost":
        host = "127.0.0.1"
    try:
        port = parts.port
    except ValueError:
        port = None
    return parts.scheme.lower(), host, port, parts.path.rstrip("/")
