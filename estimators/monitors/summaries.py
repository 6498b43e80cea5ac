"""Monitors that show progress: TensorBoard scalars, and progress for the person running the fit."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from typing import IO, Any

import tensorflow as tf

from estimators._validation import check_positive_int
from estimators.monitors.base import BaseMonitor, EveryN
from estimators.summaries import SCALAR_METADATA

__all__ = ["ProgressBar", "SummarySaver"]


class SummarySaver(EveryN):
    """Write the loss (and steps/s) as TensorBoard scalars every `save_steps` steps.

    Args:
        save_steps: period in steps. default=100.
        output_dir: event file directory. default: the Estimator's model_dir (the Estimator's one
            writer for it, which `StepCounter` and evaluations share: one event file).
    """

    def __init__(self, save_steps: int = 100, output_dir: str | None = None) -> None:
        super().__init__(every_n_steps=save_steps, first_n_steps=1)
        self.output_dir = output_dir
        self._last: tuple[int, float] | None = None

    def begin(self, max_steps: int | None = None) -> None:
        super().begin(max_steps)
        self._last = None

    def every_n_step_end(self, step: int, outputs: Mapping[str, Any]) -> bool:
        now = time.perf_counter()
        with self.context.summary_writer(self.output_dir).as_default():
            tf.summary.write("loss", tf.constant(outputs["loss"], tf.float32), step=step, metadata=SCALAR_METADATA)
            if self._last is not None and step > self._last[0]:
                rate = (step - self._last[0]) / (now - self._last[1])
                tf.summary.write("global_step/sec", tf.constant(rate, tf.float32), step=step, metadata=SCALAR_METADATA)
        self._last = (step, now)
        return False

    def end(self) -> None:
        super().end()
        self.context.summary_writer(self.output_dir).flush()


class ProgressBar(BaseMonitor):
    """Training progress for the person running the fit, as Keras' `verbose="auto"` shows it: a bar
    redrawn in place on a terminal, a line every `every_n_steps` steps otherwise (logs, notebooks
    saved to files, CI); the last step is always shown.

    It reads the loss after compiled calls (`after_run`) and never shortens them.

    Args:
        mode: "auto" (a bar on a terminal, lines otherwise), "bar" or "lines". default="auto".
        every_n_steps: steps between lines in line mode. default=100.
        stream: where to write. default=sys.stderr.
    """

    _MIN_REDRAW_SECONDS = 0.1

    def __init__(self, mode: str = "auto", every_n_steps: int = 100, stream: IO[str] | None = None) -> None:
        super().__init__()
        if mode not in ("auto", "bar", "lines"):
            raise ValueError(
                f"Invalid value for argument `mode`. Received: mode={mode!r}. Expected 'auto', 'bar' or 'lines'."
            )
        self.mode = mode
        self.every_n_steps = check_positive_int("every_n_steps", every_n_steps)
        self.stream = stream
        self._start: tuple[int, float] = (0, 0.0)
        self._shown_step: int | None = None
        self._last_draw = 0.0
        self._bar = False

    def _out(self) -> IO[str]:
        return self.stream or sys.stderr

    def _is_terminal(self) -> bool:
        stream = self._out()
        return hasattr(stream, "isatty") and stream.isatty() and os.environ.get("TERM") != "dumb"

    def begin(self, max_steps: int | None = None) -> None:
        super().begin(max_steps)
        self._bar = self.mode == "bar" or (self.mode == "auto" and self._is_terminal())
        self._start = (self.context.global_step, time.perf_counter())
        self._shown_step = None
        self._last_draw = 0.0

    def next_step(self, step: int) -> int | None:
        return None

    def after_run(self, step: int, loss: Any) -> None:
        now = time.perf_counter()
        if self._bar:
            if now - self._last_draw >= self._MIN_REDRAW_SECONDS or step == self._max_steps:
                self._draw(step, loss, now)
        elif step // self.every_n_steps > (self._shown_step or self._start[0]) // self.every_n_steps:
            self._draw(step, loss, now)

    def end(self) -> None:
        step = self.context.global_step
        if self._shown_step != step and step > self._start[0]:
            self._draw(step, self.context.last_loss, time.perf_counter())
        if self._bar and self._shown_step is not None:
            self._out().write("\n")
            self._out().flush()

    def abort(self, exception: BaseException) -> None:
        if self._bar and self._shown_step is not None:
            self._out().write("\n")

    def _draw(self, step: int, loss: Any, now: float) -> None:
        first_step, t0 = self._start
        elapsed = max(now - t0, 1e-9)
        total = self._max_steps
        head = f"step {step}/{total}" if total else f"step {step}"
        if self._bar and total:
            done = min(max((step - first_step) / max(total - first_step, 1), 0.0), 1.0)
            filled = int(28 * done)
            head += " [" + "=" * filled + (">" if filled < 28 else "") + "." * max(27 - filled, 0) + "]"
        parts = [head]
        if loss is not None:
            parts.append(f"loss {float(loss):.4g}")
        batch = self.context.batch_size
        if batch and step > first_step:
            parts.append(f"{(step - first_step) * batch / elapsed:,.0f} examples/s")
        parts.append(f"{elapsed:.0f}s")
        line = " - ".join(parts)
        if self._bar:
            self._out().write("\r" + line + "   ")
        else:
            self._out().write(line + "\n")
        self._out().flush()
        self._shown_step, self._last_draw = step, now
