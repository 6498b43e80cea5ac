"""`python -m flows.server start|stop|status|env [--dir DIR] [options]`: the commands before (and
besides) the `skflow server` wiring. A stand-in parser: the main console script wires
`flows.server.commands` with the project's CLI library."""

from __future__ import annotations

import argparse
import sys

from flows.server import commands


def main(argv: list[str] | None = None) -> int:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--dir", dest="directory", help="the server directory (default: $SKFLOW_SERVER_DIR, else ./.skflow/server)"
    )
    parser = argparse.ArgumentParser(prog="python -m flows.server", description="Real Prefect and MLflow servers.")
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", parents=[common], help="start PostgreSQL, MLflow and Prefect (or say they run)")
    start.add_argument("--backend", choices=("postgres", "sqlite"), default="postgres")
    start.add_argument("--dsn", help="a PostgreSQL URL to use instead of pgserver's PostgreSQL")
    start.add_argument("--auth", action="store_true", help="require credentials (generated into credentials.json)")
    start.add_argument("--prefect-port", type=int)
    start.add_argument("--mlflow-port", type=int)
    start.add_argument("--timeout", type=float, default=120.0, help="seconds until both must be healthy")
    stop = sub.add_parser("stop", parents=[common], help="stop everything started, PostgreSQL included")
    stop.add_argument("--timeout", type=float, default=15.0, help="seconds before SIGKILL")
    status = sub.add_parser("status", parents=[common], help="URLs, health and the environment to export")
    status.add_argument("--show-secrets", action="store_true")
    sub.add_parser("env", parents=[common], help="export lines for eval, secrets included")
    args = vars(parser.parse_args(argv))
    command = args.pop("command")
    commands.PROG = "python -m flows.server"
    return getattr(commands, command)(**args)


if __name__ == "__main__":
    sys.exit(main())
