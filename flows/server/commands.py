"""`skflow server start|stop|status|env`: the command-line face of `flows.server`.

Each function takes plain arguments, prints with rich, and returns the exit code, so that any CLI
library can wire it (`python -m flows.server` does, with argparse):

- `start`: 0 started, or already running (says so and prints the status); 1 a service failed to
  start (the end of its log is printed; whatever was started is stopped); 2 invalid arguments;
  130 interrupted (Ctrl-C; what was started is stopped too).
- `stop`: 0 stopped, or nothing to stop (a stale state is cleaned); 1 a process survived SIGKILL.
- `status`: 0 running and healthy; 1 running but a service is down or unhealthy; 3 not running.
  It prints the URLs, each service's health, and the environment to export; with `--auth` the
  secrets are masked unless `show_secrets`.
- `env`: `export NAME=value` lines, secrets included, for `eval "$(skflow server env)"`; 3 if not
  running.
"""

from __future__ import annotations

import os
import shlex

from rich.console import Console
from rich.table import Table
from rich.text import Text

from flows.server.credentials import load_credentials
from flows.server.environment import client_environment
from flows.server.layout import ServerLayout
from flows.server.lifecycle import ServerStatus, server_status, start_servers, stop_servers

__all__ = ["PROG", "compose_env", "env", "start", "status", "stop"]

PROG = "skflow server"  # how the commands are invoked, in hints (`python -m flows.server` sets its own)
SECRET_VARIABLES = ("MLFLOW_TRACKING_PASSWORD", "PREFECT_API_AUTH_STRING")
NOT_RUNNING = 3


def _console(stderr: bool = False) -> Console:
    return Console(highlight=False, soft_wrap=True, stderr=stderr)


def start(
    directory: str | os.PathLike | None = None,
    backend: str = "postgres",
    dsn: str | None = None,
    auth: bool = False,
    prefect_port: int | None = None,
    mlflow_port: int | None = None,
    timeout: float = 120.0,
) -> int:
    """Start the servers (see `flows.server.start_servers` for the arguments), print their status.

    Returns:
        0 started or already running, 1 a service failed to start, 2 an invalid argument, 130
        interrupted.
    """
    out, err = _console(), _console(stderr=True)
    target = ServerLayout.at(directory).root
    out.print(f"Starting the skflow servers in {target} ...")
    try:
        result = start_servers(
            directory,
            backend=backend,
            dsn=dsn,
            auth=auth,
            prefect_port=prefect_port,
            mlflow_port=mlflow_port,
            timeout=timeout,
        )
    except ValueError as exc:
        err.print(f"[red]Error:[/red] {exc}", markup=True)
        return 2
    except (RuntimeError, TimeoutError, OSError) as exc:
        err.print(f"[red]Could not start the servers:[/red] {exc}", markup=True)
        return 1
    except KeyboardInterrupt:  # start_servers has stopped what it launched
        err.print("Interrupted: whatever this start had launched is stopped.")
        return 130
    for line in result.cleaned:
        out.print(f"[yellow]{line}[/yellow]")
    if result.already_running:
        out.print(f"[green]Already running[/green] in {target}; nothing was started.")
        for option in result.ignored:
            out.print(f"[yellow]Not applied[/yellow]: {option}. Run `{PROG} stop` first to change it.")
    else:
        times = ", ".join(f"{name} {s:.1f} s" for name, s in result.state.startup_s.items() if name != "total")
        out.print(f"[green]Started[/green] in {result.state.startup_s['total']:.1f} s ({times}).")
    _print_status(out, server_status(directory), show_secrets=False)
    return 0


def stop(directory: str | os.PathLike | None = None, timeout: float = 15.0) -> int:
    """Stop the servers and the PostgreSQL skflow started; nothing is left running.

    Returns:
        0 stopped or nothing to stop, 1 a process survived SIGKILL (its pid is printed).
    """
    out = _console()
    target = ServerLayout.at(directory).root
    try:
        result = stop_servers(directory, timeout=timeout)
    except (ValueError, TimeoutError) as exc:
        _console(stderr=True).print(f"[red]Could not stop the servers:[/red] {exc}")
        return 1
    if result.stale:
        out.print("[yellow]Stale state cleaned[/yellow]: some recorded processes had already exited.")
    if result.stopped:
        out.print(f"[green]Stopped[/green] {', '.join(result.stopped)} in {result.elapsed_s:.1f} s ({target}).")
    else:
        out.print(f"Nothing was running in {target}.")
    if result.survivors:
        _console(stderr=True).print(f"[red]Still running after SIGKILL:[/red] pids {result.survivors}")
        return 1
    return 0


