"""The `retrain` section of a pipeline config (`RetrainConfig`) and the checks a retrain needs of a
config: which rows are new, warm start, the metric champion and challenger are judged on, and the
improvement a challenger must show (`flows.retrain.retrain_flow` uses them).

Kept apart from `flows.config` (which imports it) and importing nothing of skflow, so that loading a
config stays light.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["RetrainConfig", "check_retrain_section", "judged_metrics", "retrain_metric"]


class RetrainConfig(BaseModel):
    """Retraining (`flows.retrain.retrain_flow`): which rows are new, how the challenger is trained
    and when it replaces the champion.

    Attributes:
        window_days: train on the last N days of `date_column` only (counted back from its newest
            date); None: every row of the source (all partitions so far).
        since: train on the rows whose `date_column` is at or after this ISO date; None: no bound.
        date_column: the date/time column of `window_days` / `since`. default: `split.column`.
        warm_start: start the challenger from the champion's checkpoint (it trains `fit`'s steps
            more) instead of from scratch. default=False.
        metric: the metric champion and challenger are judged on (one `evaluate` reports, scored on
            the same held-out rows). default: the first of `metrics`, else accuracy (classifiers)
            or r2 (regressors).
        min_delta: the challenger replaces the champion only when it is better by at least this
            much, in the metric's units. default=0.
    """

    model_config = ConfigDict(extra="forbid")

    window_days: float | None = Field(None, gt=0)
    since: str | None = None
    date_column: str | None = None
    warm_start: bool = False
    metric: str | None = None
    min_delta: float = Field(0.0, ge=0)

    @field_validator("since")
    @classmethod
    def _date(cls, since: str | None) -> str | None:
        if since is not None:
            import pandas as pd

            try:
                pd.Timestamp(since)
            except (ValueError, TypeError):
                raise ValueError(f"retrain.since {since!r} is not an ISO date, e.g. 2026-11-01") from None
        return since


def check_retrain_section(config: Any) -> None:
    """Check a `PipelineConfig`'s `retrain` section against the rest of it (a date column for a
    window, a metric the pipeline evaluates with a known direction).

    Raises:
        ValueError: naming the field and what is allowed (the config's validation reports it).
    """
    spec = config.retrain
    windowed = spec.window_days is not None or spec.since is not None
    if windowed and not (spec.date_column or (config.split.kind == "time" and config.split.column)):
        raise ValueError(
            "retrain.window_days and retrain.since need retrain.date_column (or a time split's split.column): "
            "the date column that says which rows are new"
        )
    if spec.metric is not None:
        allowed = judged_metrics(config)
        if spec.metric.removeprefix("eval_") not in allowed:
            raise ValueError(
                f"retrain.metric {spec.metric!r} is not one this pipeline evaluates with a known direction; "
                f"use one of {allowed} (or add it to metrics)"
            )


def judged_metrics(config: Any) -> list[str]:
    """The metrics a retrain can judge a `PipelineConfig`'s models on (scored from their predictions):
    its `metrics`, and accuracy/log_loss for classifiers or r2/mse for regressors."""
    classifier = config.estimator.is_classifier
    default = [] if classifier is None else (["accuracy", "log_loss"] if classifier else ["r2", "mse"])
    return list(dict.fromkeys(m for m in [*config.metrics, *default] if m != "mean_prediction"))


def retrain_metric(config: Any) -> str | None:
    """The metric a retrain judges champion and challenger on: `retrain.metric`, else the first of
    `judged_metrics` (the first of `metrics`, else accuracy for classifiers, r2 for regressors);
    None for a custom model_fn with neither `metrics` nor `estimator.task`."""
    if config.retrain.metric is not None:
        return config.retrain.metric.removeprefix("eval_")
    return next(iter(judged_metrics(config)), None)
