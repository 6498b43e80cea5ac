"""A canned estimator's SavedModel: its raw input in, its `predict`/`predict_proba` answers out.

`export_canned` exports the inner Estimator with the canned estimator's own signature: a model
fitted on a DataFrame takes one input per column by name (see `estimators.serving`; a numeric
DataFrame's columns are stacked into the model's matrix in the fitted order, each input with the
column's own dtype), one fitted on an array takes `features`. Outputs, whatever the labels' kind:

- classifiers: `classes` (the labels of `classes_`, `tf.string` for strings, `tf.int64`,
  `tf.bool` or `tf.float64` otherwise), `class_ids` (int64 positions in `classes_`) and
  `probabilities` (float32, one column per class in `classes_` order), as `predict` and
  `predict_proba` return them;
- regressors: `predictions` (float32, in the targets' units; shape (n,) or (n, n_outputs)).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import tensorflow as tf
from sklearn.utils.validation import check_is_fitted

from estimators.export import export_model
from estimators.serving import column_inputs, decode_ids, label_tensor

__all__ = ["classifier_outputs", "export_canned", "regressor_outputs"]


def export_canned(estimator: Any, export_dir_base: str | os.PathLike, checkpoint_path: str | None = None) -> str:
    """Export a fitted canned `estimator` under `export_dir_base/<timestamp>` (see the module docstring).

    Args:
        estimator: a fitted canned estimator.
        export_dir_base: the parent directory of the export.
        checkpoint_path: export this checkpoint (a path, a directory or "best") instead of the weights in memory.

    Returns:
        the export directory.

    Raises:
        NotFittedError: the estimator is not fitted.
    """
    check_is_fitted(estimator, "estimator_")
    state = estimator.estimator_._setup()
    inputs = None
    names = getattr(estimator, "feature_names_in_", None)
    if not estimator._vocabulary_sizes and names is not None:
        state.meta.load()
        dtypes = getattr(estimator, "_column_dtypes", None)
        inputs = column_inputs(state.meta, [str(n) for n in names], dtypes)
    return export_model(state, os.fspath(export_dir_base), checkpoint_path, inputs=inputs, outputs=estimator._outputs())


def classifier_outputs(classes: Any) -> Callable[[Any], dict[str, tf.Tensor]]:
    """The outputs of a classifier whose labels are `classes` (`classes_`): `classes` (the label of
    the most probable class), `class_ids` and `probabilities`."""

    def outputs(predictions: Any) -> dict[str, tf.Tensor]:
        probabilities = predictions["probabilities"]
        ids = tf.argmax(probabilities, axis=1)
        return {"classes": decode_ids(ids, label_tensor(classes)), "class_ids": ids, "probabilities": probabilities}

    return outputs


def regressor_outputs(predictions: Any) -> dict[str, tf.Tensor]:
    """The output of a regressor: `predictions`, in the targets' units."""
    return {"predictions": predictions["predictions"]}
