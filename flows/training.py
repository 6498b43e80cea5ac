"""The training a pipeline runs, as plain library code (the fit task is three lines around it).

- `load_training_data`: the split's Parquet files as the estimator's input: DataFrames in memory,
  or `FileDataFeeder`s that stream files over the memory budget.
- `build_estimator`: the canned estimator or custom `Estimator(model_fn)` the config names, on
  `model_dir` (one per MLflow run), built fresh on every attempt: nothing of a failed attempt's
  Python objects is reused.
- `build_monitors`: a `ValidationMonitor` from `fit` (validation every N steps, early stopping,
  keep best) and the `MlflowMonitor` recording into the flow's run.
- `train_to_step`: train until the global step is exactly `target`, resuming from model_dir's
  checkpoints. An attempt that crashed at step k left a checkpoint at k (the training loop saves
  on the way out); the next attempt restores it and trains `target - k` more steps, so a retried
  fit ends at exactly the requested step and its metrics continue the same MLflow run. A custom
  `Estimator` does this itself with `fit(max_steps=target)`; a canned estimator's `fit` counts
  steps from where it restores (`steps=`), so it continues with `warm_start=True` on the same
  model_dir and a monitor stops it exactly at `target` (`_TrainTo`).

Example::

    data = load_training_data(splits, config)
    target = total_steps(config.fit, data.train_rows)
    estimator = build_estimator(config, model_dir, target)
    monitors = build_monitors(config, data, run, fingerprint)
    step = train_to_step(estimator, data, target, monitors, config.fit.batch_size, config.fit.impute)
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from typing import Any

from estimators.monitors import BaseMonitor, ValidationMonitor
from flows.config import FitConfig, PipelineConfig, resolve_model_fn
from flows.data import Splits, read_part

__all__ = [
    "TrainingData",
    "build_estimator",
    "build_monitors",
    "checkpoint_step",
    "load_training_data",
    "total_steps",
    "train_to_step",
]

logger = logging.getLogger("skflow")


@dataclass
class TrainingData:
    """A fit's inputs, in memory for this process only (never hashed or persisted by Prefect).

    Attributes:
        x, y: training features (a DataFrame, or a `FileDataFeeder` with y None) and targets.
        x_eval, y_eval: held-out rows, the same way.
        train_rows, eval_rows: row counts.
        features: the feature columns.
        example: a few held-out rows as a DataFrame (the logged model's input example).
        streamed: x and x_eval stream files.
    """

    x: Any
    y: Any
    x_eval: Any
    y_eval: Any
    train_rows: int
    eval_rows: int
    features: list[str]
    example: Any
    streamed: bool = False


def load_training_data(splits: Splits, config: PipelineConfig) -> TrainingData:
    """The split's rows as the estimator takes them (DataFrames; `FileDataFeeder`s when streamed)."""
    features, target = list(splits.features), config.target
    if splits.streamed:
        from feeders import FileDataFeeder

        fit = config.fit
        common = {"target_column": target, "feature_columns": features, "batch_size": fit.batch_size}
        budget = {"memory_budget_mb": fit.memory_budget_mb}
        x = FileDataFeeder(splits.train, seed=config.split.seed, **common, **budget)
        x_eval = FileDataFeeder(splits.eval, shuffle=False, epochs=1, **common, **budget)
        example = _head(splits.eval, features)
        return TrainingData(x, None, x_eval, None, splits.train_rows, splits.eval_rows, features, example, True)
    train = read_part(splits.train, [*features, target])
    held_out = read_part(splits.eval, [*features, target])
    return TrainingData(
        train[features],
        train[target].to_numpy(),
        held_out[features],
        held_out[target].to_numpy(),
        len(train),
        len(held_out),
        features,
        held_out[features].head(5),
    )


def _head(path: str, columns: list[str], rows: int = 5) -> Any:
    import pyarrow.parquet as pq

    batch = next(pq.ParquetFile(path).iter_batches(batch_size=rows, columns=columns))
    return batch.to_pandas()


def total_steps(fit: FitConfig, train_rows: int) -> int:
    """The global step a fit ends at: `fit.steps`, or `fit.epochs` passes over the training rows,
    whichever comes first when both are given."""
    per_epoch = math.ceil(train_rows / fit.batch_size)
    candidates = [s for s in (fit.steps, fit.epochs * per_epoch if fit.epochs else None) if s is not None]
    return max(1, min(candidates))


def build_estimator(config: PipelineConfig, model_dir: str, target: int) -> Any:
    """The estimator the config names, on `model_dir`.

    Its `RunConfig` logs the loss and steps/s on the "skflow" logger about ten times per fit
    (unless `estimator.config.log_step_count_steps` says otherwise) and shows progress on stderr
    (`verbose="auto"`: a bar on a terminal, lines otherwise). A canned estimator gets
    `warm_start=True` (it continues a model_dir's checkpoints: how a retried attempt resumes; a
    new run's model_dir is empty, so the first attempt starts from scratch) and, unless the
    params say otherwise, `random_state=split.seed`; `impute` and `batch_size` come from `fit`. Its
    parameters, and so the MLflow run's params, must be the same on every attempt.
    """
    from estimators import Estimator, RunConfig

    spec = config.estimator
    fields = {"log_step_count_steps": max(1, min(100, target // 10)), "verbose": "auto", **spec.config}
    run_config = RunConfig(**fields)
    if spec.name is not None:
        import estimators

        params = {
            "random_state": config.split.seed,
            **spec.params,  # the config refuses the arguments set here
            "impute": config.fit.impute,
            "batch_size": config.fit.batch_size,
            "model_dir": model_dir,
            "warm_start": True,
            "config": run_config,
        }
        return getattr(estimators, spec.name)(**params)
    model_fn = resolve_model_fn(spec.model_fn)
    return Estimator(model_fn, model_dir=model_dir, config=run_config, params=dict(spec.params) or None)


def build_monitors(
    config: PipelineConfig,
    data: TrainingData,
    run: Any,
    fingerprint: str | None = None,
    dataset_source: str | None = None,
) -> list[Any]:
    """A `ValidationMonitor` when `fit.validation_every_n_steps` is set, then the `MlflowMonitor`
    recording into `run` (the flow's run: the flow ends it, so the monitor only sets FAILED or
    KILLED). Call `close()` on the MLflow monitor when the flow is done with it."""
    from flows.tracking import MlflowMonitor

    fit = config.fit
    monitors: list[Any] = []
    if fit.validation_every_n_steps:
        watched = fit.early_stopping_metric
        monitors.append(
            ValidationMonitor(
                data.x_eval,
                data.y_eval,
                every_n_steps=fit.validation_every_n_steps,
                metrics=list(config.metrics) or None,
                early_stopping_rounds=fit.early_stopping_rounds,
                early_stopping_metric=watched,
                early_stopping_metric_minimize=watched in ("loss", "mse", "rmse", "mae"),
                keep_best=fit.keep_best,
            )
        )
    monitors.append(
        MlflowMonitor(
            run=run,
            tracking_uri=run.tracking_uri,
            every_n_steps=config.tracking.log_every_n_steps,
            fingerprint=fingerprint,
            dataset_name=config.experiment,
            dataset_source=dataset_source,
        )
    )
    return monitors


class AlreadyTrained(Exception):
    """Raised by `_TrainTo` when the model is already at its target step (nothing to train)."""


class _TrainTo(BaseMonitor):
    """Stops a fit exactly at global step `target`; a fit that begins there stops before any step
    (`AlreadyTrained`, raised before the monitors after it begin, so nothing is recorded)."""

    run_on_all_workers = True

    def __init__(self, target: int) -> None:
        super().__init__()
        self.target = target
        self._needed = True

    def begin(self, max_steps: int | None = None) -> None:
        super().begin(max_steps)
        if self.context.global_step >= self.target:
            raise AlreadyTrained(self.context.global_step)
        self._needed = max_steps != self.target  # the fit would not end there by itself

    def next_step(self, step: int) -> int | None:
        return self.target if self._needed and step < self.target else None

    def step_end(self, step: int, outputs: Any) -> bool:
        return step >= self.target


def checkpoint_step(model_dir: str) -> int:
    """The global step of model_dir's latest checkpoint (`model.ckpt-<step>`), 0 without one."""
    import tensorflow as tf

    latest = tf.train.latest_checkpoint(model_dir) if os.path.isdir(model_dir) else None
    tail = (latest or "").rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def train_to_step(
    estimator: Any, data: TrainingData, target: int, monitors: list[Any], batch_size: int, impute: str | None = None
) -> int:
    """Train `estimator` until its global step is `target`, in batches of `batch_size` rows (a
    streamed input's feeder has its own), resuming from its model_dir; returns the step reached
    (below `target` only when a monitor stopped early)."""
    model_dir = estimator.get_params()["model_dir"]
    start = checkpoint_step(model_dir)
    if start:
        logger.info("Resuming from the checkpoint at step %d of %s (target: step %d).", start, model_dir, target)
    from estimators import Estimator

    if not isinstance(estimator, Estimator):  # a canned estimator
        try:
            estimator.fit(
                data.x,
                data.y,
                steps=max(target - start, 1),
                batch_size=batch_size,
                monitors=[_TrainTo(target), *monitors],
            )
        except AlreadyTrained as done:
            logger.info("The model is already at step %s of %d: nothing to train.", done, target)
        return checkpoint_step(model_dir)
    if data.streamed:
        estimator.fit(data.x, max_steps=target, monitors=monitors)
    else:
        estimator.fit(data.x, data.y, max_steps=target, batch_size=batch_size, monitors=monitors, impute=impute)
    return checkpoint_step(model_dir)
