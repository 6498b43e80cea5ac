"""Where a model's weights come from when its variables are created: the latest checkpoint in
model_dir, a pinned checkpoint (`checkpoint_path=` of evaluate/predict/export), weights carried by a
pickle, a warm start from another model, or fresh initial values.

Variables are created when a function is first traced, so restoring happens then, by name, for the
variables that trace created (`sync_new_variables`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

import numpy as np
import tensorflow as tf

from estimators import checkpoints as ckpt

__all__ = ["BEST", "WeightSource", "checkpoint_weights", "resolve_checkpoint"]

logger = logging.getLogger("skflow")

BEST = "best"  # model_dir/best holds the best checkpoint kept by ValidationMonitor(keep_best=True)


def resolve_checkpoint(model_dir: str, checkpoint_path: str | os.PathLike) -> str:
    """A checkpoint path from a path, a directory (its latest) or "best" (model_dir/best).

    Raises:
        ValueError: nothing to restore there, with what to do instead.
    """
    path = os.fspath(checkpoint_path)
    if path == BEST:
        best = tf.train.latest_checkpoint(os.path.join(model_dir, BEST))
        if best is None:
            raise ValueError(
                f"No best checkpoint in {os.path.join(model_dir, BEST)!r}: train with "
                "ValidationMonitor(..., keep_best=True) to keep one."
            )
        return best
    if os.path.isdir(path):
        latest = tf.train.latest_checkpoint(path)
        if latest is None:
            raise ValueError(f"checkpoint_path={path!r} is a directory without checkpoints.")
        return latest
    if not tf.io.gfile.exists(path + ".index"):
        raise ValueError(f"checkpoint_path={path!r} is not a checkpoint (no {path}.index).")
    return path


def checkpoint_weights(path: str) -> dict[str, np.ndarray]:
    """Every variable of checkpoint `path` as a numpy array, by name (what a pickle carries)."""
    reader = tf.train.load_checkpoint(path)
    return {n: reader.get_tensor(ckpt.key_for(n)) for n in ckpt.list_checkpoint_variables(path)}


class WeightSource:
    """Decides where new variables get their values, in this order: a pinned checkpoint, the latest
    readable checkpoint in model_dir, pickled weights, then (in `fit` only) `warm_start_from`.

    Args:
        checkpoints: the model_dir's `CheckpointStore`.
        warm_start_from: a model_dir or checkpoint path, or None.
    """

    def __init__(self, checkpoints: ckpt.CheckpointStore, warm_start_from: str | None = None) -> None:
        self.checkpoints = checkpoints
        self.warm_start_from = warm_start_from
        self.pinned: str | None = None  # set on copies that evaluate/predict one checkpoint
        self.pickled: dict[str, np.ndarray] | None = None  # weights carried by a pickle

    def checkpoint(self) -> str | None:
        """The checkpoint new variables restore from, or None."""
        return self.pinned or self.checkpoints.readable_latest()

    def global_step(self) -> int | None:
        """The global step of the stored model (checkpoint or pickle); None when there is none."""
        latest = self.checkpoint()
        if latest is not None:
            return ckpt.read_global_step(latest)
        if self.pickled is not None:
            return int(self.pickled.get("global_step", 0))
        return None

    def restore(self, new: Mapping[str, tf.Variable], trained_in_memory: bool, where: str) -> bool:
        """Give `new` variables their values; returns whether they now hold a trained state.

        Variables created after training in memory without a save start fresh (they belong to a
        mode that had not been traced yet); `warm_start_from` applies only to a model without any
        stored state, in `fit`.
        """
        if not new:
            return trained_in_memory
        source = self.checkpoint()
        if source is not None:
            ckpt.restore_variables(source, new, self.checkpoints.model_dir)
            return True
        if self.pickled is not None:
            for name, var in new.items():
                if name in self.pickled:
                    var.assign(self.pickled[name])
            return True
        if not trained_in_memory and self.warm_start_from is not None and where == "fit":
            warm_start(self.warm_start_from, new)
        return trained_in_memory


def warm_start(source: str, variables: Mapping[str, tf.Variable]) -> None:
    """Initialise the model variables (not the optimizer's) that `source` holds under the same names."""
    path = tf.train.latest_checkpoint(source) if os.path.isdir(source) else source
    if path is None or not tf.io.gfile.exists(path + ".index"):
        raise ValueError(f"warm_start_from={source!r} holds no checkpoint.")
    model_vars = {n: v for n, v in variables.items() if not n.startswith("optimizer_")}
    missing = ckpt.restore_variables(path, model_vars, source, strict=False)
    logger.info(
        "Warm-started %d variable(s) from %s%s.",
        len(model_vars) - len(missing),
        path,
        f"; {len(missing)} not in it start fresh: {missing[:5]}" if missing else "",
    )
