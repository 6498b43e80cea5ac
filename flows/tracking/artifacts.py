"""What a training run uploads at its end, and the training data as an MLflow dataset input.

Artifacts of a run (MLflow's Keras autolog uses the same folder names):

- `checkpoints/latest/` and `checkpoints/best/`: the latest checkpoint and the one
  `ValidationMonitor(keep_best=True)` kept, each as a model directory of its own
  (`model.ckpt.index`, `model.ckpt.data-*`, a `checkpoint` state file, `skflow.json` and
  `checkpoint_info.json` with the global step): an `Estimator(model_fn, model_dir=<download>)`
  restores from it. Each fit's end replaces them.
- `tensorboard_logs/`: the TensorBoard event files of model_dir (training and evaluation).
- `plots/loss_curve.png` (see `flows.tracking.plots`).

The files are staged (hard links: no copy, and a checkpoint that training rotates away meanwhile
stays readable) and uploaded by the resilient logger's thread, never by the training thread.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from flows.tracking.ops import op, stage
from flows.tracking.spool import OUTBOX_DIR

__all__ = ["artifacts_op", "dataset_op", "staged_files"]

_META = "skflow.json"
_EVENTS = "events.out.tfevents."


def staged_files(model_dir: str, latest: str | None, best: str | None, events: bool = True) -> list[tuple[str, str]]:
    """`(source file, artifact name)` pairs for the latest and best checkpoints and the event files."""
    files: list[tuple[str, str]] = []
    for prefix, folder in ((latest, "checkpoints/latest"), (best, "checkpoints/best")):
        if prefix:
            files.extend(_checkpoint_files(model_dir, prefix, folder))
    if events:
        for root, dirs, names in os.walk(model_dir):
            dirs[:] = [d for d in dirs if d not in (OUTBOX_DIR, "best") and not d.startswith(".")]
            for name in names:
                if name.startswith(_EVENTS):
                    path = os.path.join(root, name)
                    files.append((path, f"tensorboard_logs/{os.path.relpath(path, model_dir)}"))
    return files


def _checkpoint_files(model_dir: str, prefix: str, folder: str) -> list[tuple[str, str]]:
    directory, base = os.path.split(prefix)
    files = [
        (os.path.join(directory, name), f"{folder}/model.ckpt{name[len(base) :]}")
        for name in os.listdir(directory)
        if name.startswith(base + ".")
    ]
    meta = os.path.join(model_dir, _META)
    if os.path.exists(meta):
        files.append((meta, f"{folder}/{_META}"))
    return files


def artifacts_op(
    uri: str, run_id: str, model_dir: str, latest: str | None, best: str | None, events: bool = True
) -> dict[str, Any] | None:
    """Stage the run's end-of-fit artifacts under model_dir/mlflow_outbox and return the operation
    that uploads (then removes) them; None when there is nothing to upload."""
    files = staged_files(model_dir, latest, best, events)
    if not files:
        return None
    staged = stage(files, os.path.join(model_dir, OUTBOX_DIR))
    for prefix, folder in ((latest, "checkpoints/latest"), (best, "checkpoints/best")):
        if prefix:
            target = os.path.join(staged, folder)
            with open(os.path.join(target, "checkpoint"), "w", encoding="utf-8") as f:
                f.write('model_checkpoint_path: "model.ckpt"\nall_model_checkpoint_paths: "model.ckpt"\n')
            with open(os.path.join(target, "checkpoint_info.json"), "w", encoding="utf-8") as f:
                json.dump({"checkpoint": os.path.basename(prefix), "global_step": _step_of(prefix)}, f)
    return op("artifacts", uri, run_id, path=staged, artifact_path=None, remove=True)


def _step_of(prefix: str) -> int | None:
    tail = prefix.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else None


def dataset_op(
    uri: str,
    run_id: str,
    fingerprint: str,
    summary: Mapping[str, Any],
    name: str | None = None,
    source: str | None = None,
) -> dict[str, Any]:
    """The training data as an MLflow dataset input (context "train").

    Its digest is the data fingerprint, cut to MLflow's 36 characters (the whole SHA-256 is the
    `data.fingerprint` param); its source is `source` (a path or URI the caller read the data from)
    or, for data in memory, how it was fed (`TrainingContext.input_summary`); its profile gives the
    number of rows when known.
    """
    if source is not None:
        scheme = source.split("://", 1)[0] if "://" in source else "local"
        source_type, source_json = scheme, json.dumps({"uri": source})
    else:
        source_type = "code"
        source_json = json.dumps({"tags": {f"skflow.{k}": str(v) for k, v in summary.items()}}, sort_keys=True)
    dataset = {
        "name": name or "training_data",
        "digest": fingerprint[:36],
        "source_type": source_type,
        "source": source_json,
        "schema": None,
        "profile": json.dumps({"num_rows": summary["n_samples"]}) if summary.get("n_samples") else None,
    }
    return op("dataset", uri, run_id, dataset=dataset, context="train")
