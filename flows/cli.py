"""`skflow`: run pipelines from the shell.

    skflow run CONFIG [--set key.path=value ...]   train (and predict) as the YAML config says
               [--workers N]                     ... the fit on N local worker processes
    skflow sweep CONFIG --grid FIELD=V1,V2 ...     a hyper-parameter sweep on Dask workers (`flows.sweep`)
    skflow retrain CONFIG [--set key.path=value ...] retrain on new data; promote the challenger if better
    skflow predict MODEL_URI SOURCE OUTPUT         batch predictions with a logged model
    skflow runs [EXPERIMENT]                       the runs, best first
    skflow ui                                      the MLflow UI on the project's runs
    skflow demo                                    two runs and a batch prediction on embedded defaults
    skflow server start|stop|status|env            real Prefect and MLflow servers (`flows.server`)
    skflow serve CONFIG --cron "0 3 * * *"         retrain on a schedule, as a Prefect deployment
    skflow compare RUN [RUN ...]                   the params that differ, metrics, overlaid curves

Exit codes: 0 done, 1 the run failed, 2 bad usage or an invalid config (nothing was started).

Nothing heavy is imported at module level (`skflow --help` must stay fast and must not load
TensorFlow, MLflow or Prefect); each command imports what it needs. `skflow run` starts Prefect's
local server first (`flows.foreground`), so it boots while TensorFlow imports.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

__all__ = ["app", "main"]

app = typer.Typer(
    name="skflow",
    help="skflow: TensorFlow Estimator pipelines on Prefect and MLflow.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

OK, FAILED, USAGE = 0, 1, 2


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"skflow {version('skflow')}")
        except PackageNotFoundError:
            typer.echo("skflow (not installed: run from a checkout)")
        raise typer.Exit(OK)


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """skflow: TensorFlow Estimator pipelines on Prefect and MLflow."""


def _err(message: str) -> None:
    typer.echo(message, err=True)


def _failed(what: str, exc: BaseException) -> typer.Exit:
    """Report a failed command on stderr (the error, then its notes: which MLflow run, where the
    checkpoints are) and return the exit to raise: status 1."""
    _err("\n".join([f"{what} failed: {type(exc).__name__}: {exc}", *getattr(exc, "__notes__", [])]))
    return typer.Exit(FAILED)


def _quiet_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _project_imports() -> None:
    """`model_fn: mymodels:fn` imports from the current directory, as `python -m` would."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())


@app.command()
def run(
    config: Annotated[str, typer.Argument(help="The pipeline's YAML file.")],
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a field: --set fit.epochs=5 (repeatable; values are YAML)."),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            help="Spread the fit over N local worker processes (a TF_CONFIG cluster on 127.0.0.1); "
            "still one flow run and one MLflow run, the chief's (flows.workers).",
        ),
    ] = 1,
) -> None:
    """Train (and predict) as the YAML config says: one Prefect flow run, one MLflow run."""
    from flows.foreground import start_local_server
    from flows.server import use_server_environment

    _quiet_tensorflow()
    _project_imports()
    use_server_environment()  # a `skflow server --auth`'s credentials, before Prefect reads its settings
    server = start_local_server()  # boots while the config is checked and TensorFlow imports
    from flows.config import ConfigError, load_config
    from flows.sources import check_columns

    try:
        pipeline = load_config(config, set_ or [])
        check_columns(pipeline)
    except ConfigError as exc:
        if server is not None:
            server.stop()
        _err(f"Invalid config: {exc}")
        raise typer.Exit(USAGE) from None
    from flows.foreground import without_heartbeats
    from flows.pipelines import train_flow

    try:
        if server is not None:
            server.wait()
        with without_heartbeats():
            if workers > 1:
                from flows.workers import run_distributed

                result = run_distributed(pipeline, workers)
            else:
                result = train_flow(pipeline)
    except KeyboardInterrupt:
        _err("Interrupted: the MLflow run is KILLED; its checkpoints stay in the model_dir.")
        raise typer.Exit(130) from None
    except Exception as exc:  # noqa: BLE001 - every failure is reported the same way
        raise _failed("Run", exc) from None
    from flows.reports import print_result

    print_result(result)


