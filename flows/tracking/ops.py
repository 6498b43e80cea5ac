"""What the resilient logger sends: operations as plain JSON-able dicts, and how each is delivered.

An operation names its tracking URI and run, so a spool file can be delivered by any process.
Every operation is idempotent, which is what makes "deliver again after a doubt" safe: MLflow
drops a metric identical to one it has (same key, step, timestamp and value), accepts a param
logged again with the same value, overwrites tags, and re-uploading an artifact replaces it.

| op | fields | MLflow call |
|---|---|---|
| `metrics` | `metrics`: `[key, value, timestamp_ms, step]` | `log_batch(metrics=...)` (merged, <= 1,000 per request) |
| `params` | `params`: `[key, value]` | `log_batch(params=...)` (<= 100 per request) |
| `tags` | `tags`: `[key, value]` | `log_batch(tags=...)` (<= 100 per request) |
| `status` | `status`, `time` (ms) | `update_run(RUNNING)` or `set_terminated(status, end_time)` |
| `dataset` | `dataset` (MLflow's dataset dict), `context` | `log_inputs` |
| `artifacts` | `path`, `artifact_path`, `remove` | `log_artifacts` / `log_artifact` (a staged copy, removed once sent: gone means delivered) |
| `plot` | `keys`, `name` | renders the run's delivered metric history, `log_artifact` |
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

from flows.tracking.store import get_client

__all__ = ["MAX_METRICS", "MAX_PARAMS", "deliver", "is_transient", "mergeable", "metrics_op", "op"]

MAX_METRICS = 1000  # the server refuses more per request (MAX_METRICS_PER_BATCH)
MAX_PARAMS = 100  # MAX_PARAMS_TAGS_PER_BATCH

# MLflow error codes that no retry will fix: the data is refused as it is.
_PERMANENT = {
    "INVALID_PARAMETER_VALUE",
    "RESOURCE_DOES_NOT_EXIST",
    "BAD_REQUEST",
    "INVALID_STATE",
    "ENDPOINT_NOT_FOUND",
}


def op(kind: str, uri: str, run_id: str, **fields: Any) -> dict[str, Any]:
    """An operation on run `run_id` of tracking store `uri`."""
    return {"op": kind, "uri": uri, "run_id": run_id, **fields}


def metrics_op(uri: str, run_id: str, values: Mapping[str, float], step: int, timestamp_ms: int) -> dict[str, Any]:
    """Metrics measured at `step`; non-numeric values are left out."""
    rows = []
    for key, value in values.items():
        try:
            rows.append([str(key), float(value), int(timestamp_ms), int(step)])
        except (TypeError, ValueError):
            continue
    return op("metrics", uri, run_id, metrics=rows)


def mergeable(first: Mapping[str, Any], other: Mapping[str, Any], size: int) -> bool:
    """Whether `other` can join a request that holds `size` metrics of `first`'s run."""
    return (
        other["op"] == "metrics" == first["op"]
        and other["run_id"] == first["run_id"]
        and other["uri"] == first["uri"]
        and size + len(other["metrics"]) <= MAX_METRICS
    )


def deliver(ops: Sequence[Mapping[str, Any]]) -> None:
    """Send `ops` (one operation, or several `mergeable` metrics operations) in one go."""
    first = ops[0]
    client = get_client(first["uri"])
    kind, run_id = first["op"], first["run_id"]
    if kind == "metrics":
        from mlflow.entities import Metric

        metrics = [Metric(k, v, ts, step) for o in ops for k, v, ts, step in o["metrics"]]
        if metrics:
            client.log_batch(run_id, metrics=metrics, synchronous=True)
    elif kind in ("params", "tags"):
        from mlflow.entities import Param, RunTag

        entity = Param if kind == "params" else RunTag
        items = [entity(str(k), str(v)) for k, v in first[kind]]
        for i in range(0, len(items), MAX_PARAMS):
            client.log_batch(run_id, **{kind: items[i : i + MAX_PARAMS]}, synchronous=True)
    elif kind == "status":
        if first["status"] == "RUNNING":
            client.update_run(run_id, "RUNNING")
        else:
            client.set_terminated(run_id, first["status"], end_time=first.get("time"))
    elif kind == "dataset":
        from mlflow.entities import Dataset, DatasetInput, InputTag

        dataset = Dataset(**first["dataset"])
        tags = [InputTag("mlflow.data.context", first.get("context") or "train")]
        client.log_inputs(run_id, datasets=[DatasetInput(dataset, tags)])
    elif kind == "artifacts":
        _deliver_artifacts(client, first)
    elif kind == "plot":
        from flows.tracking.plots import log_metric_plot

        log_metric_plot(client, run_id, first["keys"], first.get("name") or "loss_curve.png")
    else:
        raise ValueError(f"Unknown tracking operation {kind!r}.")


def _deliver_artifacts(client: Any, o: Mapping[str, Any]) -> None:
    path = o["path"]
    if not os.path.exists(path):  # staged files are removed once sent: this operation was delivered
        return
    if os.path.isdir(path):
        client.log_artifacts(o["run_id"], path, o.get("artifact_path"))
    else:
        client.log_artifact(o["run_id"], path, o.get("artifact_path"))
    if o.get("remove"):
        shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.remove(path)


def is_transient(exc: BaseException) -> bool:
    """Whether a failed delivery may succeed later (store unreachable, timed out, busy, 5xx):
    everything except MLflow refusing the data itself (an invalid or changed value, a deleted run)."""
    from mlflow.exceptions import MlflowException

    if isinstance(exc, MlflowException):
        return exc.error_code not in _PERMANENT  # unreachable or timed out: INTERNAL_ERROR
    return isinstance(exc, Exception)


def stage(paths: Sequence[tuple[str, str]], staging_root: str) -> str:
    """Hard-link (or copy) `(source, name)` files into a new directory under `staging_root`, so
    that they can be sent later even if training deletes or rotates the originals. Returns it."""
    os.makedirs(staging_root, exist_ok=True)
    target = tempfile.mkdtemp(prefix="out-", dir=staging_root)
    for source, name in paths:
        dest = os.path.join(target, name)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        try:
            os.link(source, dest)
        except OSError:
            shutil.copy2(source, dest)
    return target
