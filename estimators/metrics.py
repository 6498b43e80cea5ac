"""Evaluation metrics by name, Keras metric objects, or functions, streamed over a whole pass.

`evaluate(metrics=...)` takes a list (`["accuracy", "auc", keras.metrics.Precision()]`) or a dict
(`{"acc": "accuracy", "top": MetricSpec("accuracy", prediction_key="classes")}`). When predictions
are a dict, the metric reads the key given by `MetricSpec.prediction_key`, or a conventional one
("classes"/"class" for accuracy, "probabilities"/"prob" for AUC, "predictions"/"scores" for
regression metrics), or the only key.

Named metrics, by task:
- classification: "accuracy" (class ids, or per-class scores whose argmax is taken), "auc" (binary,
  or macro one-vs-rest over per-class probabilities), "precision", "recall", "f1" (two classes,
  positive class 1) and, for any number of classes, their averages "precision_macro",
  "precision_micro", "precision_weighted" (likewise "recall_*", "f1_*"), which is what scikit-learn's
  `average=` means. Precision-type metrics stream a confusion matrix, so the number of classes need
  not be known in advance.
- regression: "mse", "rmse", "mae", "r2", and "mean_prediction".
A metric that does not fit the task (accuracy of float regression outputs, binary precision over
three classes) is an error that names those that fit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import keras
import numpy as np
import tensorflow as tf

__all__ = ["ConfusionMetric", "MetricSpec", "R2Score", "StreamingMetric", "metric_key", "resolve_metrics"]

_AVERAGES = ("macro", "micro", "weighted")
_CONFUSION = tuple(f"{m}{a}" for m in ("precision", "recall", "f1") for a in ("", *(f"_{x}" for x in _AVERAGES)))
_NAMED = ("accuracy", "auc", *_CONFUSION, "mse", "mae", "rmse", "r2", "mean_prediction")
_CLASS_KEYS = ("classes", "class", "class_ids", "predictions")
_PREFERRED_KEYS = {
    "accuracy": _CLASS_KEYS,
    **{name: ("classes", "class", "class_ids", "probabilities", "probs", "prob", "predictions") for name in _CONFUSION},
    "auc": ("probabilities", "probs", "prob", "logistic", "predictions"),
}
_REGRESSION_HINT = "For regression outputs use 'mse', 'rmse', 'mae' or 'r2'."
_REGRESSION_KEYS = ("predictions", "scores", "outputs", "values")


class MetricSpec(NamedTuple):
    """A metric plus which prediction (and which target, for dict targets) it reads.

    Args:
        metric: a name from `("accuracy", "auc", "mse", "mae", "rmse", "precision", "recall",
            "mean_prediction")`, a Keras metric instance or class, or `fn(y_true, y_pred) -> tensor`
            whose values are averaged.
        prediction_key: key of the predictions dict to use.
        label_key: key of the targets dict to use.
    """

    metric: Any
    prediction_key: str | None = None
    label_key: str | None = None


class StreamingMetric:
    """One metric of one evaluation: `update(targets, predictions)` per batch, `result()` at the end."""

    def __init__(self, name: str, spec: MetricSpec) -> None:
        self.name = name
        self.spec = spec
        self._metric: keras.metrics.Metric | None = None
        self._transform: Callable[[Any, Any], tuple[Any, Any]] | None = None

    def build(self, targets: Any, predictions: Any) -> None:
        """Choose the concrete Keras metric from the shapes (called once, at trace time, in init scope)."""
        y_true, y_pred = self._select(targets, predictions)
        metric = self.spec.metric
        if isinstance(metric, str):
            self._metric, self._transform = _named_metric(metric, y_true, y_pred)
        elif isinstance(metric, keras.metrics.Metric):
            self._metric = metric
        elif isinstance(metric, type) and issubclass(metric, keras.metrics.Metric):
            self._metric = metric()
        elif callable(metric):
            fn = metric
            self._metric = keras.metrics.Mean(name=self.name)
            self._transform = lambda t, p: (None, fn(t, p))
        else:
            raise ValueError(
                f"Metric {self.name!r}: expected a name from {list(_NAMED)}, a Keras metric, or a function "
                f"fn(y_true, y_pred); received {type(metric).__name__}."
            )

    @property
    def built(self) -> bool:
        return self._metric is not None

    def reset(self) -> None:
        if self._metric is not None:
            self._metric.reset_state()

    def update(self, targets: Any, predictions: Any) -> None:
        y_true, y_pred = self._select(targets, predictions)
        if self._transform is not None:
            y_true, y_pred = self._transform(y_true, y_pred)
        if y_true is None:  # a mean of per-example values
            self._metric.update_state(y_pred)
        else:
            self._metric.update_state(y_true, y_pred)

    def result(self) -> float:
        value = float(self._metric.result())
        if self.spec.metric == "rmse":
            value = value**0.5
        return value

    def _select(self, targets: Any, predictions: Any) -> tuple[Any, Any]:
        return (
            _pick(targets, self.spec.label_key, (), self.name, "targets") if targets is not None else None,
            _pick(predictions, self.spec.prediction_key, _preferred(self.spec.metric), self.name, "predictions"),
        )


def _preferred(metric: Any) -> tuple[str, ...]:
    if isinstance(metric, str):
        return _PREFERRED_KEYS.get(metric, _REGRESSION_KEYS)
    return ()


def _pick(value: Any, key: str | None, preferred: tuple[str, ...], metric: str, what: str) -> Any:
    if not isinstance(value, Mapping):
        if key is not None:
            raise ValueError(f"Metric {metric!r} asks for {what} key {key!r}, but {what} are a single tensor.")
        return value
    if key is not None:
        if key not in value:
            raise ValueError(f"Metric {metric!r} asks for {what} key {key!r}; {what} have keys {sorted(value)}.")
        return value[key]
    for k in preferred:
        if k in value:
            return value[k]
    if len(value) == 1:
        return next(iter(value.values()))
    raise ValueError(
        f"Metric {metric!r}: {what} are a dict with keys {sorted(value)}; say which one to use with "
        f"MetricSpec({metric!r}, {'prediction_key' if what == 'predictions' else 'label_key'}=...)."
    )


def _squeeze_last(t: tf.Tensor) -> tf.Tensor:
    if t.shape.rank is not None and t.shape.rank >= 2 and t.shape[-1] == 1:
        return tf.squeeze(t, -1)
    return t


def _named_metric(name: str, y_true: Any, y_pred: Any) -> tuple[keras.metrics.Metric, Callable | None]:
    if y_true is None:
        if name == "mean_prediction":
            return keras.metrics.Mean(name=name), lambda t, p: (None, tf.cast(p, tf.float32))
        raise ValueError(f"Metric {name!r} needs targets, but evaluation has none.")
    if name == "accuracy":
        pred_rank, true_rank = _squeeze_last(y_pred).shape.rank, _squeeze_last(y_true).shape.rank
        if pred_rank is not None and true_rank is not None and pred_rank == true_rank + 1:
            # Per-class scores against integer labels: argmax.
            return keras.metrics.Mean(name=name), lambda t, p: (
                None,
                tf.cast(tf.equal(tf.cast(tf.argmax(p, -1), tf.int64), tf.cast(_squeeze_last(t), tf.int64)), tf.float32),
            )
        if y_pred.dtype.is_floating:
            raise ValueError(
                f"Metric 'accuracy' compares predicted classes with labels, but the predictions it reads are "
                f"{y_pred.dtype.name} values of the labels' shape: a regression output (or scores). Return class ids "
                f"(tf.argmax(logits, 1), tf.cast(probability > 0.5, tf.int64)) or per-class scores. {_REGRESSION_HINT}"
            )
        return keras.metrics.Mean(name=name), lambda t, p: (
            None,
            tf.cast(tf.equal(tf.cast(_squeeze_last(p), tf.int64), tf.cast(_squeeze_last(t), tf.int64)), tf.float32),
        )
    if name in ("mse", "rmse"):
        return keras.metrics.Mean(name=name), lambda t, p: (
            None,
            tf.reduce_mean(
                tf.reshape(
                    tf.square(tf.cast(_squeeze_last(p), tf.float32) - tf.cast(_squeeze_last(t), tf.float32)),
                    [tf.shape(p)[0], -1],
                ),
                -1,
            ),
        )
    if name == "mae":
        return keras.metrics.Mean(name=name), lambda t, p: (
            None,
            tf.reduce_mean(
                tf.reshape(
                    tf.abs(tf.cast(_squeeze_last(p), tf.float32) - tf.cast(_squeeze_last(t), tf.float32)),
                    [tf.shape(p)[0], -1],
                ),
                -1,
            ),
        )
    if name == "auc":
        k = y_pred.shape[-1] if y_pred.shape.rank == 2 else None
        if k is not None and k > 2:
            # Per-class probabilities against integer labels: macro one-vs-rest AUC.
            return keras.metrics.AUC(name=name, multi_label=True, num_labels=k), lambda t, p: (
                tf.one_hot(tf.cast(tf.reshape(t, [-1]), tf.int32), k),
                tf.cast(p, tf.float32),
            )
        return keras.metrics.AUC(name=name), _binary_scores
    if name in _CONFUSION:
        return ConfusionMetric(name), None
    if name == "r2":
        return R2Score(), None
    if name == "mean_prediction":
        return keras.metrics.Mean(name=name), lambda t, p: (None, tf.cast(p, tf.float32))
    raise ValueError(f"Unknown metric {name!r}. Expected one of {list(_NAMED)}, a Keras metric, or a function.")


def metric_key(spec: MetricSpec) -> Any:
    """A hashable key of a metric spec (compiled evaluation functions are cached per set of metrics)."""
    metric = spec.metric
    ident = metric if isinstance(metric, str) else id(metric)
    return (ident, spec.prediction_key, spec.label_key)


def _class_ids(p: tf.Tensor) -> tf.Tensor:
    """Predicted class ids from ids, from a probability of class 1 (> 0.5), or from per-class scores (argmax)."""
    if p.shape.rank is not None and p.shape.rank >= 2 and p.shape[-1] not in (None, 1):
        return tf.argmax(p, axis=-1)
    p = tf.reshape(p, [-1])
    if p.dtype.is_floating:
        return tf.cast(p > 0.5, tf.int64)
    return tf.cast(p, tf.int64)


class ConfusionMetric:
    """Precision, recall or F1 from a streamed confusion matrix that grows with the classes it sees.

    "precision" (and "recall", "f1") is binary: class 1 against class 0, as scikit-learn's default
    `average="binary"`; over more classes it is an error naming the averaged forms. "precision_macro"
    averages the per-class values over the classes present (in labels or predictions),
    "_weighted" weights them by each class's number of labels, "_micro" pools the counts.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.kind, _, self.average = name.partition("_")
        self.matrix = tf.Variable(tf.zeros([0, 0], tf.int64), shape=tf.TensorShape([None, None]), trainable=False)

    def update_state(self, y_true: Any, y_pred: Any) -> None:
        t = tf.reshape(tf.cast(y_true, tf.int64), [-1])
        p = _class_ids(y_pred)
        old = tf.shape(self.matrix, out_type=tf.int64)[0]
        k = tf.maximum(old, tf.reduce_max(tf.concat([t, p, tf.constant([-1], tf.int64)], 0)) + 1)
        pad = tf.stack([tf.constant(0, tf.int64), k - old])
        grown = tf.pad(self.matrix, tf.stack([pad, pad]))
        self.matrix.assign(grown + tf.math.confusion_matrix(t, p, num_classes=k, dtype=tf.int64))

    def reset_state(self) -> None:
        self.matrix.assign(tf.zeros([0, 0], tf.int64))

    def result(self) -> float:
        m = self.matrix.numpy().astype(np.float64)
        if not self.average:
            if len(m) > 2:
                raise ValueError(
                    f"Metric {self.name!r} is binary (class 1 against class 0), but the evaluation data has "
                    f"{len(m)} classes. Use {self.name!r} with an averaging: "
                    + ", ".join(f"'{self.name}_{a}'" for a in _AVERAGES)
                    + "."
                )
            m = np.pad(m, [(0, 2 - len(m)), (0, 2 - len(m))])
            tp, fp, fn = m[1, 1], m[0, 1], m[1, 0]
            return _score(self.kind, tp, fp, fn)
        tp, predicted, actual = np.diag(m), m.sum(axis=0), m.sum(axis=1)
        if self.average == "micro":
            return _score(self.kind, tp.sum(), predicted.sum() - tp.sum(), actual.sum() - tp.sum())
        present = (predicted + actual) > 0
        scores = np.array([_score(self.kind, tp[i], predicted[i] - tp[i], actual[i] - tp[i]) for i in range(len(m))])
        if self.average == "weighted":
            return float(np.average(scores, weights=actual)) if actual.sum() else 0.0
        return float(scores[present].mean()) if present.any() else 0.0


