"""Evaluation metrics by name, Keras metric objects, or functions, streamed over a whole pass.

`evaluate(metrics=...)` takes a list (`["accuracy", "auc", keras.metrics.Precision()]`) or a dict
(`{"acc": "accuracy", "top": MetricSpec("accuracy", prediction_key="classes")}`). When predictions
are a dict, the metric reads the key given by `MetricSpec.prediction_key`, or a conventional one
("classes"/"class" for accuracy, "probabilities"/"prob" for AUC, "predictions"/"scores" for
regression metrics), or the only key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import keras
import tensorflow as tf

__all__ = ["MetricSpec", "StreamingMetric", "resolve_metrics"]

_NAMED = ("accuracy", "auc", "mse", "mae", "rmse", "precision", "recall", "mean_prediction")
_PREFERRED_KEYS = {
    "accuracy": ("classes", "class", "class_ids", "predictions"),
    "precision": ("classes", "class", "class_ids", "predictions"),
    "recall": ("classes", "class", "class_ids", "predictions"),
    "auc": ("probabilities", "probs", "prob", "logistic", "predictions"),
}
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
        return keras.metrics.Mean(name=name), lambda t, p: (
            None,
            tf.cast(tf.equal(tf.cast(_squeeze_last(p), tf.float64), tf.cast(_squeeze_last(t), tf.float64)), tf.float32),
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
    if name == "precision":
        return keras.metrics.Precision(name=name), _binary_scores
    if name == "recall":
        return keras.metrics.Recall(name=name), _binary_scores
    if name == "mean_prediction":
        return keras.metrics.Mean(name=name), lambda t, p: (None, tf.cast(p, tf.float32))
    raise ValueError(f"Unknown metric {name!r}. Expected one of {list(_NAMED)}, a Keras metric, or a function.")


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
