"""MLflow tracking for every training: params, step metrics, checkpoints, a servable model, the registry.

Recording a fit (`MlflowMonitor`)::

    from flows.tracking import MlflowMonitor
    monitor = MlflowMonitor(experiment_name="iris")
    est.fit(x, y, steps=1000, monitors=[monitor])  # one run per model_dir, resumed with it
    print(monitor.run.run_id)

What the flows call around a fit (runs are always passed explicitly, never MLflow's thread-local
active run)::

    run = create_run("iris", tags={"prefect.flow_run_id": ...}, model_dir=model_dir)
    est.fit(x, y, max_steps=1000, monitors=[MlflowMonitor(run=run)])
    log_evaluation(run, est, x_test, y_test, metrics=["accuracy"])   # eval_* + confusion matrix
    info = log_model(run, est, input_example=x_test[:5])               # pyfunc model from code
    version = register_model(info.model_uri, "iris"); set_alias("iris", "champion", version)
    end_run(run)
    model = load_model("models:/iris@champion")                        # predict(DataFrame)

Where runs go: `MLFLOW_TRACKING_URI`, else `sqlite:///<cwd>/mlruns/mlflow.db` with artifacts in
`<cwd>/mlruns/artifacts` (`resolve_store`). When the store is unreachable nothing blocks training
and nothing is lost: metrics wait in memory, then in `model_dir/mlflow_spool.jsonl`, which the
next fit on that model_dir or `sync_spool(model_dir)` delivers.

Public names (loaded on first use: `import flows.tracking` imports neither MLflow nor TensorFlow):

- `MlflowMonitor`, `TrainingTerminated`: the monitor (`flows.tracking.monitor`).
- `TrackedRun`, `create_run`, `end_run`, `default_tags`, `read_run_record`,
  `TrackingUnavailableError`: runs (`flows.tracking.runs`).
- `resolve_store`, `TrackingStore`, `get_or_create_experiment`: the store (`flows.tracking.store`).
- `training_params`, `flatten_params`: the params scheme (`flows.tracking.params`).
- `ResilientLogger`, `sync_spool`, `SyncResult`, `close_loggers`: delivery through outages (`flows.tracking.logger`).
- `log_evaluation`: final `eval_*` metrics and the confusion matrix (`flows.tracking.evaluation`).
- `log_model`, `load_model`, `resolve_model_uri`, `LoggedModelInfo`, `pip_requirements`,
  `serving_frame`: the pyfunc model (`flows.tracking.model`).
- `register_model`, `set_alias`, `get_alias_version`: the registry (`flows.tracking.registry`).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "MlflowMonitor": "monitor",
    "TrainingTerminated": "monitor",
    "TrackedRun": "runs",
    "TrackingUnavailableError": "runs",
    "create_run": "runs",
    "end_run": "runs",
    "default_tags": "runs",
    "read_run_record": "runs",
    "TrackingStore": "store",
    "resolve_store": "store",
    "get_or_create_experiment": "store",
    "training_params": "params",
    "flatten_params": ("params", "flatten"),
    "ResilientLogger": "logger",
    "SyncResult": "logger",
    "sync_spool": "logger",
    "close_loggers": "logger",
    "log_evaluation": "evaluation",
    "LoggedModelInfo": "model",
    "load_model": "model",
    "log_model": "model",
    "pip_requirements": "model",
    "resolve_model_uri": "model",
    "serving_frame": "model",
    "get_alias_version": "registry",
    "register_model": "registry",
    "set_alias": "registry",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'flows.tracking' has no attribute {name!r}")
    module, attribute = target if isinstance(target, tuple) else (target, name)
    value = getattr(importlib.import_module(f"flows.tracking.{module}"), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
