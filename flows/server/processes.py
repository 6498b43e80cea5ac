"""Launching, health-checking and stopping long-running processes, every wait bounded.

- `launch` starts a command in a new session (its own process group), detached from the caller's
  terminal and signals, logging to a file: the servers outlive the `start` command.
- `wait_healthy` polls each process's health URL until all answer 200, and fails early when one
  exits; `http_ok` is one such poll.
- `stop_processes` signals each process (a whole group for the servers: `mlflow server` runs its
  uvicorn worker as a child), waits, then SIGKILLs whatever is left; it returns the survivors,
  which should be none. `leftovers` lists what still runs of a set of processes (zombies excluded).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flows.server.state import ProcessRecord

__all__ = [
    "HealthCheck",
    "StartupError",
    "free_port",
    "http_ok",
    "launch",
    "leftovers",
    "port_accepts",
    "port_is_free",
    "processes_of",
    "stop_processes",
    "tail",
    "wait_healthy",
]

POLL_S = 0.2


def launch(command: list[str], env: Mapping[str, str], cwd: Path, log: Path) -> subprocess.Popen:
    """Start `command` in a new session, stdin closed, stdout and stderr appended to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(command)}\n".encode())
        out.flush()
        return subprocess.Popen(
            command,
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """Whether GET `url` answers HTTP 200 within `timeout` seconds."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError, ValueError):
        return False


@dataclass(frozen=True)
class HealthCheck:
    """A launched process and the URL that answers 200 once it is ready."""

    process: subprocess.Popen
    url: str
    log: Path


class StartupError(RuntimeError):
    """A server exited or did not become healthy in time; the message ends with its log's tail."""


def wait_healthy(checks: Mapping[str, HealthCheck], timeout: float, started: float | None = None) -> dict[str, float]:
    """Poll every check until all are healthy; return each one's seconds since `started`.

    Args:
        checks: name -> HealthCheck.
        timeout: seconds, counted from `started`, after which waiting stops.
        started: a `time.monotonic()` value. default=None: now.

    Raises:
        StartupError: one process exited, or not all were healthy after `timeout` seconds.
    """
    started = time.monotonic() if started is None else started
    ready: dict[str, float] = {}
    while True:
        for name, check in checks.items():
            if name in ready:
                continue
            if check.process.poll() is not None:
                raise StartupError(
                    f"the {name} server exited with code {check.process.returncode} while starting; "
                    f"the end of {check.log}:\n{tail(check.log)}"
                )
            if http_ok(check.url):
                ready[name] = round(time.monotonic() - started, 2)
        if len(ready) == len(checks):
            return ready
        if time.monotonic() - started > timeout:
            late = sorted(set(checks) - set(ready))
            logs = "\n".join(f"the end of {checks[n].log}:\n{tail(checks[n].log)}" for n in late)
            raise StartupError(f"{', '.join(late)} not healthy after {timeout:.0f} s; {logs}")
        time.sleep(POLL_S)


def tail(path: Path, lines: int = 15) -> str:
    """The last `lines` lines of a text file ("" if it cannot be read)."""
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def processes_of(record: ProcessRecord, group: bool) -> list[Any]:
    """The recorded process if it still runs, its descendants, and with `group` the other members
    of the process group it led (a server's children left behind when it died).

    A pid now held by another process means the recorded one is gone and its group id may have
    been reused with it: that group is not ours, and nothing of it is returned. The kernel never
    hands out a pid still in use as a group id, so a group that outlived its leader is the right one.
    """
    import psutil

    found: dict[int, psutil.Process] = {}
    if record.is_alive():
        leader = psutil.Process(record.pid)
        found[leader.pid] = leader
        try:
            found.update((child.pid, child) for child in leader.children(recursive=True))
        except psutil.Error:
            pass
    else:
        try:
            if abs(psutil.Process(record.pid).create_time() - record.create_time) >= 0.01:
                group = False  # the pid was reused (a zombie of the recorded process is not)
        except psutil.Error:
            pass
    if group:
        for process in psutil.process_iter():
            try:
                if os.getpgid(process.pid) == record.pid and process.create_time() >= record.create_time - 0.01:
                    found.setdefault(process.pid, process)
            except (OSError, psutil.Error):
                continue
    return [p for p in found.values() if _running(p)]


def stop_processes(targets: Iterable[tuple[ProcessRecord, bool, int]], timeout: float) -> list[Any]:
    """Stop processes and wait for them; SIGKILL whatever is left after `timeout` seconds.

    Args:
        targets: (record, group, signal) triples: with `group` the signal goes to the process
            group `record.pid` leads, else to the process alone (which stops its children itself,
            as the PostgreSQL postmaster does on SIGINT).
        timeout: seconds to wait after the signals before SIGKILL.

    Returns:
        the processes still running after SIGKILL and 5 more seconds (should be empty).
    """
    watched: dict[int, Any] = {}
    groups: list[int] = []
    for record, group, sig in targets:
        members = processes_of(record, group)
        watched.update((p.pid, p) for p in members)
        if not members:
            continue
        if group:
            groups.append(record.pid)
            _signal(os.killpg, record.pid, sig)
        elif record.is_alive():
            _signal(os.kill, record.pid, sig)
    alive = _wait_gone(list(watched.values()), timeout)
    if alive:
        for pgid in groups:
            _signal(os.killpg, pgid, signal.SIGKILL)
        for process in alive:
            _signal(process.kill)
        alive = _wait_gone(alive, 5.0)
    return alive


def _wait_gone(processes: list[Any], timeout: float) -> list[Any]:
    """Poll until none of `processes` runs or `timeout` passes; return those still running.

    A zombie counts as gone: psutil's `wait_procs` waits until it is reaped, which for a server
    re-parented to init can take seconds (and the caller's own children are reaped by their
    `Popen` objects, which would lose their exit status if reaped here).
    """
    deadline = time.monotonic() + timeout
    while True:
        alive = [p for p in processes if _running(p)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.05)


def leftovers(processes: Iterable[Any]) -> list[Any]:
    """Those of `processes` (psutil.Process objects) that still run."""
    return [p for p in processes if _running(p)]


def _running(process: Any) -> bool:
    import psutil

    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _signal(send, *args) -> None:
    try:
        send(*args)
    except (ProcessLookupError, PermissionError):
        pass


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could bind `host:port` now."""
    with socket.socket() as s:
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def port_accepts(port: int, host: str = "127.0.0.1", timeout: float = 1.0) -> bool:
    """Whether something listens on `host:port`."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
