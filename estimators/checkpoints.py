"""Checkpoints in model_dir: atomic saves through `tf.train.CheckpointManager`, restore by name.

The global step lives inside the checkpoint. `CheckpointManager` commits a checkpoint only when its
`.index` file is in place and rewrites its state file atomically , so a
process killed at any moment leaves a model_dir that restores to its latest complete checkpoint. A
latest checkpoint that cannot be read falls back to the one before it, with a warning.

Variables are restored by name (`model/dense/kernel`, `optimizer_0/3`, `global_step`), one by one,
so variables that appear later (a mode-specific variable, an optimizer first built by `fit` after a
`predict`) can be restored when they are created.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf

logger = logging.getLogger("skflow")

META_FILE = "skflow.json"
_VALUE = "/.ATTRIBUTES/VARIABLE_VALUE"


def _escape(name: str) -> str:
    # tf.train.Checkpoint escapes "." as ".." and "/" as ".S" in object names.
    return name.replace(".", "..").replace("/", ".S")


def _unescape(name: str) -> str:
    out, i = [], 0
    while i < len(name):
        if name[i] == "." and i + 1 < len(name):
            out.append("/" if name[i + 1] == "S" else ".")
            i += 2
        else:
            out.append(name[i])
            i += 1
    return "".join(out)


def checkpoint_key(section: str, name: str | None = None) -> str:
    """The key of a variable in a checkpoint written by `CheckpointStore.save`."""
    if name is None:
        return section + _VALUE
    return f"{section}/{_escape(name)}{_VALUE}"


def list_checkpoint_variables(path: str) -> dict[str, tuple[int, ...]]:
    """Readable names -> shapes of the variables in a checkpoint (model, optimizer and global_step)."""
    out = {}
    for key, shape in tf.train.list_variables(path):
        if not key.endswith(_VALUE) or key.startswith(("_CHECKPOINTABLE_OBJECT_GRAPH", "save_counter")):
            continue
        section, _, rest = key[: -len(_VALUE)].partition("/")
        name = section if not rest else (f"{_unescape(rest)}" if section == "model" else f"{section}/{_unescape(rest)}")
        out[name] = tuple(shape)
    return out


class CheckpointStore:
    """Saves and restores an Estimator's variables in its model_dir.

    Args:
        model_dir: where checkpoints go.
        keep_checkpoint_max: how many recent checkpoints to keep (0 or None: all).
        keep_checkpoint_every_n_hours: also keep one checkpoint per this many hours.
        is_chief: non-chief workers save to a scratch directory that is deleted (multi-worker training
            needs every worker to take part in a save).
    """

    def __init__(
        self,
        model_dir: str,
        keep_checkpoint_max: int | None,
        keep_checkpoint_every_n_hours: float,
        is_chief: bool = True,
    ) -> None:
        self.model_dir = model_dir
        self.max_to_keep = keep_checkpoint_max or None
        self.keep_every_n_hours = keep_checkpoint_every_n_hours
        self.is_chief = is_chief
        self._manager: tf.train.CheckpointManager | None = None
        self._tracked: tuple[int, ...] = ()

    def latest(self) -> str | None:
        """Path prefix of the newest complete checkpoint, or None."""
        return tf.train.latest_checkpoint(self.model_dir)

    def all_checkpoints(self) -> list[str]:
        state = tf.train.get_checkpoint_state(self.model_dir)
        if state is None:
            return []
        return [p for p in state.all_model_checkpoint_paths if tf.io.gfile.exists(p + ".index")]

    def readable_latest(self) -> str | None:
        """The newest checkpoint that can actually be read, falling back to older ones with a warning."""
        candidates = self.all_checkpoints()
        latest = self.latest()
        if latest and latest not in candidates:
            candidates.append(latest)
        for path in reversed(candidates):
            try:
                tf.train.load_checkpoint(path).get_variable_to_shape_map()
                return path
            except (tf.errors.OpError, ValueError) as exc:
                logger.warning("Checkpoint %s cannot be read (%s); falling back to the previous one.", path, exc)
        return None

    def save(
        self,
        global_step: tf.Variable,
        model_vars: Mapping[str, tf.Variable],
        optimizer_vars: Mapping[str, tf.Variable],
        step: int,
    ) -> str:
        """Write a checkpoint numbered `step`; returns its path."""
        tracked = (id(global_step), *map(id, model_vars.values()), *map(id, optimizer_vars.values()))
        if self._manager is None or tracked != self._tracked:
            ckpt = tf.train.Checkpoint(global_step=global_step, model=dict(model_vars))
            for section, variables in _group_optimizer_vars(optimizer_vars).items():
                setattr(ckpt, section, variables)
            directory = self.model_dir if self.is_chief else tempfile.mkdtemp(prefix="skflow-worker-")
            self._manager = tf.train.CheckpointManager(
                ckpt,
                directory,
                max_to_keep=self.max_to_keep,
                keep_checkpoint_every_n_hours=self.keep_every_n_hours,
                checkpoint_name="model.ckpt",
            )
            self._tracked = tracked
        path = self._manager.save(checkpoint_number=step)
        if not self.is_chief:
            tf.io.gfile.rmtree(self._manager.directory)
            self._manager = None
        return path


def _group_optimizer_vars(optimizer_vars: Mapping[str, tf.Variable]) -> dict[str, dict[str, tf.Variable]]:
    groups: dict[str, dict[str, tf.Variable]] = {}
    for name, var in optimizer_vars.items():
        section, _, rest = name.partition("/")
        groups.setdefault(section, {})[rest] = var
    return groups


def restore_variables(
    path: str, variables: Mapping[str, tf.Variable], model_dir: str, strict: bool = True
) -> list[str]:
    """Assign each variable its value from checkpoint `path`; returns the names that were not found.

    Names are those of `list_checkpoint_variables`: `dense/kernel` for model variables,
    `optimizer_0/3` for optimizer slots, `global_step`.

    Raises:
        ValueError: a model variable is missing while the checkpoint holds others (it was written by a
            different model_fn), or a shape differs. Nothing is assigned in that case.
    """
    reader = tf.train.load_checkpoint(path)
    shapes = reader.get_variable_to_shape_map()
    values, missing = {}, []
    for name, var in variables.items():
        key = key_for(name)
        if key not in shapes:
            missing.append(name)
            continue
        if tuple(shapes[key]) != tuple(var.shape):
            raise ValueError(
                f"Checkpoint {path} holds variable {name!r} with shape {tuple(shapes[key])}, but the model_fn "
                f"creates it with shape {tuple(var.shape)}. The model in model_dir={model_dir!r} was built "
                "differently; use a new model_dir, or warm_start_from= to reuse the variables that match."
            )
        values[name] = reader.get_tensor(key)
    model_missing = [n for n in missing if not _is_optimizer(n) and n != "global_step"]
    has_model = any(k.startswith("model/") for k in shapes)
    if strict and model_missing and (has_model or values):
        raise ValueError(
            f"Checkpoint {path} has no variable {model_missing[0]!r} "
            f"({len(model_missing)} missing in all: {model_missing[:5]}), which the model_fn creates. It was written "
            f"by a different model_fn. Use a new model_dir, or warm_start_from={model_dir!r} to reuse the "
            "variables that match."
        )
    for name, value in values.items():
        variables[name].assign(value)
    opt_missing = [n for n in missing if _is_optimizer(n)]
    if opt_missing and values:
        logger.warning(
            "Checkpoint %s has no state for %d optimizer variable(s) (the optimizer changed?); they start fresh.",
            path,
            len(opt_missing),
        )
    return missing


def _is_optimizer(name: str) -> bool:
    return name.startswith("optimizer_") and "/" in name


def key_for(name: str) -> str:
    """The checkpoint key of a variable named as `list_checkpoint_variables` names it."""
    if name == "global_step":
        return checkpoint_key("global_step")
    if _is_optimizer(name):
        section, _, rest = name.partition("/")
        return checkpoint_key(section, rest)
    return checkpoint_key("model", name)


def read_global_step(path: str) -> int:
    try:
        return int(tf.train.load_checkpoint(path).get_tensor(checkpoint_key("global_step")))
    except (tf.errors.OpError, ValueError):
        return 0


def write_meta(model_dir: str, meta: Mapping[str, Any]) -> None:
    """Write model_dir/skflow.json atomically (temp file, then `os.replace`)."""
    write_json(os.path.join(model_dir, META_FILE), meta)


def write_json(path: str, data: Mapping[str, Any]) -> None:
    """Write JSON atomically: a temp file in the same directory, fsync, then `os.replace`."""
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".skflow-", suffix=".json", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, default=_json_default)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_meta(model_dir: str) -> dict[str, Any] | None:
    path = os.path.join(model_dir, META_FILE)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as exc:
        logger.warning("Ignoring unreadable %s (%s).", path, exc)
        return None


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"Cannot write {type(value).__name__} to {META_FILE}.")
