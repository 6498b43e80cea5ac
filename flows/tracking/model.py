"""Log an Estimator as an MLflow pyfunc model, and load one back.

The model is the Estimator's SavedModel export wrapped by `flows/tracking/pyfunc_model.py`
("models from code": MLflow stores that file and runs it at load; nothing of ours is pickled),
with explicit pip requirements (the installed TensorFlow, numpy, pandas and MLflow versions;
MLflow's own requirement inference takes 17-19 s), a signature built from the SavedModel's
serving signature (named columns: float32 `feature_<i>` for a model fitted on an array) and an
input example. It is an MLflow 3 logged model (`models:/<model_id>`), linked to its run as an
output at the run's global step, and created through an explicit client: no active run, no
global tracking URI.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flows.tracking.runs import TrackedRun
from flows.tracking.store import bounded_requests, get_client, resolve_store

__all__ = ["LoggedModelInfo", "load_model", "log_model", "pip_requirements", "resolve_model_uri", "serving_frame"]

logger = logging.getLogger("skflow")

PYFUNC_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pyfunc_model.py")
_EXAMPLE_ROWS = 5
_MLFLOW_TYPES = {
    "float32": "float",
    "float64": "double",
    "int32": "integer",
    "int64": "long",
    "bool": "boolean",
    "string": "string",
}


@dataclass(frozen=True)
class LoggedModelInfo:
    """A model `log_model` logged.

    Attributes:
        model_id: the MLflow logged model's id.
        model_uri: `models:/<model_id>`, for `load_model` and `register_model`.
        run_id: the run it was logged from.
        signature: its MLflow `ModelSignature`.
    """

    model_id: str
    model_uri: str
    run_id: str
    signature: Any


def pip_requirements() -> list[str]:
    """Pinned requirements of the pyfunc model: the TensorFlow build, numpy, pandas and MLflow installed here."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for names in (("tensorflow-cpu", "tensorflow"), ("numpy",), ("pandas",), ("mlflow", "mlflow-skinny")):
        for name in names:
            try:
                out.append(f"{name}=={version(name)}")
                break
            except PackageNotFoundError:
                continue
    return out


def log_model(
    run: TrackedRun,
    estimator: Any = None,
    input_example: Any = None,
    export_dir: str | os.PathLike | None = None,
    name: str = "model",
    feature_names: Sequence[str] | None = None,
    step: int = 0,
) -> LoggedModelInfo:
    """Log the estimator's SavedModel as a pyfunc model of `run`.

    Args:
        run: the run the model comes from.
        estimator: an `Estimator` (or a canned estimator) to export; or pass `export_dir`.
        input_example: a few rows of the model's input (a DataFrame, or an array for a model
            fitted on an array); the first 5 are kept as the example. Required.
        export_dir: an existing SavedModel export (`export_saved_model`'s return value).
        name: the logged model's name. default="model".
        feature_names: column names of a single 2-D input. default: the DataFrame's columns, or
            `feature_0 .. feature_{n-1}`.
        step: the run's step the model belongs to (its global step). default=0.

    Returns:
        a `LoggedModelInfo`; `mlflow.pyfunc.load_model(info.model_uri)` (or `load_model`)
        predicts from a DataFrame what `Estimator.predict` predicts.
    """
    import mlflow

    if input_example is None:
        raise ValueError("log_model needs input_example: a few rows of the model's input (a DataFrame or an array).")
    client = get_client(run.tracking_uri)
    with tempfile.TemporaryDirectory(prefix="skflow_model_") as tmp:
        if export_dir is None:
            if estimator is None:
                raise ValueError("Pass the estimator to export, or export_dir (a SavedModel export).")
            export_dir = _export(estimator, os.path.join(tmp, "export"))
        loaded, inputs, names = _serving_inputs(export_dir)
        example, columns = _example_frame(input_example, inputs, feature_names, names)
        signature = _signature(loaded, inputs, example, columns, names)
        with bounded_requests():
            experiment_id = run.experiment_id or client.get_run(run.run_id).info.experiment_id
            model = client.create_logged_model(experiment_id, name=name, source_run_id=run.run_id)
        mlflow_model = mlflow.models.Model(
            artifact_path=model.artifact_location, run_id=run.run_id, model_id=model.model_id, model_uuid=model.model_id
        )
        local = os.path.join(tmp, "model")
        mlflow.pyfunc.save_model(
            local,
            python_model=PYFUNC_FILE,
            artifacts={"saved_model": os.fspath(export_dir)},
            signature=signature,
            input_example=example,
            pip_requirements=pip_requirements(),
            model_config={"columns": columns},
            mlflow_model=mlflow_model,
        )
        with bounded_requests(timeout=60):
            client.log_model_artifacts(model.model_id, local)
            client.finalize_logged_model(model.model_id, "READY")
            from mlflow.entities import LoggedModelOutput

            client.log_outputs(run.run_id, [LoggedModelOutput(model.model_id, step)])
    logger.info("Logged model %s (models:/%s) to run %s.", name, model.model_id, run.run_id)
    return LoggedModelInfo(model.model_id, f"models:/{model.model_id}", run.run_id, signature)


