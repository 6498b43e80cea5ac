"""skflow server: a real Prefect server and a real MLflow tracking server on 127.0.0.1.

`skflow server start|stop|status` (`python -m flows.server ...` until the CLI wiring) runs them
backed by PostgreSQL (the `pgserver` wheel's, no root needed, or a DSN's) or by SQLite files, with
everything under one directory (`flows.server.layout`), optionally behind credentials (`--auth`).
Without a running server nothing here is used: flows keep Prefect's ephemeral server and MLflow's
SQLite file (`flows.tracking.store`), and nothing on that path imports this package.

- `start_servers`, `stop_servers`, `server_status` (flows.server.lifecycle): the plain functions.
- `use_server_environment` (flows.server.environment): what a flow calls when it starts, to pick up
  the server's credentials when its URLs point at it.
- `flows.server.commands`: the same as commands that print with rich and return exit codes.

Importing this package loads neither MLflow, Prefect, pgserver nor psycopg2.
"""

from flows.server.environment import client_environment, use_server_environment
from flows.server.layout import DIRECTORY_ENV, ServerLayout, server_directory
from flows.server.lifecycle import (
    ServerStatus,
    ServiceHealth,
    StartResult,
    StopResult,
    server_status,
    start_servers,
    stop_servers,
)
from flows.server.state import ServerState

__all__ = [
    "DIRECTORY_ENV",
    "ServerLayout",
    "ServerState",
    "ServerStatus",
    "ServiceHealth",
    "StartResult",
    "StopResult",
    "client_environment",
    "server_directory",
    "server_status",
    "start_servers",
    "stop_servers",
    "use_server_environment",
]
