"""skflow flows: the pipeline layer, the only package that imports MLflow and Prefect.

- `flows.tracking`: every training recorded in MLflow (`MlflowMonitor`, model logging, the registry),
  resilient to a tracking server that is down.

Importing `flows` loads nothing heavy (no TensorFlow, MLflow or Prefect): a command line's `--help`
stays fast. Settings (tracking URI, experiment) are read when a run starts, never at import.
"""
