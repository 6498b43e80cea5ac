"""Export to a TF SavedModel whose serving signature takes the raw input and returns what `predict()` returns.

What the signature takes and returns (raw DataFrame columns by name, decoded class labels) is
`estimators.serving`'s; this module rebuilds the model in a runtime of its own, gives it its
weights and writes the export atomically.
"""

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
from estimators.serving import ServingInputs, label_decoder, serving_inputs

__all__ = ["export_model", "export_saved_model"]

logger = logging.getLogger("skflow")


def export_saved_model(
    model: ModelFunction,
    meta: ModelMetadata,
    export_dir_base: str,
    weights: Mapping[str, tf.Variable] | None = None,
    checkpoint_path: str | None = None,
    restore: Callable[[Mapping[str, tf.Variable]], Any] | None = None,
    inputs: ServingInputs | None = None,
    outputs: Callable[[Any], dict[str, tf.Tensor]] | None = None,
) -> str:
    """Write `export_dir_base/<unix timestamp>/`, atomically (a temp dir renamed when complete).

    The model is rebuilt in a runtime of its own (no distribution wrappers, no optimizer state) and
    given the values of `weights` (the variables in memory, by name; `restore(variables)` gives the
    others theirs, from the model's checkpoint or pickle) or of `checkpoint_path`.

    Args:
        model: the bound model_fn.
        meta: the model's signatures, feeder state and column dtypes.
        export_dir_base: the parent directory of the export.
        weights: the variables in memory, by name; or None to read `checkpoint_path`.
        checkpoint_path: the checkpoint to export when `weights` is None (None: the latest in model_dir).
        restore: gives the variables missing from `weights` their values.
        inputs: the signature's inputs and the graph from them to the model's features. default:
            `serving.serving_inputs(meta)` (raw columns of a DataFrame fit, `features` of an array fit).
        outputs: the signature's outputs from the model_fn's predictions. default:
            `serving.label_decoder(meta)` (the predictions, class ids decoded to the fitted labels).

    Returns:
        the export directory.

    Raises:
        ValueError: the model's feature signature is unknown (nothing fitted yet), or its feeder
            state is of a kind this version cannot serve.
    """
    meta.load()
    features_sig, targets_sig = meta.features, meta.targets
    if features_sig is None:
        raise ValueError("Cannot export: the feature signature is unknown; fit the model (or predict once) first.")
    inputs = inputs if inputs is not None else serving_inputs(meta)
    outputs = outputs if outputs is not None else label_decoder(meta)

    rt = Runtime(model, None)

    def serve(**received: Any) -> dict[str, tf.Tensor]:
        features = inputs.features(received)
        batch = tf.shape(tf.nest.flatten(features)[0], out_type=tf.int64)[0]
        predictions = rt.call_model(features, dummy_targets(targets_sig, batch), ModeKeys.INFER).predictions
        return outputs(dict(predictions) if isinstance(predictions, Mapping) else predictions)

    function = tf.function(serve)
    with clean_errors():
        concrete = function.get_concrete_function(**inputs.specs())
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
    module.lookup_tables = inputs.resources
    module.input_keys = tf.Variable(inputs.keys, trainable=False, dtype=tf.string, name="input_keys")
    module.input_columns = tf.Variable(inputs.columns, trainable=False, dtype=tf.string, name="input_columns")
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


def export_model(
    state: ModelState,
    export_dir_base: str,
    checkpoint_path: str | None = None,
    inputs: ServingInputs | None = None,
    outputs: Callable[[Any], dict[str, tf.Tensor]] | None = None,
) -> str:
    """`export_saved_model` of a model's state: the weights in memory, or `checkpoint_path` (a path,
    a directory or "best"). `inputs`/`outputs`: as in `export_saved_model` (a canned estimator's own).

    Returns:
        the export directory.
    """
    if checkpoint_path is not None:
        path = resolve_checkpoint(state.model_dir, checkpoint_path)
        return export_saved_model(
            state.model, state.meta, export_dir_base, checkpoint_path=path, inputs=inputs, outputs=outputs
        )
    rt = state.ready_runtime("export_saved_model")
    restore = lambda variables: state.weights.restore(variables, False, "export")  # noqa: E731
    return export_saved_model(
        state.model,
        state.meta,
        export_dir_base,
        weights=rt.store.variables,
        restore=restore,
        inputs=inputs,
        outputs=outputs,
    )
