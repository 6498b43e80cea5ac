"""The model_fns behind the canned estimators: linear, DNN, and wide-and-deep, for both heads.

Each is an ordinary seed-style `model_fn(features, targets, mode, params)`, run by the same
`Estimator` machinery as a user's. Features are a float matrix, or the dict that `PandasFeeder`
makes of a DataFrame with categorical columns (`"numeric"` block + one id vector per column, with
`params["vocabulary_sizes"]` and `params["numeric_columns"]`, the block's column names). Targets
are class ids or regression values, or a dict `{"y": ..., "sample_weight": ...}` when sample
weights are given.

The numeric features are standardised in the graph, `(x - params["feature_mean"]) /
params["feature_scale"]` (one value per column of the matrix or of the numeric block; no
standardisation when `feature_mean` is None), so predict, an export and a pickled model all apply
the statistics learned at fit with no Python code around the model. Likewise the regressor learns
standardised targets, `(y - params["target_mean"]) / params["target_scale"]` (its loss is the MSE
on that scale), and its "predictions" output is scaled back to the targets' units.

Training and evaluation run in float32. Prediction (INFER) recomputes the same layers in float64
and rounds the outputs to float32: a float32 matmul rounds a row's result differently depending on
its position in the batch, so without this a row's prediction would change (in the last bit) with
the rows predicted alongside it; in float64 those differences are far below float32's resolution.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import keras
import tensorflow as tf

from estimators.model_fn import ModeKeys
from estimators.optimizers import optimize_loss

__all__ = ["linear_model_fn", "dnn_model_fn", "dnn_linear_combined_model_fn"]

NUMERIC_KEY = "numeric"


def _split_targets(targets: Any) -> tuple[Any, Any]:
    if isinstance(targets, Mapping):
        return targets["y"], targets.get("sample_weight")
    return targets, None


def _dtype(mode: str) -> tf.DType:
    """float64 to predict (batch-position-invariant outputs), float32 to train and evaluate."""
    return tf.float64 if mode == ModeKeys.INFER else tf.float32


def _dense(inputs: tf.Tensor, units: int, name: str, mode: str, activation: Any = None) -> tf.Tensor:
    """`keras.layers.Dense(units, activation, name=name)(inputs)`, computed in `_dtype(mode)`."""
    layer = keras.layers.Dense(units, activation=activation, name=name)
    out = layer(tf.cast(inputs, tf.float32))  # creates (or finds) the variables; unused in INFER, pruned
    dtype = _dtype(mode)
    if dtype == tf.float32:
        return out
    z = tf.matmul(tf.cast(inputs, dtype), tf.cast(layer.kernel.value, dtype)) + tf.cast(layer.bias.value, dtype)
    return keras.activations.get(activation)(z) if activation is not None else z


def _standardized(features: Any, params: Mapping[str, Any], mode: str) -> Any:
    """The features with the numeric ones standardised (in `_dtype(mode)`) by `params["feature_mean"]`
    and `params["feature_scale"]`; unchanged when `feature_mean` is None."""
    mean = params.get("feature_mean")
    if mean is None:
        return features
    dtype = _dtype(mode)

    def standardize(x: tf.Tensor) -> tf.Tensor:
        return (tf.cast(x, dtype) - tf.constant(mean, dtype)) / tf.constant(params["feature_scale"], dtype)

    if not isinstance(features, Mapping):
        return standardize(features)
    return {k: standardize(v) if k == NUMERIC_KEY else v for k, v in features.items()}


def _embedding(ids: tf.Tensor, size: int, dim: int, name: str, mode: str, **kwargs: Any) -> tf.Tensor:
    # A lookup is exact: casting the float32 rows loses nothing.
    return tf.cast(keras.layers.Embedding(size, dim, name=name, **kwargs)(ids), _dtype(mode))


def _wide_inputs(features: Any, params: Mapping[str, Any], n_out: int, mode: str) -> tf.Tensor:
    """A linear function of the features: dense weights on the numeric block, and one weight vector
    per category (an embedding of width n_out is exactly a one-hot linear layer)."""
    if not isinstance(features, Mapping):
        return _dense(features, n_out, "linear", mode)
    parts = []
    if NUMERIC_KEY in features:
        parts.append(_dense(features[NUMERIC_KEY], n_out, "linear", mode))
    for name, size in sorted(params.get("vocabulary_sizes", {}).items()):
        if name in features:
            parts.append(
                _embedding(features[name], size, n_out, f"linear_{_safe(name)}", mode, embeddings_initializer="zeros")
            )
    return tf.add_n(parts)


def _deep_inputs(features: Any, params: Mapping[str, Any], mode: str) -> tf.Tensor:
    if not isinstance(features, Mapping):
        return tf.cast(features, _dtype(mode))
    parts = [tf.cast(features[NUMERIC_KEY], _dtype(mode))] if NUMERIC_KEY in features else []
    for name, size in sorted(params.get("vocabulary_sizes", {}).items()):
        if name in features:
            dim = min(16, int(math.ceil(size**0.5)) + 1)
            parts.append(_embedding(features[name], size, dim, f"embedding_{_safe(name)}", mode))
    return tf.concat(parts, axis=1)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c == "_" else "_" for c in str(name))


def _tower(inputs: tf.Tensor, params: Mapping[str, Any], mode: str) -> tf.Tensor:
    net = inputs
    for i, units in enumerate(params["hidden_units"]):
        net = _dense(net, units, f"hiddenlayer_{i}", mode, activation=params.get("activation", "relu"))
        if params.get("dropout"):
            # Built in every mode (its seed state is a variable); applied only in TRAIN.
            dropout = keras.layers.Dropout(params["dropout"], seed=params.get("seed"))
            if mode == ModeKeys.TRAIN:
                net = dropout(net, training=True)
    return net


def _head(logits: tf.Tensor, targets: Any, mode: str, params: Mapping[str, Any]) -> tuple[Any, Any, Any]:
    y, weight = _split_targets(targets)
    if params["head"] == "classifier":
        probabilities = tf.cast(tf.nn.softmax(logits), tf.float32)
        predictions = {
            "class_ids": tf.argmax(logits, axis=1),
            "probabilities": probabilities,
            "logits": tf.cast(logits, tf.float32),
        }
        logits = tf.cast(logits, tf.float32)
        per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.reshape(tf.cast(y, tf.int32), [-1]), logits)
    else:
        # The network's outputs are standardised targets; "predictions" are in the targets' units.
        outputs = params["n_outputs"]
        mean, scale = params.get("target_mean"), params.get("target_scale")
        values = logits
        y = tf.reshape(tf.cast(y, tf.float32), [-1, outputs])
        if mean is not None:
            values = logits * tf.constant(scale, logits.dtype) + tf.constant(mean, logits.dtype)
            y = (y - tf.constant(mean, tf.float32)) / tf.constant(scale, tf.float32)
        values = tf.cast(values, tf.float32)
        predictions = {"predictions": values if outputs > 1 else values[:, 0]}
        logits = tf.cast(logits, tf.float32)
        per_example = tf.reduce_mean(tf.square(logits - y), axis=1)
    if weight is not None:
        w = tf.reshape(tf.cast(weight, tf.float32), [-1])
        loss = tf.reduce_sum(per_example * w) / tf.maximum(tf.reduce_sum(w), 1e-12)
    else:
        loss = tf.reduce_mean(per_example)
    train_op = optimize_loss(
        loss,
        optimizer=params.get("optimizer", "Adam"),
        learning_rate=params.get("learning_rate", 0.001),
        clip_gradients=params.get("clip_gradients"),
    )
    return predictions, loss, train_op


def _n_out(params: Mapping[str, Any]) -> int:
    return params["n_classes"] if params["head"] == "classifier" else params["n_outputs"]


def linear_model_fn(features: Any, targets: Any, mode: str, params: Mapping[str, Any]) -> tuple[Any, Any, Any]:
    """Linear (logistic/softmax or least-squares) model."""
    logits = _wide_inputs(_standardized(features, params, mode), params, _n_out(params), mode)
    return _head(logits, targets, mode, params)


def dnn_model_fn(features: Any, targets: Any, mode: str, params: Mapping[str, Any]) -> tuple[Any, Any, Any]:
    """Feed-forward network: hidden_units Dense layers (with dropout in TRAIN), then the head."""
    net = _tower(_deep_inputs(_standardized(features, params, mode), params, mode), params, mode)
    logits = _dense(net, _n_out(params), "logits", mode)
    return _head(logits, targets, mode, params)


def dnn_linear_combined_model_fn(
    features: Any, targets: Any, mode: str, params: Mapping[str, Any]
) -> tuple[Any, Any, Any]:
    """Wide and deep: the sum of a linear model and a DNN, trained jointly.

    `params["linear_features"]` / `params["dnn_features"]` choose the columns each part sees (see `_select`).
    """
    features = _standardized(features, params, mode)
    wide = _wide_inputs(_select(features, params.get("linear_features"), params), params, _n_out(params), mode)
    net = _tower(_deep_inputs(_select(features, params.get("dnn_features"), params), params, mode), params, mode)
    deep = _dense(net, _n_out(params), "logits", mode)
    return _head(wide + deep, targets, mode, params)


def _select(features: Any, columns: Any, params: Mapping[str, Any]) -> Any:
    """The features one part of wide-and-deep sees.

    Args:
        features: a matrix, or the PandasFeeder dict (`"numeric"` block + one id vector per categorical column).
        columns: None (all); for a matrix, column indices; for the dict, column names: numeric ones
            (looked up in `params["numeric_columns"]`, the block's column order) and categorical ones.
    """
    if columns is None:
        return features
    if not isinstance(features, Mapping):
        return tf.gather(features, [int(c) for c in columns], axis=1)
    wanted = set(columns)
    selected = {k: v for k, v in features.items() if k != NUMERIC_KEY and k in wanted}
    numeric = [i for i, name in enumerate(params.get("numeric_columns") or ()) if name in wanted]
    if NUMERIC_KEY in features and numeric:
        block = features[NUMERIC_KEY]
        selected[NUMERIC_KEY] = block if len(numeric) == block.shape[-1] else tf.gather(block, numeric, axis=1)
    return selected
