"""The model_fns behind the canned estimators: linear, DNN, and wide-and-deep, for both heads.

Each is an ordinary seed-style `model_fn(features, targets, mode, params)`, run by the same
`Estimator` machinery as a user's. Features are a float matrix, or the dict that `PandasFeeder`
makes of a DataFrame with categorical columns (`"numeric"` block + one id vector per column, with
`params["vocabulary_sizes"]`). Targets are class ids or regression values, or a dict
`{"y": ..., "sample_weight": ...}` when sample weights are given.
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


def _split_targets(targets: Any) -> tuple[Any, Any]:
    if isinstance(targets, Mapping):
        return targets["y"], targets.get("sample_weight")
    return targets, None


def _wide_inputs(features: Any, params: Mapping[str, Any], n_out: int) -> tf.Tensor:
    """A linear function of the features: dense weights on the numeric block, and one weight vector
    per category (an embedding of width n_out is exactly a one-hot linear layer)."""
    if not isinstance(features, Mapping):
        return keras.layers.Dense(n_out, name="linear")(tf.cast(features, tf.float32))
    parts = []
    if "numeric" in features:
        parts.append(keras.layers.Dense(n_out, name="linear")(features["numeric"]))
    for name, size in sorted(params.get("vocabulary_sizes", {}).items()):
        parts.append(
            keras.layers.Embedding(size, n_out, embeddings_initializer="zeros", name=f"linear_{_safe(name)}")(
                features[name]
            )
        )
    return tf.add_n(parts)


def _deep_inputs(features: Any, params: Mapping[str, Any]) -> tf.Tensor:
    if not isinstance(features, Mapping):
        return tf.cast(features, tf.float32)
    parts = [features["numeric"]] if "numeric" in features else []
    for name, size in sorted(params.get("vocabulary_sizes", {}).items()):
        dim = min(16, int(math.ceil(size**0.5)) + 1)
        parts.append(keras.layers.Embedding(size, dim, name=f"embedding_{_safe(name)}")(features[name]))
    return tf.concat(parts, axis=1)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c == "_" else "_" for c in str(name))


def _tower(inputs: tf.Tensor, params: Mapping[str, Any], mode: str) -> tf.Tensor:
    net = inputs
    for i, units in enumerate(params["hidden_units"]):
        net = keras.layers.Dense(units, activation=params.get("activation", "relu"), name=f"hiddenlayer_{i}")(net)
        if params.get("dropout"):
            net = keras.layers.Dropout(params["dropout"], seed=params.get("seed"))(net, training=mode == ModeKeys.TRAIN)
    return net


def _head(logits: tf.Tensor, targets: Any, mode: str, params: Mapping[str, Any]) -> tuple[Any, Any, Any]:
    y, weight = _split_targets(targets)
    if params["head"] == "classifier":
        probabilities = tf.nn.softmax(logits)
        predictions = {"class_ids": tf.argmax(logits, axis=1), "probabilities": probabilities, "logits": logits}
        per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.reshape(tf.cast(y, tf.int32), [-1]), logits)
    else:
        outputs = params["n_outputs"]
        predictions = {"predictions": logits if outputs > 1 else logits[:, 0]}
        y = tf.reshape(tf.cast(y, tf.float32), [-1, outputs])
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
    logits = _wide_inputs(features, params, _n_out(params))
    return _head(logits, targets, mode, params)


def dnn_model_fn(features: Any, targets: Any, mode: str, params: Mapping[str, Any]) -> tuple[Any, Any, Any]:
    """Feed-forward network: hidden_units Dense layers (with dropout in TRAIN), then the head."""
    net = _tower(_deep_inputs(features, params), params, mode)
    logits = keras.layers.Dense(_n_out(params), name="logits")(net)
    return _head(logits, targets, mode, params)


def dnn_linear_combined_model_fn(
    features: Any, targets: Any, mode: str, params: Mapping[str, Any]
) -> tuple[Any, Any, Any]:
    """Wide and deep: the sum of a linear model and a DNN, trained jointly."""
    wide = _wide_inputs(_select(features, params.get("linear_features")), params, _n_out(params))
    net = _tower(_deep_inputs(_select(features, params.get("dnn_features")), params), params, mode)
    deep = keras.layers.Dense(_n_out(params), name="logits")(net)
    return _head(wide + deep, targets, mode, params)


def _select(features: Any, columns: Any) -> Any:
    """The features one part of wide-and-deep sees: all, or the given column indices of a matrix."""
    if columns is None:
        return features
    if isinstance(features, Mapping):
        return {k: v for k, v in features.items() if k in columns or k == "numeric"}
    return tf.gather(features, list(columns), axis=1)