@app.command()
def sweep(
    config: Annotated[str, typer.Argument(help="The pipeline's YAML file.")],
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override a field for every trial: --set fit.steps=500.")
    ] = None,
    grid: Annotated[
        list[str] | None,
        typer.Option(help="Values of a field: --grid estimator.params.learning_rate=0.01,0.1 (repeatable; YAML)."),
    ] = None,
    sample: Annotated[
        list[str] | None,
        typer.Option(
            help="A field drawn with --random: uniform(a,b), loguniform(a,b), int(a,b), choice(x,y,...) (repeatable)."
        ),
    ] = None,
    random: Annotated[
        int | None, typer.Option(help="Draw this many trials (--sample fields, and --grid values uniformly).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the --random draws.")] = 0,
    metric: Annotated[
        str | None, typer.Option(help="Rank trials by this eval metric (default: the config's primary metric).")
    ] = None,
    workers: Annotated[
        int, typer.Option(help="Local Dask worker processes (0: one trial after another in this process).")
    ] = 2,
    address: Annotated[
        str | None, typer.Option(help="An existing Dask scheduler (tcp://HOST:8786) instead of local workers.")
    ] = None,
    model_name: Annotated[
        str | None,
        typer.Option(help="Register the best model here (default: tracking.registered_model, else the experiment)."),
    ] = None,
    register: Annotated[bool, typer.Option(help="Register the best trial's model with the alias challenger.")] = True,
) -> None:
    """Grid or random search over config fields: trials on Dask workers, an MLflow parent run with a
    child run per trial, the best trial's model registered as challenger. 0: a trial finished, 1: none."""
    if workers < 0:
        _err(f"--workers {workers}: expected 0 (in this process) or more local worker processes")
        raise typer.Exit(USAGE)
    if address is not None and "://" not in address:
        _err(f"--address {address!r}: expected a Dask scheduler address such as tcp://10.0.0.5:8786")
        raise typer.Exit(USAGE)
    from flows.foreground import start_local_server
    from flows.server import use_server_environment

    _quiet_tensorflow()
    _project_imports()
    use_server_environment()
    server = start_local_server()  # boots while the sweep is checked
    from flows.config import ConfigError
    from flows.sweep_space import prepare_sweep

    try:
        plan = prepare_sweep(config, set_ or [], grid or [], sample or [], random, seed, metric, model_name, register)
    except ConfigError as exc:
        if server is not None:
            server.stop()
        _err(f"Invalid sweep: {exc}")
        raise typer.Exit(USAGE) from None
    from flows.foreground import without_heartbeats
    from flows.sweep import print_sweep, sweep_flow

    typer.echo(f"{len(plan.trials)} trials on {address or (f'{workers} Dask workers' if workers else 'this process')}")
    try:
        if server is not None:
            server.wait()
        with without_heartbeats():
            result = sweep_flow(plan, workers=workers, address=address)
    except KeyboardInterrupt:
        _err("Interrupted: the sweep's MLflow run is KILLED.")
        raise typer.Exit(130) from None
    except Exception as exc:  # noqa: BLE001 - every failure is reported the same way
        raise _failed("Sweep", exc) from None
    print_sweep(result)
    raise typer.Exit(OK if any(o.status == "FINISHED" for o in result.outcomes) else FAILED)


