"""ValidationMonitor: evaluate held-out data while training, stop early, keep the best weights.

It fixes the seed's defects: it evaluates the weights *in memory* (not the
last checkpoint, which was often stale), in EVAL mode (dropout off in a well-written model_fn),
on finite data only (an endless input_fn without `eval_steps` is an error at `begin`, not a hang),
and with `keep_best=True` it saves the best weights as their own checkpoint (model_dir/best), so
`evaluate/predict/export_saved_model(checkpoint_path="best")` use them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

from estimators._validation import check_positive_int
from estimators.monitors.base import EveryN

__all__ = ["ValidationMonitor"]

logger = logging.getLogger("skflow")


class ValidationMonitor(EveryN):
    """Evaluate every `every_n_steps` steps; optionally stop early and keep the best checkpoint.

    Args:
        x, y: validation data (any input `fit` accepts), or
        input_fn: a function returning a finite dataset (or pass `eval_steps`).
        batch_size: rows per evaluation batch. default: the fit batch size.
        eval_steps: batches per evaluation; None: one full pass.
        every_n_steps: evaluation period in steps. default=100.
        metrics: as in `Estimator.evaluate`.
        early_stopping_rounds: stop when the metric has not improved for this many steps. default=None.
        early_stopping_metric: the result key to watch. default="loss".
        early_stopping_metric_minimize: whether lower is better. default=True.
        name: evaluation name (summaries go to model_dir/eval_<name>).
        keep_best: save the best weights as model_dir/best. default=False.

    Attributes:
        best_step, best_value: where the watched metric was best so far in this run.
        early_stopped: whether this monitor stopped training (in the latest fit).
        history: list of (step, results) of every evaluation in this run.

    A run is the training of one model: further fits that continue it (same model_dir, global
    step not below `best_step`) keep `best_*` and `history`; a fit that starts another model
    (another model_dir, or a restart below `best_step`) resets them, so one monitor can be passed
    to fit after fit.

    Passed to a canned estimator's `fit(monitors=[...])`, x and y are raw data like that fit's:
    the fit's `TrainingContext.eval_input` encodes them as its model is trained (a classifier's
    labels become class ids). A regressor's "mse"/"mae" are in the target's units, while its "loss"
    is the MSE of standardised targets (the scale it trains on). An `input_fn` must yield encoded data.

    Each evaluation's results are reported to the other monitors as `val_<name>` metrics
    (`val_<self.name>_<name>` with a `name`), which is how `MlflowMonitor` records them.
    """

    def __init__(
        self,
        x: Any = None,
        y: Any = None,
        input_fn: Callable[[], Any] | None = None,
        batch_size: int | None = None,
        eval_steps: int | None = None,
        every_n_steps: int = 100,
        metrics: Any = None,
        early_stopping_rounds: int | None = None,
        early_stopping_metric: str = "loss",
        early_stopping_metric_minimize: bool = True,
        name: str | None = None,
        keep_best: bool = False,
    ) -> None:
        super().__init__(every_n_steps=every_n_steps, first_n_steps=0)
        if (x is None) == (input_fn is None):
            raise ValueError("ValidationMonitor needs either x (with y) or input_fn, not both.")
        self.x, self.y, self.input_fn = x, y, input_fn
        self.batch_size = check_positive_int("batch_size", batch_size, allow_none=True)
        self.eval_steps = check_positive_int("eval_steps", eval_steps, allow_none=True)
        self.metrics = metrics
        self.early_stopping_rounds = check_positive_int("early_stopping_rounds", early_stopping_rounds, allow_none=True)
        self.early_stopping_metric = early_stopping_metric
        self.early_stopping_metric_minimize = early_stopping_metric_minimize
        self.name = name
        self.keep_best = keep_best
        self.best_step: int | None = None
        self.best_value: float | None = None
        self.early_stopped = False
        self.history: list[tuple[int, dict[str, Any]]] = []
        self._feeder: Any = None
        self._feeder_token: Any = None  # the context input_token the cached feeder was encoded for
        self._run: str | None = None  # the model_dir of the run best_* and history belong to

    def begin(self, max_steps: int | None = None) -> None:
        super().begin(max_steps)
        self.early_stopped = False
        ctx = self.context
        start = self._begin_step or 0  # set by EveryN.begin
        if self._run != ctx.model_dir or (self.best_step is not None and start < self.best_step):
            # Another model (or this one restarted): earlier results say nothing about it.
            self.best_step, self.best_value, self.history = None, None, []
            self._run = ctx.model_dir
        if self.input_fn is None:
            # Validate and encode the held-out data once, not at every evaluation.
            if self._feeder is None or self._feeder_token != ctx.input_token:
                self._feeder = ctx.eval_input(self.x, self.y, self.batch_size)
                self._feeder_token = ctx.input_token
        finite = self._feeder.finite if self._feeder is not None else ctx.input_is_finite(self.input_fn)
        if not finite and self.eval_steps is None:
            raise ValueError(
                "ValidationMonitor's input is endless (it repeats forever): evaluation would never end. Pass "
                "eval_steps=, or make the input finite."
            )

    def every_n_post_step(self, step: int) -> None:
        """Validate the final weights too when training ended between two validation steps (they may be
        the best ones, and `keep_best` should see them)."""
        self.every_n_step_end(step, {"global_step": step})

    def every_n_step_end(self, step: int, outputs: Mapping[str, Any]) -> bool:
        ctx = self.context
        if self._feeder is not None:
            results = ctx.evaluate(self._feeder, steps=self.eval_steps, metrics=self.metrics, name=self.name)
        else:
            results = ctx.evaluate(input_fn=self.input_fn, steps=self.eval_steps, metrics=self.metrics, name=self.name)
        self.history.append((step, results))
        prefix = f"val_{self.name}_" if self.name else "val_"
        ctx.report_metrics({prefix + k: float(v) for k, v in results.items() if k != "global_step"}, step)
        if self.early_stopping_metric not in results:
            raise ValueError(
                f"early_stopping_metric={self.early_stopping_metric!r} is not among the evaluation results {sorted(results)}."
            )
        value = float(results[self.early_stopping_metric])
        logger.info(
            "Validation (step %d): %s",
            step,
            ", ".join(f"{k} = {v:.6g}" for k, v in results.items() if k != "global_step"),
        )
        improved = self.best_value is None or (
            value < self.best_value if self.early_stopping_metric_minimize else value > self.best_value
        )
        if improved and math.isfinite(value):
            self.best_value, self.best_step = value, step
            if self.keep_best:
                ctx.save_best({k: v for k, v in results.items() if isinstance(v, (int, float))})
        if (
            self.early_stopping_rounds is not None
            and self.best_step is not None
            and step - self.best_step >= self.early_stopping_rounds
        ):
            ctx.report(
                f"Stopping early at step {step}: {self.early_stopping_metric} has not improved for "
                f"{step - self.best_step} steps (best {self.best_value:.6g} at step {self.best_step})."
            )
            self.early_stopped = True
            return True
        return False
