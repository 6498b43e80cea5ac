"""Monitors: observe and stop Estimator training (the seed's `monitors` module).

Pass them to `fit(..., monitors=[...])` (and `partial_fit`); they are not constructor parameters, so
`get_params()` holds hyperparameters only.
"""

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
from estimators.monitors.summaries import ProgressBar, SummarySaver
from estimators.monitors.validation import ValidationMonitor


def get_default_monitors(config: object, partial: bool = False) -> list[BaseMonitor]:
    """The monitors every fit runs (cheap enough to leave on): loss logging, TensorBoard scalars, and a
    progress bar on a terminal; none with `RunConfig(verbose=0)` (summaries still follow
    `save_summary_steps`). `partial_fit` gets only the summaries: no per-call chatter."""
    monitors: list[BaseMonitor] = []
    verbose = getattr(config, "verbose", 1)
    if verbose and not partial and getattr(config, "log_step_count_steps", 0):
        monitors.append(LossLogger(config.log_step_count_steps))
    if getattr(config, "save_summary_steps", 0) and getattr(config, "is_chief", True):
        monitors.append(SummarySaver(config.save_summary_steps))
    if verbose and not partial:
        monitors.append(ProgressBar(every_n_steps=max(getattr(config, "steps_per_execution", 32), 1)))
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
    "ValidationMonitor",
    "get_default_monitors",
]
