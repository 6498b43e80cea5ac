"""The final evaluation of a run: `eval_*` metrics at the global step, and a classifier's confusion matrix."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flows.tracking.plots import confusion_matrix_figure, log_figure
from flows.tracking.runs import TrackedRun
from flows.tracking.store import bounded_requests, get_client

__all__ = ["log_evaluation"]

logger = logging.getLogger("skflow")

_CLASS_KEYS = ("classes", "class", "class_ids")


def log_evaluation(
    run: TrackedRun,
    estimator: Any,
    x: Any,
    y: Any,
    metrics: Any = None,
    step: int | None = None,
    prefix: str = "eval_",
    confusion_matrix: bool | None = None,
) -> dict[str, float]:
    """Evaluate `estimator` on held-out `(x, y)` and log the results to `run` at the global step.

    An `Estimator` is evaluated with `evaluate(x, y, metrics=metrics)` (`eval_loss`,
    `eval_accuracy`, ...); a scikit-learn-style estimator (the canned ones) with its `score`
    (`eval_accuracy` for a classifier, `eval_r2` for a regressor) and, for a classifier with
    `predict_proba`, `eval_log_loss`. A classifier also gets `plots/confusion_matrix.png`.

    Args:
        run: the run to log to.
        estimator: a fitted estimator.
        x, y: held-out data.
        metrics: an `Estimator`'s `evaluate` metrics (e.g. ["accuracy"]). default=None.
        step: the step to log at. default: the evaluation's global step (else the latest checkpoint's).
        prefix: metric name prefix. default="eval_".
        confusion_matrix: draw the confusion matrix; default=None: for classifiers (a canned
            classifier, or predictions with a "class"/"classes" key or integer predictions).

    Returns:
        the metrics logged, by name.
    """
    import numpy as np

    if hasattr(estimator, "evaluate"):
        results = estimator.evaluate(x, y, metrics=metrics)
        step = int(results.get("global_step", 0)) if step is None else step
        values = {f"{prefix}{k}": float(v) for k, v in results.items() if k != "global_step" and _is_number(v)}
        predicted = _predicted_classes(estimator.predict(x)) if confusion_matrix is not False else None
    else:
        from sklearn.base import is_classifier
        from sklearn.metrics import log_loss

        classifier = is_classifier(estimator)
        values = {f"{prefix}{'accuracy' if classifier else 'r2'}": float(estimator.score(x, y))}
        if classifier and hasattr(estimator, "predict_proba"):
            labels = getattr(estimator, "classes_", None)
            values[f"{prefix}log_loss"] = float(log_loss(y, estimator.predict_proba(x), labels=labels))
        predicted = estimator.predict(x) if classifier and confusion_matrix is not False else None
        step = _checkpoint_step(estimator) if step is None else step
    client = get_client(run.tracking_uri)
    from mlflow.entities import Metric

    from flows.tracking.logger import now_ms

    stamp = now_ms()
    with bounded_requests():
        client.log_batch(run.run_id, metrics=[Metric(k, v, stamp, step) for k, v in values.items()])
    if predicted is not None and confusion_matrix is not False:
        y_true = np.asarray(y).reshape(-1)
        labels = getattr(estimator, "classes_", None)
        fig = confusion_matrix_figure(y_true, np.asarray(predicted).reshape(-1), labels)
        with bounded_requests(timeout=60):
            log_figure(client, run.run_id, fig, "confusion_matrix.png")
    return values


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return getattr(value, "ndim", 0) == 0


def _predicted_classes(predictions: Any) -> Any:
    """Class predictions of a custom model_fn, or None when they do not look like classes."""
    if isinstance(predictions, Mapping):
        key = next((k for k in _CLASS_KEYS if k in predictions), None)
        return predictions[key] if key is not None else None
    kind = getattr(getattr(predictions, "dtype", None), "kind", "f")
    return predictions if kind in "iuUSOb" else None


def _checkpoint_step(estimator: Any) -> int:
    inner = getattr(estimator, "estimator_", estimator)
    latest = inner.latest_checkpoint() if hasattr(inner, "latest_checkpoint") else None
    tail = (latest or "").rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0
