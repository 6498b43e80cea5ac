"""Export to a TF SavedModel whose serving signature returns what `predict()` returns."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import tensorflow as tf

from estimators import checkpoints as ckpt
from estimators._context import clean_errors
from estimators._runtime import Runtime, dummy_targets
from estimators.metadata import ModelMetadata
from estimators.model_fn import ModeKeys, ModelFunction
from estimators.model_state import ModelState
from estimators.restore import resolve_checkpoint

__all__ = ["export_model", "export_saved_model"]

logger = logging.getLogger("skflow")


def export_saved_model(
    model: ModelFunction,
    meta: ModelMetadata,
    export_dir_base: str,
    weights: Mapping[str, tf.Variable] | None = None,
    checkpoint_path: str | None = None,
    restore: Callable[[Mapping[str, tf.Variable]], Any] | None = None,
) -> str:
    """Write `export_dir_base/<unix timestamp>/`, atomically (a temp dir renamed when complete).

    The model is rebuilt in a runtime of its own (no distribution wrappers, no optimizer state) and
    given the values of `weights` (the variables in memory, by name; `restore(variables)` gives the
    others theirs, from the model's checkpoint or pickle) or of `checkpoint_path`. Inputs
    are named `features` (or by the dict keys of dict features); a single prediction tensor is
    output as `predictions`.

    Raises:
        ValueError: the model's feature signature is unknown (nothing fitted yet).
    """
    meta.load()
    features_sig, targets_sig = meta.features, meta.targets
    if features_sig is None:
        raise ValueError("Cannot export: the feature signature is unknown; fit the model (or predict once) first.")

    rt = Runtime(model, None)

    def serve(**features: Any) -> dict[str, tf.Tensor]:
        inputs = features if isinstance(features_sig, Mapping) else features["features"]
        batch = tf.shape(tf.nest.flatten(inputs)[0], out_type=tf.int64)[0]
        predictions = rt.call_model(inputs, dummy_targets(targets_sig, batch), ModeKeys.INFER).predictions
        return dict(predictions) if isinstance(predictions, Mapping) else {"predictions": predictions}

    if isinstance(features_sig, Mapping):
        specs = {k: tf.TensorSpec(v.to_spec().shape, v.dtype, name=k) for k, v in features_sig.items()}
    else:
        specs = {"features": tf.TensorSpec(features_sig.to_spec().shape, features_sig.dtype, name="features")}
    function = tf.function(serve)
    with clean_errors():
        concrete = function.get_concrete_function(**specs)
    variables = rt.pop_new_variables()
    model_vars = {n: v for n, v in variables.items() if not n.startswith("optimizer_")}
    if weights is not None:
        for name, var in model_vars.items():
            if name in weights:
                var.assign(weights[name].read_value())
        missing = {n: v for n, v in model_vars.items() if n not in weights}
        if missing and restore is not None:
            restore(missing)  # a model restored from model_dir that has not yet traced every variable
    else:
        ckpt.restore_variables(checkpoint_path, model_vars, meta.model_dir)

    module = tf.Module()
    module.model_variables = list(model_vars.values())
    module.serve = function
    os.makedirs(export_dir_base, exist_ok=True)
    stamp = int(time.time())
    while os.path.exists(os.path.join(export_dir_base, str(stamp))):
        stamp += 1
    final = os.path.join(export_dir_base, str(stamp))
    tmp = os.path.join(export_dir_base, f".tmp-{stamp}-{os.getpid()}")
    tf.saved_model.save(module, tmp, signatures={"serving_default": concrete})
    os.replace(tmp, final)
    logger.info("Exported SavedModel to %s.", final)
    return final


def export_model(state: ModelState, export_dir_base: str, checkpoint_path: str | None = None) -> str:
    """`export_saved_model` of a model's state: the weights in memory, or `checkpoint_path` (a path,
    a directory or "best")."""
    if checkpoint_path is not None:
        path = resolve_checkpoint(state.model_dir, checkpoint_path)
        return export_saved_model(state.model, state.meta, export_dir_base, checkpoint_path=path)
    rt = state.ready_runtime("export_saved_model")
    restore = lambda variables: state.weights.restore(variables, False, "export")  # noqa: E731
    return export_saved_model(state.model, state.meta, export_dir_base, weights=rt.store.variables, restore=restore)
