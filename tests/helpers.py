"""Model functions shared by tests (importable, so subprocesses and pickling can use them)."""

from __future__ import annotations

import keras
import tensorflow as tf

from estimators import EstimatorSpec, ModeKeys, optimize_loss

TRACES = {"count": 0}


def mlp_fn(features, targets, mode, params):
    """The README's seed-style classifier."""
    TRACES["count"] += 1
    hidden = keras.layers.Dense(params.get("hidden", 16), activation="relu")(features)
    logits = keras.layers.Dense(params["n_classes"])(hidden)
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(tf.cast(targets, tf.int32), logits))
    train_op = optimize_loss(
        loss, optimizer=params.get("optimizer", "Adagrad"), learning_rate=params.get("learning_rate", 0.1)
    )
    return {"class": tf.argmax(logits, 1), "prob": tf.nn.softmax(logits)}, loss, train_op


def linear_fn(features, targets):
    """Two-argument seed signature: linear regression."""
    pred = tf.squeeze(keras.layers.Dense(1)(features), -1)
    loss = tf.reduce_mean(tf.square(pred - tf.cast(targets, tf.float32)))
    return pred, loss, optimize_loss(loss, "SGD", 0.05)


def spec_fn(features, labels, mode, params, config):
    """tf.estimator's five-argument form, returning an EstimatorSpec."""
    logits = keras.layers.Dense(params["n_classes"])(features)
    probs = tf.nn.softmax(logits)
    predictions = {"class": tf.argmax(logits, 1), "prob": probs}
    if mode == ModeKeys.INFER:
        return EstimatorSpec(mode, predictions=predictions)
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(tf.cast(labels, tf.int32), logits))
    train_op = optimize_loss(loss, "Adam", 0.05) if mode == ModeKeys.TRAIN else None
    correct = tf.cast(tf.equal(tf.argmax(logits, 1), tf.cast(labels, tf.int64)), tf.float32)
    return EstimatorSpec(
        mode,
        predictions,
        loss,
        train_op,
        eval_metric_ops={"my_accuracy": correct, "my_auc_like": ("accuracy", labels, predictions["class"])},
    )


def embedding_fn(features, targets, mode, params):
    """A classifier on a PandasFeeder's dict features: the numeric block plus one embedded categorical column."""
    ids = features[params["column"]]
    embedded = keras.layers.Embedding(params["vocabulary_size"], 2)(ids)
    logits = keras.layers.Dense(params["n_classes"])(tf.concat([features["numeric"], embedded], axis=1))
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(tf.cast(targets, tf.int32), logits))
    return {"class": tf.argmax(logits, 1)}, loss, optimize_loss(loss, "Adam", 0.1)


def logistic_fn(features, targets):
    """Binary logistic regression on dense float features (one logit, class = logit > 0)."""
    logits = tf.squeeze(keras.layers.Dense(1)(features), -1)
    loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(tf.cast(targets, tf.float32), logits))
    return tf.cast(logits > 0, tf.int64), loss, optimize_loss(loss, "Adam", 0.05)


def sparse_logistic_fn(features, targets, params):
    """Binary logistic regression on a `tf.SparseTensor` of shape (batch, params["n_features"])."""
    weights = tf.Variable(tf.zeros([params["n_features"], 1]), name="weights")
    logits = tf.squeeze(tf.sparse.sparse_dense_matmul(features, weights), -1)
    loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(tf.cast(targets, tf.float32), logits))
    return tf.cast(logits > 0, tf.int64), loss, optimize_loss(loss, "Adam", 0.1)


def class_accuracy(estimator, X, y):
    """A scikit-learn scoring callable for Estimators whose predictions dict has a "class" key."""
    import numpy as np

    return float(np.mean(estimator.predict(X)["class"] == y))


def echo_fn(features, targets, mode):
    """A classifier on a PandasFeeder's dict (or a matrix) whose predictions also echo the features it
    was fed (`in_<key>`): an export's preprocessing can be compared with the feeder's exactly."""
    numeric = features["numeric"] if isinstance(features, dict) else features
    logits = keras.layers.Dense(2)(numeric)
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(tf.cast(targets, tf.int32), logits))
    echoed = features if isinstance(features, dict) else {"features": features}
    predictions = {f"in_{k}": v for k, v in echoed.items()}
    predictions["class"] = tf.argmax(logits, 1)
    return predictions, loss, optimize_loss(loss, "SGD", 0.01)


def serve_frame(export_dir, frame):
    """The outputs (numpy) of an export's `serving_default` signature fed a DataFrame's columns by
    name (through the recorded `input_columns` -> `input_keys` mapping), cast to each input's dtype."""
    loaded = tf.saved_model.load(export_dir)
    serve = loaded.signatures["serving_default"]
    specs = serve.structured_input_signature[1]
    columns = [c.decode() for c in loaded.input_columns.numpy()]
    keys = [k.decode() for k in loaded.input_keys.numpy()]
    feeds = {}
    for column, key in zip(columns, keys, strict=True):
        dtype = specs[key].dtype
        values = frame[column]
        array = (
            values.astype(str).to_numpy(dtype=object) if dtype == tf.string else values.to_numpy(dtype.as_numpy_dtype)
        )
        feeds[key] = tf.constant(array, dtype)
    return {k: v.numpy() for k, v in serve(**feeds).items()}
