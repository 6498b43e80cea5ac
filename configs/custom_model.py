"""A custom model_fn for `configs/custom_model.yaml`: a seed-style regression network, written the
way a 2016 `tf.contrib.learn` model_fn was (layers inline, a loss, `optimize_loss`).

The pipeline imports it by the config's `estimator.model_fn: "configs.custom_model:model_fn"`
(`skflow run` puts the current directory on the import path, so run it from the project root).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from estimators import ModeKeys, optimize_loss


def model_fn(features, targets, mode, params):
    """An MLP regressor on a float32 feature matrix; targets are divided by `target_scale` inside."""
    scale = float(params.get("target_scale", 1.0))
    hidden = features
    for units in params["hidden_units"]:
        hidden = keras.layers.Dense(units, activation="relu")(hidden)
        hidden = keras.layers.Dropout(params.get("dropout", 0.0))(hidden, training=mode == ModeKeys.TRAIN)
    predictions = tf.squeeze(keras.layers.Dense(1)(hidden), -1) * scale
    loss = None
    train_op = None
    if targets is not None:
        loss = tf.reduce_mean(tf.square((predictions - tf.cast(targets, tf.float32)) / scale))
        train_op = optimize_loss(loss, optimizer="Adam", learning_rate=params["learning_rate"])
    return {"predictions": predictions}, loss, train_op