def _score(kind: str, tp: float, fp: float, fn: float) -> float:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    if kind == "precision":
        return float(precision)
    if kind == "recall":
        return float(recall)
    return float(2 * precision * recall / (precision + recall)) if precision + recall else 0.0


class R2Score:
    """The coefficient of determination, streamed (sums of y, y² and squared errors), averaged over outputs."""

    def __init__(self) -> None:
        self.sums = tf.Variable(tf.zeros([0, 4], tf.float64), shape=tf.TensorShape([None, 4]), trainable=False)

    def update_state(self, y_true: Any, y_pred: Any) -> None:
        t = tf.cast(_squeeze_last(y_true), tf.float64)
        p = tf.cast(_squeeze_last(y_pred), tf.float64)
        t, p = tf.reshape(t, [tf.shape(t)[0], -1]), tf.reshape(p, [tf.shape(p)[0], -1])
        n = tf.cast(tf.shape(t)[0], tf.float64) * tf.ones_like(t[0])
        batch = tf.stack([n, tf.reduce_sum(t, 0), tf.reduce_sum(t * t, 0), tf.reduce_sum(tf.square(t - p), 0)], 1)
        first = tf.equal(tf.shape(self.sums)[0], 0)
        self.sums.assign(tf.cond(first, lambda: batch, lambda: self.sums + batch))

    def reset_state(self) -> None:
        self.sums.assign(tf.zeros([0, 4], tf.float64))

    def result(self) -> float:
        s = self.sums.numpy()
        if not len(s):
            return float("nan")
        n, total, squares, errors = s.T
        variance = squares - total**2 / np.maximum(n, 1)
        r2 = np.where(variance > 0, 1 - errors / np.where(variance > 0, variance, 1), 0.0)
        return float(r2.mean())