def _exporter(estimator: Any) -> Any:
    """What exports the estimator: itself, or a canned estimator's fitted `estimator_`."""
    if hasattr(estimator, "export_saved_model"):
        return estimator
    inner = getattr(estimator, "estimator_", None)
    if inner is None:
        raise ValueError(f"{type(estimator).__name__} has no SavedModel to export: fit it first.")
    return inner


def _export(estimator: Any, base: str) -> str:
    """The weights in memory as a SavedModel under `base`."""
    return _exporter(estimator).export_saved_model(base)


def _serving_inputs(export_dir: str | os.PathLike) -> tuple[Any, dict[str, Any], dict[str, str]]:
    """The loaded export, its serving inputs (key -> spec) and the column each key takes."""
    import tensorflow as tf

    from flows.tracking.pyfunc_model import input_columns

    loaded = tf.saved_model.load(os.fspath(export_dir))
    serve = loaded.signatures["serving_default"]
    specs = dict(serve.structured_input_signature[1])
    names = input_columns(loaded)
    # The export records its inputs in the training columns' order; the signature's dict is sorted.
    order = [key for key in names if key in specs] + [key for key in specs if key not in names]
    inputs = {key: specs[key] for key in order}
    return loaded, inputs, {key: names.get(key, key) for key in inputs}


def _single_matrix(inputs: dict[str, Any]) -> bool:
    spec = next(iter(inputs.values()))
    return len(inputs) == 1 and len(spec.shape) == 2 and spec.shape[-1] != 1


def _example_frame(
    data: Any, inputs: dict[str, Any], feature_names: Sequence[str] | None, names: dict[str, str]
) -> tuple[Any, list[str] | None]:
    """The input example as a DataFrame of the serving inputs' dtypes, and the column order of a
    single 2-D input (None when inputs are fed by name)."""
    import numpy as np
    import pandas as pd

    if _single_matrix(inputs):
        spec = next(iter(inputs.values()))
        values = data.to_numpy() if isinstance(data, pd.DataFrame) else np.asarray(data)
        values = values[:_EXAMPLE_ROWS].reshape(min(len(values), _EXAMPLE_ROWS), -1)
        if feature_names is not None:
            columns = [str(c) for c in feature_names]
        elif isinstance(data, pd.DataFrame):
            columns = [str(c) for c in data.columns]
        else:
            columns = [f"feature_{i}" for i in range(values.shape[1])]
        return pd.DataFrame(values.astype(spec.dtype.as_numpy_dtype), columns=columns), columns
    frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame(data)
    frame = frame.head(_EXAMPLE_ROWS)
    out = {}
    for key, spec in inputs.items():
        name = names[key]
        if name not in frame.columns:
            raise ValueError(
                f"The SavedModel takes columns {sorted(names.values())}; the input example has {list(frame.columns)}."
            )
        column = frame[name]
        out[name] = column.astype(str) if spec.dtype.name == "string" else column.astype(spec.dtype.as_numpy_dtype)
    return pd.DataFrame(out), None


def _signature(
    loaded: Any, inputs: dict[str, Any], example: Any, columns: list[str] | None, names: dict[str, str]
) -> Any:
    """Input schema from the serving inputs (named columns, their dtypes); output schema from the
    pyfunc's predictions on the example."""
    import tensorflow as tf
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    from flows.tracking.pyfunc_model import feeds_from_frame, frame_from_outputs

    if columns is not None:
        dtype = _MLFLOW_TYPES[next(iter(inputs.values())).dtype.name]
        input_schema = Schema([ColSpec(dtype, c) for c in columns])
    else:
        input_schema = Schema([ColSpec(_MLFLOW_TYPES[spec.dtype.name], names[key]) for key, spec in inputs.items()])
    feeds = feeds_from_frame(example, inputs, columns, names)
    outputs = loaded.signatures["serving_default"](**{k: tf.constant(v) for k, v in feeds.items()})
    predictions = frame_from_outputs({k: v.numpy() for k, v in outputs.items()})
    output_schema = Schema([ColSpec(_column_type(predictions[c]), c) for c in predictions.columns])
    return ModelSignature(inputs=input_schema, outputs=output_schema)


