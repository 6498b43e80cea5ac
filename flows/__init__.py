"""skflow flows: the pipeline layer, the only package that imports MLflow and Prefect.

- `train_flow(config)`, `batch_predict_flow(model_uri, source, output)`: the Prefect flows
  (`flows.pipelines`), on tasks (`flows.tasks`) that call plain library code: `flows.data`
  (ingest, validate, split), `flows.training` (estimator, monitors, resumable fit),
  `flows.evaluation`, `flows.prediction`.
- `run_distributed(config, workers=N)`: the same pipeline with its fit on N local worker processes
  (`flows.workers`; `skflow run CONFIG --workers N`).
- `retrain_flow(config)`: champion/challenger retraining on the newest data (`flows.retrain`; the
  champion's library code in `flows.champion`, the decision in `flows.promotion`, drift in
  `flows.drift`; `skflow retrain CONFIG`).
- `PipelineConfig`, `load_config`, `ConfigError`: the YAML config (`flows.config`; its text and error
  lines in `flows.config_text`); its sources (`flows.sources`).
- `flows.tracking`: every training recorded in MLflow (`MlflowMonitor`, model logging, the registry),
  resilient to a tracking server that is down.
- `flows.cli`: the `skflow` command; `flows.demo`: `make demo`; `flows.foreground`: what a command's
  foreground run needs (Prefect's local server started early, no flow heartbeats, a quick exit);
  `flows.reports`: the tables the commands print.
- `flows.server`: `skflow server start|stop|status|env`, real Prefect and MLflow servers.
- `flows.sweep`: `skflow sweep`, trials of one pipeline on Dask workers under one MLflow parent run;
  its search space (grid, seeded random draws) in `flows.sweep_space`.

Importing `flows` loads nothing heavy (no TensorFlow, MLflow or Prefect): a command line's `--help`
stays fast. Settings (tracking URI, experiment) are read when a run starts, never at import.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ConfigError": "flows.config",
    "PipelineConfig": "flows.config",
    "load_config": "flows.config",
    "train_flow": "flows.pipelines",
    "batch_predict_flow": "flows.pipelines",
    "TrainResult": "flows.pipelines",
    "PredictResult": "flows.pipelines",
    "run_distributed": "flows.workers",
    "retrain_flow": "flows.retrain",
    "RetrainResult": "flows.retrain",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'flows' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
