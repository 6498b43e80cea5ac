"""Built-in monitors that watch values: stopping, NaN checks, logging, rates, captured variables."""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from estimators._validation import check_positive_int
from estimators.monitors.base import BaseMonitor, EveryN

__all__ = [
    "CaptureVariable",
    "LoggingTrainable",
    "LossLogger",
    "NanLoss",
    "NanLossDuringTrainingError",
    "PrintTensor",
    "StepCounter",
    "StopAtStep",
]

logger = logging.getLogger("skflow")


class NanLossDuringTrainingError(RuntimeError):
    """The training loss became NaN (or infinite). The checkpoint before it is left as it was."""

    def __init__(self, step: int, loss: float) -> None:
        super().__init__(
            f"NaN loss during training: loss = {loss} at global step {step}. The last checkpoint saved before it "
            "is intact; lower the learning rate, clip gradients (optimize_loss(clip_gradients=...)), or check the "
            "input for NaN."
        )
        self.step = step
        self.loss = loss


class StopAtStep(BaseMonitor):
    """Stop after `num_steps` more steps, or at global step `last_step` (exactly one of them).

    Raises:
        ValueError: neither or both given.
    """

    run_on_all_workers = True

    def __init__(self, num_steps: int | None = None, last_step: int | None = None) -> None:
        super().__init__()
        if (num_steps is None) == (last_step is None):
            raise ValueError("Exactly one of num_steps and last_step must be provided.")
        self.num_steps = check_positive_int("num_steps", num_steps, allow_none=True)
        self.last_step = check_positive_int("last_step", last_step, allow_none=True)
        self._stop_at: int | None = last_step

    def begin(self, max_steps: int | None = None) -> None:
        super().begin(max_steps)
        if self.num_steps is not None:
            self._stop_at = None  # set from the first step we see

    def next_step(self, step: int) -> int | None:
        if self._stop_at is None:
            self._stop_at = step + self.num_steps
        return self._stop_at if step < self._stop_at else None

    def step_end(self, step: int, outputs: Mapping[str, Any]) -> bool:
        return step >= self._stop_at


class NanLoss(EveryN):
    """Check the loss every `every_n_steps` steps; raise `NanLossDuringTrainingError` (or just stop).

    Args:
        every_n_steps: how often to look (each look is one host sync). default=100.
        fail_on_nan_loss: raise (True) or stop training quietly (False). default=True.
    """

    run_on_all_workers = True

    def __init__(self, every_n_steps: int = 100, fail_on_nan_loss: bool = True) -> None:
        super().__init__(every_n_steps=every_n_steps, first_n_steps=0)
        self.fail_on_nan_loss = fail_on_nan_loss

    def every_n_step_end(self, step: int, outputs: Mapping[str, Any]) -> bool:
        loss = outputs["loss"]
        if math.isfinite(loss):
            return False
        if self.fail_on_nan_loss:
            raise NanLossDuringTrainingError(step, loss)
        logger.error("NaN loss at global step %d; stopping training.", step)
        return True


class LossLogger(EveryN):
    """Log `loss = ..., step = ...` and steps/s every `every_n_steps` steps, and the final loss."""

    def __init__(self, every_n_steps: int = 100) -> None:
        super().__init__(every_n_steps=every_n_steps, first_n_steps=1)
        self._last: tuple[int, float] | None = None

    def begin(self, max_steps: int | None = None) -> None:
        super().begin(max_steps)
        self._last = None

    def every_n_step_end(self, step: int, outputs: Mapping[str, Any]) -> bool:
        now = time.perf_counter()
        rate = ""
        if self._last is not None and step > self._last[0]:
            rate = f" ({(step - self._last[0]) / (now - self._last[1]):.1f} steps/s)"
        logger.info("loss = %.6g, step = %d%s", outputs["loss"], step, rate)
        self._last = (step, now)
        return False

    def end(self) -> None:
        loss = self.context.last_loss
        if loss is not None:
            logger.info("Loss for final step: %.6g.", loss)


