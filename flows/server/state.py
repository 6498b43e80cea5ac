"""The state file: which processes `skflow server start` left running, on which ports, at which URLs.

`state.json` (mode 0600, written atomically) is the only link between a `start` and the `stop` or
`status` that comes later, possibly from another shell. It holds no secret: passwords live in
`credentials.json`, and a DSN is recorded without its password.

A process is recorded with its pid *and* its start time (psutil's `create_time`): a pid alone can be
reused by an unrelated process after a crash or a reboot, and `stop` must never signal that one.
A state whose processes are all gone is stale; `start`, `stop` and `status` detect it and clean it.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "STATE_VERSION",
    "ProcessRecord",
    "ServerState",
    "read_state",
    "remove_state",
    "write_private_file",
    "write_state",
]

STATE_VERSION = 1


@dataclass(frozen=True)
class ProcessRecord:
    """One process `start` launched.

    Attributes:
        pid: its process id; for the Prefect and MLflow servers also its process group id
            (started with `start_new_session=True`); for PostgreSQL the postmaster's.
        create_time: its start time as psutil reports it, so that a reused pid is not mistaken for it.
        url: where it answers (None for PostgreSQL, which listens on a Unix socket only).
        log: its log file.
    """

    pid: int
    create_time: float
    url: str | None = None
    log: str | None = None

    def is_alive(self) -> bool:
        """Whether this very process still runs (a zombie or a reused pid does not count)."""
        import psutil

        try:
            process = psutil.Process(self.pid)
            return abs(process.create_time() - self.create_time) < 0.01 and process.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    @classmethod
    def of(cls, pid: int, url: str | None = None, log: str | os.PathLike | None = None) -> ProcessRecord:
        """A record of the running process `pid` (raises `psutil.NoSuchProcess` if it is gone)."""
        import psutil

        return cls(pid, psutil.Process(pid).create_time(), url, str(log) if log is not None else None)


@dataclass
class ServerState:
    """What runs, as `state.json` records it.

    Attributes:
        directory: the server directory.
        backend: "postgres" or "sqlite", as requested.
        auth: whether the servers were started with `--auth`.
        phase: "starting" until both servers answered their health check, then "running".
        processes: "mlflow", "prefect", and "postgres" when skflow started PostgreSQL (pgserver).
        mlflow_url: the tracking URI, `http://127.0.0.1:PORT`.
        prefect_url: the Prefect UI, `http://127.0.0.1:PORT`; its API is `prefect_api_url`.
        databases: where each server keeps its data ("mlflow", "prefect"): a path, or a URL without
            password.
        postgres: "pgserver", "dsn" or None (no PostgreSQL).
        notes: things the user should know about this start (e.g. a backend fallback).
        startup_s: seconds from the start command to each service's first healthy answer, and "total".
        started_at: ISO time of the start.
    """

    directory: str
    backend: str
    auth: bool
    phase: str
    processes: dict[str, ProcessRecord]
    mlflow_url: str
    prefect_url: str
    databases: dict[str, str] = field(default_factory=dict)
    postgres: str | None = None
    notes: list[str] = field(default_factory=list)
    startup_s: dict[str, float] = field(default_factory=dict)
    started_at: str = ""

    @property
    def prefect_api_url(self) -> str:
        return f"{self.prefect_url}/api"

    def alive(self) -> dict[str, bool]:
        """Whether each recorded process still runs."""
        return {name: record.is_alive() for name, record in self.processes.items()}

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["version"] = STATE_VERSION
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ServerState:
        data = dict(data)
        version = data.pop("version", None)
        if version != STATE_VERSION:
            raise ValueError(f"state file version {version!r}, expected {STATE_VERSION}")
        data["processes"] = {name: ProcessRecord(**record) for name, record in data["processes"].items()}
        return cls(**data)


def read_state(path: str | os.PathLike) -> ServerState | None:
    """The state recorded in `path`, or None if there is none.

    Raises:
        ValueError: the file exists but is not a state file this version of skflow wrote; the
            message names the file, which can be deleted once its processes are stopped by hand.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        return ServerState.from_json(json.loads(text))
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(
            f"{path} is not a state file of this skflow version ({exc}). Stop its processes by hand "
            "if any still run, then delete the file."
        ) from None


def write_state(path: str | os.PathLike, state: ServerState) -> None:
    """Write `state` to `path` atomically (a temporary file renamed over it), mode 0600."""
    write_private_file(path, json.dumps(state.to_json(), indent=2) + "\n")


def remove_state(path: str | os.PathLike) -> None:
    Path(path).unlink(missing_ok=True)


def write_private_file(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` atomically, readable and writable by the owner only (0600)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mkstemp creates it 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