def status(directory: str | os.PathLike | None = None, show_secrets: bool = False) -> int:
    """Print the URLs, each service's health and the environment to export.

    Returns:
        0 running and healthy, 1 running with a service down or unhealthy, 3 not running.
    """
    out = _console()
    try:
        current = server_status(directory)
    except ValueError as exc:
        _console(stderr=True).print(f"[red]Error:[/red] {exc}")
        return 1
    _print_status(out, current, show_secrets)
    if current.state is None:
        return NOT_RUNNING
    return 0 if current.healthy else 1


def env(directory: str | os.PathLike | None = None) -> int:
    """Print `export` lines for the running servers, secrets included (for `eval`).

    Returns:
        0, or 3 when no server runs (a message on stderr, nothing on stdout).
    """
    layout = ServerLayout.at(directory)
    current = server_status(directory)
    if current.state is None:
        _console(stderr=True).print(f"No skflow server runs in {layout.root}; start one with `{PROG} start`.")
        return NOT_RUNNING
    credentials = load_credentials(layout.credentials_file)
    for name, value in client_environment(current.state, credentials).items():
        print(f"export {name}={shlex.quote(value)}")
    return 0


def compose_env(env_file: str | os.PathLike) -> int:
    """Print `export` lines for infra/compose's services, from the deployment's `.env` file.

    Returns:
        0, or 2 when the file is missing or incomplete (the reason on stderr, nothing on stdout).
    """
    from flows.server.compose import compose_environment

    try:
        environment = compose_environment(env_file)
    except (FileNotFoundError, ValueError) as exc:
        _console(stderr=True).print(str(exc), markup=False, highlight=False)
        return 2
    for name, value in environment.items():
        print(f"export {name}={shlex.quote(value)}")
    return 0


def _print_status(out: Console, current: ServerStatus, show_secrets: bool) -> None:
    if current.state is None:
        if current.stale:
            out.print("[yellow]Stale state cleaned[/yellow]: its processes had all exited.")
        out.print(f"No skflow server runs in {current.directory}. Start one with `{PROG} start`.")
        out.print(
            "Without one, flows use the embedded defaults: Prefect's ephemeral server, MLflow on mlruns/mlflow.db."
        )
        return
    state = current.state
    summary = f"backend {state.backend}" + (" (DSN)" if state.postgres == "dsn" else "")
    summary += ", auth on" if state.auth else ", no auth"
    out.print(f"skflow server in {current.directory}: {summary}, started {state.started_at}")
    table = Table("service", "URL", "pid", "health")
    table.add_column("data", overflow="fold")
    for service in current.services:
        health = (
            "[green]healthy[/green]"
            if service.healthy
            else "[red]down[/red]"
            if not service.alive
            else "[red]unhealthy[/red]"
        )
        table.add_row(service.name, service.url or "-", str(service.pid or "-"), health, Text(service.detail))
    out.print(table)
    for note in state.notes:
        out.print(f"[yellow]Note[/yellow]: {note}")
    credentials = load_credentials(ServerLayout.at(current.directory).credentials_file) if state.auth else None
    out.print("Environment to export:")
    for name, value in client_environment(state, credentials).items():
        shown = value if show_secrets or name not in SECRET_VARIABLES else "********"
        out.print(f"  export {name}={shlex.quote(shown)}", markup=False)
    if state.auth:
        out.print(
            f"The secrets are in {ServerLayout.at(current.directory).credentials_file} (mode 0600): "
            f'`eval "$({PROG} env)"` sets all of these; skflow\'s flows need only the two URLs '
            "(they call flows.server.use_server_environment).",
            markup=False,
        )