def _column_type(series: Any) -> str:
    kind = series.dtype.kind
    if kind == "f":
        return "float" if series.dtype.itemsize == 4 else "double"
    if kind in "iu":
        return "long"
    if kind == "b":
        return "boolean"
    return "string"


def load_model(model_uri: str, tracking_uri: str | None = None, dst_path: str | os.PathLike | None = None) -> Any:
    """Load a pyfunc model (`models:/<model_id>`, `models:/NAME@ALIAS`, `models:/NAME/3`, `runs:/...`)
    from the tracking store at `tracking_uri` (default: `MLFLOW_TRACKING_URI`, else the embedded store).

    Raises:
        ValueError: the URI names no model in that store (an unknown alias, version, model id).

    The files are downloaded into `dst_path` (default: a temporary directory removed when the
    returned model is garbage-collected), then `mlflow.pyfunc.load_model` loads them.
    """
    import mlflow

    uri = resolve_store(tracking_uri).tracking_uri
    location = resolve_model_uri(model_uri, uri)  # MLflow would look `models:/` up in the global registry
    target = os.fspath(dst_path) if dst_path is not None else tempfile.mkdtemp(prefix="skflow_load_")
    with bounded_requests(timeout=60):
        local = mlflow.artifacts.download_artifacts(location, dst_path=target, tracking_uri=uri, registry_uri=uri)
    model = mlflow.pyfunc.load_model(local)
    if dst_path is None:
        weakref.finalize(model, shutil.rmtree, target, True)
    return model


def resolve_model_uri(model_uri: str, tracking_uri: str | None = None) -> str:
    """The artifact location of the model a `models:/` or `runs:/` URI names, looked up with an
    explicit client on `tracking_uri` (default: `MLFLOW_TRACKING_URI`, else the embedded store).

    MLflow resolves these URIs itself through a default `MlflowClient()`, i.e. the process's global
    tracking URI, which need not be the pipeline's store. Other URIs are returned as they are.

    Raises:
        ValueError: the URI names no model (an unknown alias, version, model id, or run output).
    """
    from mlflow.exceptions import MlflowException

    client = get_client(resolve_store(tracking_uri).tracking_uri)
    scheme, _, rest = model_uri.partition(":/")
    try:
        with bounded_requests():
            if scheme == "models":
                name, at, alias = rest.partition("@")
                if at:
                    version = client.get_model_version_by_alias(name, alias)
                elif "/" in rest:
                    version = client.get_model_version(*rest.split("/", 1))
                else:
                    return client.get_logged_model(rest).artifact_location
                if version.model_id:
                    return client.get_logged_model(version.model_id).artifact_location
                return client.get_model_version_download_uri(version.name, version.version)
            if scheme == "runs":
                run_id, _, path = rest.strip("/").partition("/")
                run = client.get_run(run_id)
                outputs = run.outputs.model_outputs if run.outputs is not None else []
                for output in sorted(outputs, key=lambda o: -o.step):
                    logged = client.get_logged_model(output.model_id)
                    if logged.name == (path or "model"):
                        return logged.artifact_location
                return f"{run.info.artifact_uri.rstrip('/')}/{path}"
    except MlflowException as exc:
        raise ValueError(f"{model_uri!r} names no model in {client.tracking_uri}: {exc.message}") from None
    return model_uri


def serving_frame(frame: Any) -> Any:
    """`frame` with pandas `category` columns turned into their values (strings, numbers, booleans).

    MLflow checks a DataFrame against the model's signature before the model sees it, and its
    check refuses the `category` dtype for a string column; call this before `model.predict(frame)`
    on a frame that has categorical columns (skflow's batch prediction does).
    """
    import pandas as pd

    categorical = [c for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)]
    if not categorical:
        return frame
    return frame.assign(**{str(c): frame[c].astype(frame[c].cat.categories.dtype) for c in categorical})