@app.command()
def retrain(
    config: Annotated[str, typer.Argument(help="The pipeline's YAML file (its retrain: section).")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a field (repeatable; YAML).")] = None,
) -> None:
    """Retrain on the newest data; the challenger replaces the champion only if it is better by min_delta."""
    from flows.foreground import start_local_server, without_heartbeats
    from flows.server import use_server_environment

    _quiet_tensorflow()
    _project_imports()
    use_server_environment()
    server = start_local_server()
    from flows.config import ConfigError
    from flows.retrain import load_retrain_config, retrain_flow

    try:
        pipeline = load_retrain_config(config, set_ or [])
    except ConfigError as exc:
        server is not None and server.stop()
        _err(f"Invalid config: {exc}")
        raise typer.Exit(USAGE) from None
    try:
        server is not None and server.wait()
        with without_heartbeats():
            typer.echo(retrain_flow(pipeline).report())
    except KeyboardInterrupt:
        _err("Interrupted: the MLflow run is KILLED; the champion is unchanged.")
        raise typer.Exit(130) from None
    except Exception as exc:  # noqa: BLE001 - every failure is reported the same way
        raise _failed("Retrain", exc) from None


@app.command()
def predict(
    model_uri: Annotated[
        str, typer.Argument(help="models:/NAME@ALIAS, models:/NAME/VERSION, models:/<id> or runs:/...")
    ],
    source: Annotated[str, typer.Argument(help="CSV/Parquet file, directory or glob (or a SQL query with --url).")],
    output: Annotated[str, typer.Argument(help="Where the predictions go: a .parquet or .csv path.")],
    id_column: Annotated[str | None, typer.Option(help="A column copied next to the predictions.")] = None,
    url: Annotated[str | None, typer.Option(help="SOURCE is a SQL query on this SQLAlchemy URL.")] = None,
) -> None:
    """Predict every row of SOURCE with a logged model, streamed into OUTPUT."""
    if not output.lower().endswith((".parquet", ".csv")):
        _err(f"OUTPUT {output!r} must end in .parquet or .csv")
        raise typer.Exit(USAGE)
    from flows.foreground import start_local_server
    from flows.server import use_server_environment

    _quiet_tensorflow()
    use_server_environment()
    server = start_local_server()
    from flows.config import SqlSource
    from flows.foreground import without_heartbeats
    from flows.pipelines import batch_predict_flow

    rows = SqlSource(sql=source, url=url) if url else source
    try:
        if server is not None:
            server.wait()
        with without_heartbeats():
            result = batch_predict_flow(model_uri, rows, output, id_column=id_column)
    except Exception as exc:  # noqa: BLE001
        raise _failed("Prediction", exc) from None
    typer.echo(
        f"{result.rows} rows predicted into {result.output} in {result.seconds:.1f} s ({', '.join(result.columns)})"
    )


@app.command()
def runs(
    experiment: Annotated[str | None, typer.Argument(help="An experiment (default: every experiment).")] = None,
    limit: Annotated[int, typer.Option(help="At most this many runs per experiment.")] = 20,
) -> None:
    """The runs of the tracking store: name, status, key params and metrics, best first."""
    from flows.reports import print_runs

    if not print_runs(experiment, limit=limit):
        raise typer.Exit(FAILED)


@app.command()
def ui(
    port: Annotated[int, typer.Option(help="Port of the UI.")] = 5000,
) -> None:
    """The MLflow UI on the project's tracking store (127.0.0.1 only)."""
    from flows.reports import tracking_uri_for_ui

    uri = tracking_uri_for_ui()
    if uri.startswith(("http://", "https://")):
        typer.echo(f"The runs are on the tracking server {uri}: open it in a browser.")
        raise typer.Exit(OK)
    typer.echo(f"MLflow UI on {uri}: http://127.0.0.1:{port}  (Ctrl-C stops it)")
    command = [
        sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1",
        "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    os.execv(sys.executable, command)


@app.command()
def demo() -> None:
    """Two training runs with different hyper-parameters and a batch prediction with the better model."""
    from flows.demo import main as run_demo

    run_demo([])


@app.command()
def serve(
    config: Annotated[str, typer.Argument(help="The pipeline's YAML file (the deployment's parameters).")],
    cron: Annotated[str | None, typer.Option(help='A cron schedule, e.g. "0 3 * * *" (03:00 every day).')] = None,
    interval: Annotated[float | None, typer.Option(help="Run every this many seconds instead.")] = None,
    name: Annotated[str | None, typer.Option(help="The deployment's name (default: the experiment).")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a field: --set fit.epochs=5 (repeatable; values are YAML)."),
    ] = None,
) -> None:
    """Serve retraining as a Prefect deployment on a schedule, until Ctrl-C (needs a real Prefect server).

    The deployment also runs ad hoc: from the Prefect UI or `prefect deployment run FLOW/NAME`.
    """
    from flows.server import use_server_environment

    _quiet_tensorflow()
    _project_imports()
    use_server_environment(set_urls=True)  # a running `skflow server`, when no URL is set
    from flows.foreground import configured_api_url
    from flows.serve import NO_API_URL

    if configured_api_url() is None:  # refused at once, before Prefect or the config's source load
        _err(f"Not serving: {NO_API_URL}")
        raise typer.Exit(USAGE)
    from flows.config import ConfigError, load_config
    from flows.serve import ServeError, check_schedule, check_servable, serve_config
    from flows.sources import check_columns

    try:
        schedule = check_schedule(cron, interval)
        pipeline = load_config(config, set_ or [])
        check_columns(pipeline)
        check_servable(pipeline)
    except ServeError as exc:
        _err(str(exc))
        raise typer.Exit(USAGE) from None
    except ConfigError as exc:
        _err(f"Invalid config: {exc}")
        raise typer.Exit(USAGE) from None
    try:
        serve_config(pipeline, schedule, name=name)
    except ServeError as exc:
        _err(f"Not serving: {exc}")
        raise typer.Exit(USAGE) from None


@app.command()
def compare(
    run_ids: Annotated[list[str], typer.Argument(help="Two or more MLflow run ids.", metavar="RUN...")],
    output_dir: Annotated[str | None, typer.Option(help="Where the PNG goes (default: a temporary folder).")] = None,
    log_plot: Annotated[bool, typer.Option(help="Also log the PNG to each run as compare/<runs>.png.")] = True,
    json_: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON.")] = False,
) -> None:
    """The parameters that differ, the metrics, a PNG of the overlaid curves and the MLflow UI compare URL."""
    from flows.compare import compare_runs, describe
    from flows.server import use_server_environment

    use_server_environment()
    try:
        comparison = compare_runs(list(run_ids), output_dir=output_dir, log_plot=log_plot)
    except ValueError as exc:
        _err(str(exc))
        raise typer.Exit(USAGE) from None
    if json_:
        import json

        typer.echo(json.dumps(describe(comparison), indent=2, default=str))
        return
    from flows.compare import print_comparison

    print_comparison(comparison)


server_app = typer.Typer(
    help="Real Prefect and MLflow servers on 127.0.0.1 (PostgreSQL by default), for a team or for uptime.",
    no_args_is_help=True,
)
app.add_typer(server_app, name="server")
DirOption = Annotated[
    str | None, typer.Option("--dir", help="The server directory (default: $SKFLOW_SERVER_DIR, else ./.skflow/server).")
]


@server_app.command("start")
def server_start(
    directory: DirOption = None,
    backend: Annotated[str, typer.Option(help="postgres or sqlite.")] = "postgres",
    dsn: Annotated[str | None, typer.Option(help="A PostgreSQL URL to use instead of pgserver's PostgreSQL.")] = None,
    auth: Annotated[
        bool, typer.Option("--auth", help="Require credentials (generated into credentials.json).")
    ] = False,
    prefect_port: Annotated[int | None, typer.Option(help="Port of the Prefect server.")] = None,
    mlflow_port: Annotated[int | None, typer.Option(help="Port of the MLflow server.")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds until both must be healthy.")] = 120.0,
) -> None:
    """Start PostgreSQL, MLflow and Prefect (or say they run). 0 started, 1 failed, 2 bad arguments."""
    from flows.server import commands

    if backend not in ("postgres", "sqlite"):
        _err(f"--backend {backend!r}: expected postgres or sqlite")
        raise typer.Exit(USAGE)
    raise typer.Exit(commands.start(directory, backend, dsn, auth, prefect_port, mlflow_port, timeout))


@server_app.command("stop")
def server_stop(
    directory: DirOption = None,
    timeout: Annotated[float, typer.Option(help="Seconds before SIGKILL.")] = 15.0,
) -> None:
    """Stop everything `skflow server start` started, PostgreSQL included."""
    from flows.server import commands

    raise typer.Exit(commands.stop(directory, timeout))


@server_app.command("status")
def server_status(
    directory: DirOption = None,
    show_secrets: Annotated[bool, typer.Option("--show-secrets", help="Print the credentials unmasked.")] = False,
) -> None:
    """URLs, health and the environment to export. 0 healthy, 1 a service is down, 3 not running."""
    from flows.server import commands

    raise typer.Exit(commands.status(directory, show_secrets))


@server_app.command("env")
def server_env(
    directory: DirOption = None,
    compose: Annotated[
        str | None,
        typer.Option(
            "--compose",
            help="The .env file of infra/compose's deployment: print the environment for those services instead.",
        ),
    ] = None,
) -> None:
    """`export NAME=value` lines for `eval "$(skflow server env)"`, secrets included; 3 if not running.

    With `--compose infra/compose/.env`, the lines for the docker compose deployment's services
    (its published ports on 127.0.0.1, MLflow's admin, Prefect's auth string); 2 if the file is
    missing or still holds the template's placeholders.
    """
    from flows.server import commands

    if compose is not None:
        if directory is not None:
            _err("--compose and --dir name different deployments: give one of them.")
            raise typer.Exit(USAGE)
        raise typer.Exit(commands.compose_env(compose))
    raise typer.Exit(commands.env(directory))


def main() -> None:
    """The `skflow` console script."""
    from flows.foreground import exit_now

    try:
        app()
    except SystemExit as exc:
        code = exc.code
        exit_now(code if isinstance(code, int) else (0 if code is None else 1))
    exit_now(OK)


if __name__ == "__main__":
    main()
