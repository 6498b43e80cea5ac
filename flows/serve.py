"""`skflow serve CONFIG --cron "0 3 * * *"` (or `--interval SECONDS`): scheduled retraining.

`serve_config` serves the retraining flow as a Prefect deployment whose default parameters are the
config, on a cron or interval schedule, and runs in the foreground until Ctrl-C (Prefect's
`flow.serve`): the process polls the Prefect server for runs of the deployment and executes each in
a child process. The same deployment runs ad hoc from the Prefect UI ("Run" on the deployment, with
the config as an editable form) or `prefect deployment run FLOW/DEPLOYMENT`.

Schedules need a real Prefect server: only its scheduler service creates the runs of a schedule, and
Prefect's ephemeral server refuses to ("Cannot schedule flows on an ephemeral server"). So
`require_prefect_server` checks PREFECT_API_URL names a server that answers (and accepts skflow's
credentials) before anything is registered, and refuses with the fix (`skflow server start`, then
`eval "$(skflow server env)"`) instead of serving a schedule nothing would ever fire. When a
`skflow server` runs in the default directory and PREFECT_API_URL / MLFLOW_TRACKING_URI are unset,
its URLs (and `--auth` credentials) are used.

When the process stops, Prefect pauses the deployment's schedule (`pause_on_shutdown`): no runs pile
up for a runner that is gone; serving again resumes it.

The flow served is `flows.retrain:retrain_flow` when that module exists, else `flows.pipelines:
train_flow` (same parameter, `config`).
"""

from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

__all__ = [
    "NO_API_URL",
    "Schedule",
    "ServeError",
    "check_schedule",
    "check_servable",
    "deployment_name",
    "require_prefect_server",
    "serve_config",
    "served_flow",
]

HEALTH_TIMEOUT_S = 5.0
_FIX = (
    'Start one with `skflow server start`, then `eval "$(skflow server env)"` (or set PREFECT_API_URL '
    "to your Prefect server's API, e.g. http://127.0.0.1:4200/api)."
)


NO_API_URL = (
    "skflow serve needs a real Prefect server, and PREFECT_API_URL is not set: Prefect's ephemeral server "
    f"cannot run schedules, so nothing would ever run. {_FIX}"
)


class ServeError(ValueError):
    """`skflow serve` cannot serve: a bad schedule, or no real Prefect server (the message says the fix)."""


@dataclass(frozen=True)
class Schedule:
    """When the deployment runs: a cron expression, an interval in seconds, or neither (ad hoc only)."""

    cron: str | None = None
    interval: float | None = None

    def serve_arguments(self) -> dict[str, Any]:
        """The keyword arguments of `Flow.serve` for this schedule."""
        if self.cron is not None:
            return {"cron": self.cron}
        if self.interval is not None:
            return {"interval": self.interval}
        return {}

    def describe(self) -> str:
        """`cron '0 3 * * *'`, `every 600 s` or `ad hoc only`."""
        if self.cron is not None:
            return f"cron {self.cron!r}"
        if self.interval is not None:
            return f"every {self.interval:g} s"
        return "ad hoc only (no schedule)"


def check_schedule(cron: str | None = None, interval: float | None = None) -> Schedule:
    """Validate `--cron` / `--interval` before anything starts.

    Raises:
        ServeError: both given, a cron expression Prefect rejects, or an interval that is not positive.
    """
    if cron is not None and interval is not None:
        raise ServeError("Give --cron or --interval, not both.")
    if interval is not None and not interval > 0:
        raise ServeError(
            f"Invalid value for argument `--interval`. Received: interval={interval!r}. Expected a positive "
            "number of seconds."
        )
    if cron is not None:
        from prefect.client.schemas.schedules import CronSchedule
        from pydantic import ValidationError

        try:
            CronSchedule(cron=cron)
        except ValidationError:
            raise ServeError(
                f"Invalid value for argument `--cron`. Received: cron={cron!r}. Expected a cron expression of "
                "five fields (minute hour day-of-month month day-of-week), e.g. '0 3 * * *' for 03:00 every day."
            ) from None
    return Schedule(cron=cron, interval=interval)


