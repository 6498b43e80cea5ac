"""Held-out evaluation and the logged model of a pipeline's training run (library code the
evaluate and log_model tasks call).

A custom `Estimator` is evaluated by `Estimator.evaluate` with the config's `metrics`
(`eval_loss`, `eval_accuracy`, ...). A canned estimator is scored the scikit-learn way by
`flows.tracking.log_evaluation` (`eval_accuracy` and `eval_log_loss`, or `eval_r2`), and the
config's `metrics` are computed from its predictions with `sklearn.metrics` under the same names.
With `fit.keep_best`, the best validated checkpoint is what is evaluated and logged.

The logged model is the estimator's SavedModel export (the best checkpoint with `fit.keep_best`),
serving the training columns as they are.

The run's primary metric (the first of `metrics`, else the loss or the canned score) is recorded
in the tags `skflow.primary_metric` and `skflow.primary_metric_goal` ("min"/"max"), which
`skflow runs` sorts by.
"""

from __future__ import annotations

import logging
import os
import tempfile
from typing import Any

import numpy as np

from flows.config import PipelineConfig
from flows.training import TrainingData

__all__ = ["evaluate_model", "log_trained_model", "primary_metric"]

logger = logging.getLogger("skflow")

LOWER_IS_BETTER = ("loss", "log_loss", "mse", "rmse", "mae")


def primary_metric(config: PipelineConfig) -> tuple[str, str]:
    """The logged model is the estimator's SavedModel export (the best checkpoint with `fit.keep_best`),
    serving the training columns as they are.

    The run's primary metric (`eval_<name>`) and whether higher ("max") or lower ("min") is better."""
    chosen = next((m for m in config.metrics if m != "mean_prediction"), None)
    if chosen is None:
        if config.estimator.name is None:
            chosen = "loss"
        else:
            chosen = "accuracy" if config.estimator.is_classifier else "r2"
    return f"eval_{chosen}", "min" if chosen in LOWER_IS_BETTER else "max"


def evaluate_model(run: Any, estimator: Any, data: TrainingData, config: PipelineConfig, step: int) -> dict[str, float]:
    """Evaluate on the held-out rows, log `eval_*` metrics (and a classifier's confusion matrix) to
    `run` at `step`, tag the primary metric; returns the metrics."""
    from estimators import Estimator
    from flows.tracking import log_evaluation
    from flows.tracking.store import bounded_requests, get_client

    metrics = list(config.metrics) or None
    if isinstance(estimator, Estimator):
        model = _Pinned(estimator, "best") if config.fit.keep_best else estimator
        confusion = False if data.streamed else None
        values = log_evaluation(
            run, model, data.x_eval, data.y_eval, metrics=metrics, step=step, confusion_matrix=confusion
        )
    else:
        values = log_evaluation(run, estimator, data.x_eval, data.y_eval, step=step)
        extra = {f"eval_{k}": v for k, v in sklearn_metrics(estimator, data.x_eval, data.y_eval, metrics).items()}
        if extra:
            _log_metrics(run, extra, step)
        values.update(extra)
    name, goal = primary_metric(config)
    with bounded_requests():
        client = get_client(run.tracking_uri)
        client.set_tag(run.run_id, "skflow.primary_metric", name)
        client.set_tag(run.run_id, "skflow.primary_metric_goal", goal)
    return values


class _Pinned:
    """An Estimator seen as of one checkpoint ("best"), for `log_evaluation`."""

    def __init__(self, estimator: Any, checkpoint: str) -> None:
        self.estimator, self.checkpoint = estimator, checkpoint

    def evaluate(self, x: Any, y: Any = None, **kwargs: Any) -> dict[str, Any]:
        return self.estimator.evaluate(x, y, checkpoint_path=self.checkpoint, **kwargs)

    def predict(self, x: Any, **kwargs: Any) -> Any:
        return self.estimator.predict(x, checkpoint_path=self.checkpoint, **kwargs)


def sklearn_metrics(estimator: Any, x: Any, y: Any, names: list[str] | None) -> dict[str, float]:
    """The metrics `names` (as `Estimator.evaluate` names them) of a scikit-learn-style estimator's
    predictions on (x, y), computed with `sklearn.metrics`."""
    from sklearn import metrics as skm

    if not names:
        return {}
    y = np.asarray(y)
    predicted = estimator.predict(x)
    out: dict[str, float] = {}
    classes = getattr(estimator, "classes_", None)
    for name in names:
        if name == "accuracy":
            out[name] = skm.accuracy_score(y, predicted)
        elif name == "auc":
            proba = estimator.predict_proba(x)
            out[name] = (
                skm.roc_auc_score(y == classes[1], proba[:, 1])
                if len(classes) == 2
                else skm.roc_auc_score(y, proba, multi_class="ovr", labels=classes)
            )
        elif name.startswith(("precision", "recall", "f1")):
            base, _, average = name.partition("_")
            score = {"precision": skm.precision_score, "recall": skm.recall_score, "f1": skm.f1_score}[base]
            if average:
                out[name] = score(y, predicted, average=average, zero_division=0)
            else:
                out[name] = score(y, predicted, pos_label=classes[-1], zero_division=0)
        elif name in ("mse", "rmse"):
            mse = skm.mean_squared_error(y, predicted)
            out[name] = float(np.sqrt(mse)) if name == "rmse" else mse
        elif name == "mae":
            out[name] = skm.mean_absolute_error(y, predicted)
        elif name == "r2":
            out[name] = skm.r2_score(y, predicted)
        elif name == "mean_prediction":
            out[name] = float(np.mean(predicted))
    return {k: float(v) for k, v in out.items()}


def _log_metrics(run: Any, values: dict[str, float], step: int) -> None:
    from mlflow.entities import Metric

    from flows.tracking.logger import now_ms
    from flows.tracking.store import bounded_requests, get_client

    stamp = now_ms()
    with bounded_requests():
        get_client(run.tracking_uri).log_batch(
            run.run_id, metrics=[Metric(k, v, stamp, step) for k, v in values.items()]
        )


def log_trained_model(run: Any, estimator: Any, data: TrainingData, config: PipelineConfig, step: int) -> str:
    """Log the model (the best checkpoint with `fit.keep_best`) as the run's pyfunc model, which
    takes the training columns as they are (strings and categories included), and register it
    when `tracking.registered_model` is set; returns its `models:/...` URI."""
    from flows.tracking import log_model, register_model

    if config.fit.keep_best:
        with tempfile.TemporaryDirectory(prefix="skflow_best_") as tmp:
            export = estimator.export_saved_model(os.path.join(tmp, "export"), checkpoint_path="best")
            info = log_model(run, export_dir=export, input_example=data.example, step=step)
    else:
        info = log_model(run, estimator, input_example=data.example, step=step)
    name = config.tracking.registered_model
    if name:
        version = register_model(info.model_uri, name, tracking_uri=run.tracking_uri)
        logger.info("Registered %s as version %s of %s.", info.model_uri, version, name)
    return info.model_uri