class PrintTensor(EveryN):
    """Log the values of named tensors every `every_n` steps.

    Names: "loss", "global_step", "learning_rate", or a variable name (`Estimator.get_variable_names()`).
    `tensor_names` may be a dict tag -> name.
    """

    def __init__(self, tensor_names: Iterable[str] | Mapping[str, str], every_n: int = 100, first_n: int = 1) -> None:
        super().__init__(every_n_steps=every_n, first_n_steps=first_n)
        self.tensor_names = dict(tensor_names) if isinstance(tensor_names, Mapping) else {n: n for n in tensor_names}

    def every_n_step_begin(self, step: int) -> list[str]:
        return list(self.tensor_names.values())

    def every_n_step_end(self, step: int, outputs: Mapping[str, Any]) -> bool:
        parts = ", ".join(f"{tag} = {_short(outputs[name])}" for tag, name in self.tensor_names.items())
        logger.info("Step %d: %s", step, parts)
        return False


class LoggingTrainable(EveryN):
    """Log the trainable variables whose names match `scope` (a regex prefix) every `every_n` steps."""

    def __init__(self, scope: str | None = None, every_n: int = 100, first_n: int = 1) -> None:
        super().__init__(every_n_steps=every_n, first_n_steps=first_n)
        self.scope = scope

    def _names(self) -> list[str]:
        names = self.context.variable_names(trainable_only=True)
        return [n for n in names if self.scope is None or re.match(self.scope, n)]

    def every_n_step_begin(self, step: int) -> list[str]:
        return self._names()

    def every_n_step_end(self, step: int, outputs: Mapping[str, Any]) -> bool:
        for name in self._names():
            logger.info("Step %d: %s = %s", step, name, _short(outputs[name]))
        return False


class StepCounter(EveryN):
    """Report global steps/s and examples/s every `every_n_steps` steps (logged, and kept in `.rates`).

    Also written as `global_step/sec` and `examples/sec` TensorBoard scalars in model_dir.
    """

    def __init__(self, every_n_steps: int = 100, output_dir: str | None = None) -> None:
        super().__init__(every_n_steps=every_n_steps, first_n_steps=0)
        self.output_dir = output_dir
        self.rates: list[dict[str, float]] = []
        self._last: tuple[int, float] | None = None

    def begin(self, max_steps: int | None = None) -> None:
        super().begin(max_steps)
        self._last = None

    def next_step(self, step: int) -> int | None:
        if self._last is None:
            self._last = (step, time.perf_counter())
        return super().next_step(step)

    def every_n_step_end(self, step: int, outputs: Mapping[str, Any]) -> bool:
        now = time.perf_counter()
        last_step, last_time = self._last
        self._last = (step, now)
        if step <= last_step or now <= last_time:
            return False
        steps_per_sec = (step - last_step) / (now - last_time)
        rate = {"step": step, "global_step/sec": steps_per_sec}
        batch = self.context.batch_size
        if batch:
            rate["examples/sec"] = steps_per_sec * batch
        self.rates.append(rate)
        logger.info(
            "global_step/sec: %.4g%s", steps_per_sec, f", examples/sec: {rate['examples/sec']:.4g}" if batch else ""
        )
        self.context.write_scalars({k: v for k, v in rate.items() if k != "step"}, step, logdir=self.output_dir)
        return False


class CaptureVariable(EveryN):
    """Record the value of variable `var_name` every `every_n` steps in `.values` (step -> array)."""

    def __init__(self, var_name: str, every_n: int = 100, first_n: int = 1) -> None:
        super().__init__(every_n_steps=every_n, first_n_steps=first_n)
        self.var_name = var_name
        self.values: dict[int, np.ndarray] = {}

    def every_n_step_begin(self, step: int) -> list[str]:
        return [self.var_name]

    def every_n_step_end(self, step: int, outputs: Mapping[str, Any]) -> bool:
        self.values[step] = np.asarray(outputs[self.var_name]).copy()
        return False


def _short(value: Any) -> str:
    array = np.asarray(value)
    if array.size <= 6:
        return (
            np.array2string(array, precision=6)
            if array.ndim
            else f"{array.item():.6g}"
            if array.dtype.kind == "f"
            else str(array.item())
        )
    return f"array{array.shape} mean={array.mean():.6g} min={array.min():.6g} max={array.max():.6g}"
