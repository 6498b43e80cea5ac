"""Export to a TF SavedModel whose serving signature returns what `predict()` returns."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import tensorflow as tf

from estimators import _checkpoints as ckpt
from estimators._context import clean_errors
from estimators._runtime import Runtime, dummy_targets
from estimators.model_fn import ModeKeys

if TYPE_CHECKING:
    from estimators.estimator import Estimator

logger = logging.getLogger("skflow")


def export_saved_model(
    est: Estimator, export_dir_base: str, checkpoint_path: str | None = None, as_text: bool = False
) -> str:
    """Write `export_dir_base/<unix timestamp>/`, atomically (a temp dir renamed when complete).

    The model is rebuilt in a separate runtime (no distribution wrappers, no optimizer state) from the
    in-memory weights, or from `checkpoint_path` when given. Inputs are named `features` (or by the
    dict keys of dict features); a single prediction tensor is output as `predictions`.
    """
    if checkpoint_path is None:
        source_rt = est._ready_runtime("export_saved_model")
    else:
        source_rt = None
        if not tf.io.gfile.exists(checkpoint_path + ".index"):
            raise ValueError(f"checkpoint_path={checkpoint_path!r} is not a checkpoint (no {checkpoint_path}.index).")
    est._load_signatures()
    features_sig, targets_sig = est._features_info, est._targets_info
    if features_sig is None:
        raise ValueError("Cannot export: the feature signature is unknown; fit the model (or predict once) first.")

    rt = Runtime(est, None)

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
    if source_rt is not None:
        for name, var in model_vars.items():
            var.assign(source_rt.store.variables[name].read_value())
    else:
        ckpt.restore_variables(checkpoint_path, model_vars, est.model_dir)

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
    del as_text  # SavedModel is always binary protobuf in TF2; kept for signature compatibility
    return final
