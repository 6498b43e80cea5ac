"""Where `skflow server` keeps everything: one directory, laid out the same way every time.

The directory is `directory` when given, else `$SKFLOW_SERVER_DIR`, else `./.skflow/server` in the
current directory (the project). Nothing outside it is written, except what pgserver itself keeps
in its runtime folder (a lock file, and the socket when the data path is too long for one)::

    <directory>/                 mode 0700, as are its folders (pgserver run as root loosens the
                                 directories above PGDATA: see infra/README.md)
        .gitignore               "*": the folder never shows up in `git status`
        .lock                    held while a start or a stop runs
        state.json               mode 0600: pids, ports, URLs, backend (no secrets)
        credentials.json         mode 0600, with --auth: the MLflow user and password, Prefect's
                                 auth string, MLflow's Flask secret key
        postgres/                PGDATA of the pgserver PostgreSQL (its own log: postgres/log)
        mlflow/                  the MLflow server's working directory
            artifacts/           what `--artifacts-destination` serves (mlflow-artifacts:/)
            mlflow.db            the tracking database with --backend sqlite
            basic_auth.ini       with --auth: MLflow's auth config (mode 0600)
            basic_auth.db        with --auth: MLflow's users and permissions
        prefect/                 PREFECT_HOME of the Prefect server
            prefect.db           Prefect's database on SQLite
        logs/
            mlflow.log, prefect.log, postgres.log (the launcher's output)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEFAULT_DIRECTORY", "DIRECTORY_ENV", "ServerLayout", "server_directory"]

DEFAULT_DIRECTORY = Path(".skflow") / "server"
DIRECTORY_ENV = "SKFLOW_SERVER_DIR"


def server_directory(directory: str | os.PathLike | None = None) -> Path:
    """The absolute server directory: `directory`, else `$SKFLOW_SERVER_DIR`, else `./.skflow/server`.

    Example:
        >>> server_directory("/srv/skflow")
        PosixPath('/srv/skflow')
    """
    chosen = directory if directory is not None else os.environ.get(DIRECTORY_ENV) or DEFAULT_DIRECTORY
    return Path(chosen).expanduser().absolute()


@dataclass(frozen=True)
class ServerLayout:
    """The paths inside one server directory (see the module docstring)."""

    root: Path

    @classmethod
    def at(cls, directory: str | os.PathLike | None = None) -> ServerLayout:
        """The layout of `server_directory(directory)`."""
        return cls(server_directory(directory))

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def credentials_file(self) -> Path:
        return self.root / "credentials.json"

    @property
    def lock_file(self) -> Path:
        return self.root / ".lock"

    @property
    def pgdata(self) -> Path:
        return self.root / "postgres"

    @property
    def mlflow_home(self) -> Path:
        return self.root / "mlflow"

    @property
    def artifacts(self) -> Path:
        return self.mlflow_home / "artifacts"

    @property
    def mlflow_sqlite(self) -> Path:
        return self.mlflow_home / "mlflow.db"

    @property
    def mlflow_auth_config(self) -> Path:
        return self.mlflow_home / "basic_auth.ini"

    @property
    def mlflow_auth_db(self) -> Path:
        return self.mlflow_home / "basic_auth.db"

    @property
    def prefect_home(self) -> Path:
        return self.root / "prefect"

    @property
    def prefect_sqlite(self) -> Path:
        return self.prefect_home / "prefect.db"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def log(self, service: str) -> Path:
        """The log file of `service` (mlflow, prefect, postgres)."""
        return self.logs / f"{service}.log"

    def create(self) -> None:
        """Create the directory tree (mode 0700 for the root) and its `.gitignore`."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        for path in (self.mlflow_home, self.artifacts, self.prefect_home, self.logs):
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
        gitignore = self.root / ".gitignore"
        if not gitignore.exists():
            gitignore.write_text("# created by skflow server: nothing here belongs in git\n*\n")
