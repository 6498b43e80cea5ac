"""Monitors: observe and stop Estimator training (the seed's `monitors` module).

Pass them to `fit(..., monitors=[...])` (and `partial_fit`); they are not constructor parameters, so
`get_params()` holds hyperparameters only.

Writing a monitor outside this package
--------------------------------------
Subclass `BaseMonitor` (every hook is a no-op) or `EveryN` (hooks every N steps) and override the
hooks you need; `Monitor` lists every hook the training loop calls and when. Reach the model only
through `self.context`, the fit's `TrainingContext` (set before `begin`): `global_step`,
`max_steps`, `model_dir`, `config`, `batch_size`, `last_loss`, `is_chief`, `evaluate(...)` on the
weights in memory, `eval_input(x, y)`, `save_checkpoint()`, `save_best(results)`,
`latest_checkpoint()`, `export_saved_model(dir)`, `variable_names()`, `variable_value(name)`,
`summary_writer()`/`write_scalars(...)` and `report(message)`. Every built-in monitor uses only
these. Keep hooks cheap: ask for values with `next_step`/`step_begin` at the steps you need them,
and batch anything slow (network calls) rather than doing it per step::

    class LossHistory(EveryN):
        def __init__(self, every_n_steps=100):
            super().__init__(every_n_steps=every_n_steps, first_n_steps=1)
            self.losses = []

        def every_n_step_end(self, step, outputs):
            self.losses.append((step, outputs["loss"]))
            return False  # True would stop training

        def end(self):
            super().end()
            print(f"{len(self.losses)} losses; checkpoints in {self.context.model_dir}")

By default a monitor runs on the chief worker only; set `run_on_all_workers = True` on the class for
one that must run everywhere (it must then not write files). `abort(exception)` is called instead of
`end()` when training stops on an exception, so a tracking monitor can record the failure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from estimators.monitors.base import BaseMonitor, EveryN, Monitor, MonitorList
from estimators.monitors.basic import (
    CaptureVariable,
    LoggingTrainable,
    LossLogger,
    NanLoss,
    NanLossDuringTrainingError,
    PrintTensor,
    StepCounter,
    StopAtStep,
)
from estimators.monitors.checkpoints import CheckpointSaver, ExportMonitor
from estimators.monitors.context import TrainingContext
from estimators.monitors.summaries import ProgressBar, SummarySaver
from estimators.monitors.validation import ValidationMonitor

if TYPE_CHECKING:
    from estimators.run_config import RunConfig


def get_default_monitors(config: RunConfig, partial: bool = False) -> list[BaseMonitor]:
    """The monitors every fit runs (cheap enough to leave on): loss logging (the "skflow" logger),
    TensorBoard scalars, and progress on stderr as `RunConfig.verbose` says ("auto": a bar on a
    terminal, a line every `log_step_count_steps` steps otherwise; 2: lines; 0: nothing).
    `partial_fit` gets only the summaries: no per-call chatter."""
    monitors: list[BaseMonitor] = []
    every = config.log_step_count_steps
    if config.verbose and not partial and every:
        monitors.append(LossLogger(every))
    if config.save_summary_steps and config.is_chief:
        monitors.append(SummarySaver(config.save_summary_steps))
    if config.verbose and not partial:
        mode = "lines" if config.verbose == 2 else "auto"
        monitors.append(ProgressBar(mode=mode, every_n_steps=every or 100))
    return monitors


__all__ = [
    "BaseMonitor",
    "CaptureVariable",
    "CheckpointSaver",
    "EveryN",
    "ExportMonitor",
    "LoggingTrainable",
    "LossLogger",
    "Monitor",
    "MonitorList",
    "NanLoss",
    "NanLossDuringTrainingError",
    "PrintTensor",
    "ProgressBar",
    "StepCounter",
    "StopAtStep",
    "SummarySaver",
    "TrainingContext",
    "ValidationMonitor",
    "get_default_monitors",
]