def _binary_scores(t: Any, p: Any) -> tuple[Any, Any]:
    p = tf.cast(p, tf.float32)
    if p.shape.rank is not None and p.shape.rank == 2 and p.shape[-1] == 2:
        p = p[:, 1]  # probabilities of both classes: the positive one
    return tf.reshape(tf.cast(t, tf.float32), [-1]), tf.reshape(p, [-1])


def resolve_metrics(metrics: Any) -> dict[str, MetricSpec]:
    """Normalize `evaluate(metrics=...)` into name -> MetricSpec.

    Raises:
        ValueError: for a wrong container type or duplicate names.
    """
    if metrics is None:
        return {}
    if (
        isinstance(metrics, (str, MetricSpec, keras.metrics.Metric))
        or callable(metrics)
        and not isinstance(metrics, Mapping)
    ):
        metrics = [metrics]
    out: dict[str, MetricSpec] = {}
    if isinstance(metrics, Mapping):
        for name, spec in metrics.items():
            out[str(name)] = spec if isinstance(spec, MetricSpec) else MetricSpec(spec)
        return out
    if not isinstance(metrics, (list, tuple)):
        raise ValueError(f"`metrics` must be a list, a dict or None; received {type(metrics).__name__}.")
    for spec in metrics:
        spec = spec if isinstance(spec, MetricSpec) else MetricSpec(spec)
        name = _metric_name(spec)
        if name in out:
            raise ValueError(f"Two metrics are both named {name!r}; pass a dict to name them.")
        out[name] = spec
    return out


def _metric_name(spec: MetricSpec) -> str:
    m = spec.metric
    base = m if isinstance(m, str) else getattr(m, "name", None) or getattr(m, "__name__", None) or type(m).__name__
    return f"{base}/{spec.prediction_key}" if spec.prediction_key else str(base)
