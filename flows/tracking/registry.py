"""The model registry: register a logged model as a version, move aliases, load by alias.

`register_model(run_id, "iris")` registers the model the run logged (its latest, by step) as a new
version of the registered model "iris" (created if new); `set_alias("iris", "champion", version)`
points the alias at it (moving it from any other version); `load_model("models:/iris@champion")`
(`flows.tracking.load_model`) loads whichever version the alias names now.

Champion/challenger: `alias_new_version` gives a pipeline's new version its alias (the first
version of a registered model becomes `champion`, later ones `challenger`); the retraining flow
moves `champion` when a challenger wins. `version_by_alias`, `set_version_tags` and
`registered_model_tags` read and record what a retrain needs (the decision, the data fingerprint).
"""

from __future__ import annotations

from typing import Any

from flows.tracking.runs import TrackedRun
from flows.tracking.store import bounded_requests, get_client, resolve_store

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "alias_new_version",
    "get_alias_version",
    "register_model",
    "registered_model_tags",
    "set_alias",
    "set_registered_model_tag",
    "set_version_tags",
    "version_by_alias",
]

CHAMPION, CHALLENGER = "champion", "challenger"
_ABSENT = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND")


def register_model(model: TrackedRun | str, name: str, tracking_uri: str | None = None) -> str:
    """Register a logged model as a new version of registered model `name`.

    Args:
        model: a `models:/<model_id>` URI (`LoggedModelInfo.model_uri`), or a run (`TrackedRun`
            or run id) whose latest logged model to register.
        name: the registered model's name (created if it does not exist).
        tracking_uri: default: the run's, else `MLFLOW_TRACKING_URI`, else the embedded store.

    Returns:
        the new version, as a string ("1", "2", ...).

    Raises:
        ValueError: the run has logged no model.
    """
    from mlflow.exceptions import MlflowException

    if isinstance(model, TrackedRun):
        tracking_uri, model = tracking_uri or model.tracking_uri, model.run_id
    client = get_client(resolve_store(tracking_uri).tracking_uri)
    with bounded_requests():
        if model.startswith("models:/"):
            model_id = model[len("models:/") :]
        else:
            model_id = _latest_model_of(client, model)
        logged = client.get_logged_model(model_id)
        try:
            client.create_registered_model(name)
        except MlflowException as exc:
            if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
                raise
        # The source is the logged model's artifact location, not "models:/<id>": for that form
        # MLflow's SQL registry looks the model up through a default MlflowClient(), i.e. the
        # global tracking URI, which need not be this store's (it then fails, after creating a
        # ./mlflow.db in the current directory).
        version = client.create_model_version(
            name,
            logged.artifact_location,
            run_id=logged.source_run_id,
            model_id=model_id,
            await_creation_for=0,
        )
    return str(version.version)


def _latest_model_of(client: Any, run_id: str) -> str:
    outputs = client.get_run(run_id).outputs
    models = list(outputs.model_outputs) if outputs is not None else []
    if not models:
        raise ValueError(f"MLflow run {run_id} has logged no model; log one first (flows.tracking.log_model).")
    return max(models, key=lambda m: m.step).model_id


def set_alias(name: str, alias: str, version: str | int, tracking_uri: str | None = None) -> None:
    """Point `alias` of registered model `name` at `version` (moving it from another version)."""
    client = get_client(resolve_store(tracking_uri).tracking_uri)
    with bounded_requests():
        client.set_registered_model_alias(name, alias, str(version))


def get_alias_version(name: str, alias: str, tracking_uri: str | None = None) -> str | None:
    """The version `alias` of registered model `name` points at, or None when it points nowhere."""
    found = version_by_alias(name, alias, tracking_uri)
    return None if found is None else str(found.version)


def version_by_alias(name: str, alias: str, tracking_uri: str | None = None) -> Any:
    """The `ModelVersion` (MLflow's entity: version, run_id, model_id, source, tags) that `alias` of
    registered model `name` points at, or None (no such model or alias)."""
    from mlflow.exceptions import MlflowException

    client = get_client(resolve_store(tracking_uri).tracking_uri)
    try:
        with bounded_requests():
            return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code in _ABSENT:
            return None
        raise


def alias_new_version(name: str, version: str | int, tracking_uri: str | None = None) -> str:
    """Give a pipeline's new model version its alias: `champion` when the registered model has no
    champion yet (its first version), else `challenger`; returns the alias set.

    Two first versions registered at the same moment may both see no champion; the later one then
    holds the alias (MLflow moves it), which `version_by_alias` reports.
    """
    alias = CHALLENGER if get_alias_version(name, CHAMPION, tracking_uri) is not None else CHAMPION
    set_alias(name, alias, version, tracking_uri)
    return alias


def set_version_tags(name: str, version: str | int, tags: dict[str, str], tracking_uri: str | None = None) -> None:
    """Set tags on version `version` of registered model `name`."""
    client = get_client(resolve_store(tracking_uri).tracking_uri)
    with bounded_requests():
        for key, value in tags.items():
            client.set_model_version_tag(name, str(version), key, str(value))


def set_registered_model_tag(name: str, key: str, value: str, tracking_uri: str | None = None) -> None:
    """Set a tag on registered model `name` itself (e.g. the fingerprint of the last retrain's data)."""
    client = get_client(resolve_store(tracking_uri).tracking_uri)
    with bounded_requests():
        client.set_registered_model_tag(name, key, str(value))


def registered_model_tags(name: str, tracking_uri: str | None = None) -> dict[str, str] | None:
    """The tags of registered model `name`, or None when there is no such model."""
    from mlflow.exceptions import MlflowException

    client = get_client(resolve_store(tracking_uri).tracking_uri)
    try:
        with bounded_requests():
            return dict(client.get_registered_model(name).tags or {})
    except MlflowException as exc:
        if exc.error_code in _ABSENT:
            return None
        raise
