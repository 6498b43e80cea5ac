"""Held-out evaluation and the logged model of a pipeline's training run (library code the
evaluate and log_model tasks call).

A custom `Estimator` is evaluated by `Estimator.evaluate` with the config's `metrics`
(`eval_loss`, `eval_accuracy`, ...). A canned estimator is scored the scikit-learn way by
`flows.tracking.log_evaluation` (`eval_accuracy` and `eval_log_loss`, or `eval_r2`), and the
config's `metrics` are computed from its predictions with `sklearn.metrics` under the same names.
With `fit.keep_best`, the best validated checkpoint is what is evaluated and logged.

The logged model is the estimator's SavedModel export (the best checkpoint with `fit.keep_best`),
serving the training columns as they are.

Every logged model becomes a new version of the pipeline's registered model
(`tracking.registered_model`, default: the experiment's name; `register_trained_model`): the
first version gets the alias `champion`, later ones `challenger`, and each version is tagged with
its model_dir, training data and data fingerprint, which a retrain reads.

The run's primary metric (the first of `metrics`, else the loss or the canned score) is recorded
in the tags `skflow.primary_metric` and `skflow.primary_metric_goal` ("min"/"max"), which
`skflow runs` sorts by.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from typing import Any

import numpy as np

from flows.config import PipelineConfig
from flows.training import TrainingData

__all__ = ["RegisteredVersion", "evaluate_model", "log_trained_model", "primary_metric", "register_trained_model"]

logger = logging.getLogger("skflow")

LOWER_IS_BETTER = ("loss", "log_loss", "mse", "rmse", "mae")


def primary_metric(config: PipelineConfig) -> tuple[str, str]:
    """The run's primary metric (`eval_<name>`) and whether higher ("max") or lower ("min") is better."""
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
    takes the training columns as they are (strings and categories included); returns its
    `models:/...` URI (`register_trained_model` then registers it)."""
    from flows.tracking import log_model

    if config.fit.keep_best:
        with tempfile.TemporaryDirectory(prefix="skflow_best_") as tmp:
            export = estimator.export_saved_model(os.path.join(tmp, "export"), checkpoint_path="best")
            info = log_model(run, export_dir=export, input_example=data.example, step=step)
    else:
        info = log_model(run, estimator, input_example=data.example, step=step)
    return info.model_uri


@dataclass(frozen=True)
class RegisteredVersion:
    """A model version a pipeline registered. Attributes: name, version ("1", ...), alias set
    ("champion" or "challenger"), model_uri (`models:/NAME/VERSION`)."""

    name: str
    version: str
    alias: str

    @property
    def model_uri(self) -> str:
        """`models:/NAME/VERSION`."""
        return f"models:/{self.name}/{self.version}"


def register_trained_model(
    run: Any,
    model_uri: str,
    config: PipelineConfig,
    model_dir: str,
    train_data: str,
    fingerprint: str,
) -> RegisteredVersion:
    """Register a logged model as a new version of the pipeline's registered model
    (`PipelineConfig.registered_model_name`), tag it with what a retrain needs (`skflow.model_dir`,
    `skflow.train_data`: the training split's Parquet file, `skflow.data.fingerprint`) and give it
    the alias `champion` (the registered model's first version) or `challenger`.

    Args:
        run: the MLflow run that logged the model.
        model_uri: the logged model (`models:/<model id>`).
        config: the pipeline.
        model_dir: the model's checkpoints.
        train_data: the training rows (a Parquet file), the reference of a retrain's drift report.
        fingerprint: the fingerprint of the data the model was trained on.
    """
    from flows.tracking import register_model
    from flows.tracking.registry import alias_new_version, set_version_tags

    name = config.registered_model_name
    version = register_model(model_uri, name, tracking_uri=run.tracking_uri)
    tags = {"skflow.model_dir": model_dir, "skflow.train_data": train_data, "skflow.data.fingerprint": fingerprint}
    set_version_tags(name, version, tags, tracking_uri=run.tracking_uri)
    chosen = alias_new_version(name, version, tracking_uri=run.tracking_uri)
    logger.info("Registered %s as version %s of %s (@%s).", model_uri, version, name, chosen)
    return RegisteredVersion(name, version, chosen)