def served_flow() -> Any:
    """The flow `skflow serve` serves: `flows.retrain.retrain_flow` (imported here: it loads TensorFlow)."""
    from flows.retrain import retrain_flow

    return retrain_flow


def check_servable(config: Any) -> None:
    """What the retraining flow needs of the config beyond loading it (`check_retrainable`: logged
    models, a metric to judge them on), checked before anything is served.

    Raises:
        ConfigError: naming the field to set.
    """
    config.check_retrainable()


def deployment_name(experiment: str) -> str:
    """The default deployment name: the experiment, in characters a URL and `prefect deployment run` take."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", experiment).strip("-") or "skflow"


def require_prefect_server(timeout: float = HEALTH_TIMEOUT_S) -> str:
    """The API URL of the real Prefect server this process uses; refuses when there is none.

    Reads Prefect's settings (PREFECT_API_URL, from the environment or the active profile) and asks
    the server for one flow with the configured credentials (PREFECT_API_AUTH_STRING).

    Args:
        timeout: seconds for each request. default=5.0.

    Returns:
        the API URL (`http://HOST:PORT/api`).

    Raises:
        ServeError: PREFECT_API_URL unset (runs would go to the ephemeral server, which cannot
            schedule), the server does not answer, or it refuses the credentials.
    """
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    api_url = settings.api.url
    if not api_url:
        raise ServeError(NO_API_URL)
    api_url = api_url.rstrip("/")
    request = urllib.request.Request(
        f"{api_url}/flows/filter",
        data=json.dumps({"limit": 1}).encode(),
        headers={"Content-Type": "application/json"},
    )
    auth = settings.api.auth_string
    if auth is not None:
        secret = auth.get_secret_value() if hasattr(auth, "get_secret_value") else str(auth)
        request.add_header("Authorization", "Basic " + base64.b64encode(secret.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            pass
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            raise ServeError(
                f"The Prefect server at {api_url} refused skflow's credentials (HTTP 401). Set "
                'PREFECT_API_AUTH_STRING: `eval "$(skflow server env)"` for a `skflow server --auth`.'
            ) from None
        raise ServeError(f"The Prefect server at {api_url} answered HTTP {exc.code}. {_FIX}") from None
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ServeError(f"No Prefect server answers at PREFECT_API_URL={api_url} ({reason}). {_FIX}") from None
    return api_url


def serve_config(config: Any, schedule: Schedule, name: str | None = None, limit: int | None = 1) -> None:
    """Serve the retraining flow with `config` as its parameters, in the foreground until Ctrl-C.

    Args:
        config: the pipeline (`flows.config.PipelineConfig`), already loaded and checked.
        schedule: from `check_schedule`.
        name: the deployment's name. default=None: the experiment's name.
        limit: runs of this deployment executed at once by this process. default=1 (a run due
            while the previous one trains waits for it).

    Raises:
        ServeError: no real Prefect server (see `require_prefect_server`).
    """
    from prefect.types.entrypoint import EntrypointType

    require_prefect_server()
    flow = served_flow()
    name = name or deployment_name(config.experiment)
    try:
        flow.serve(
            name=name,
            parameters={"config": config.model_dump(mode="json")},
            description=f"skflow: retrain experiment {config.experiment!r} ({schedule.describe()}).",
            tags=["skflow", f"experiment:{config.experiment}"],
            limit=limit,
            entrypoint_type=EntrypointType.MODULE_PATH,
            **schedule.serve_arguments(),
        )
    finally:
        _pause(f"{flow.name}/{name}")


def _pause(full_name: str) -> None:
    """Pause the deployment. Prefect's runner means to on shutdown, but on SIGTERM (what systemd and
    Kubernetes send) its handler exits the process before the pause request is made."""
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    try:
        with get_client(sync_client=True) as client:
            client.pause_deployment(client.read_deployment_by_name(full_name).id)
    except ObjectNotFound:
        return  # serving failed before the deployment existed
    except Exception as exc:  # noqa: BLE001 - stopping anyway: say what stays scheduled
        print(f"Could not pause deployment {full_name} ({type(exc).__name__}: {exc}); its schedule stays active.")
