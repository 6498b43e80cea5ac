"""Monitors that show progress: TensorBoard scalars and a terminal progress bar."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from typing import IO, Any

import tensorflow as tf

from estimators._summaries import SCALAR_METADATA
from estimators.monitors.base import EveryN

__all__ = ["ProgressBar", "SummarySaver"]


class SummarySaver(EveryN):
    """Write the loss (and steps/s) as TensorBoard scalars every `save_steps` steps.

    Args:
        save_steps: period in steps. default=100.
        output_dir: event file directory. default: the Estimator's model_dir.
    """

    def __init__(self, save_steps: int = 100, output_dir: str | None = None) -> None:
        super().__init__(every_n_steps=save_steps, first_n_steps=1)
        self.output_dir = output_dir
        self._writer: Any = None
        self._last: tuple[int, float] | None = None

    def begin(self, max_steps: int | None = None) -> None:
        super().begin(max_steps)
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.output_dir or self._estimator.model_dir)
        self._last = None

    def every_n_step_end(self, step: int, outputs: Mapping[str, Any]) -> bool:
        now = time.perf_counter()
        with self._writer.as_default():
            tf.summary.write("loss", tf.constant(outputs["loss"], tf.float32), step=step, metadata=SCALAR_METADATA)
            if self._last is not None and step > self._last[0]:
                rate = (step - self._last[0]) / (now - self._last[1])
                tf.summary.write("global_step/sec", tf.constant(rate, tf.float32), step=step, metadata=SCALAR_METADATA)
        self._last = (step, now)
        return False

    def end(self) -> None:
        if self._writer is not None:
            self._writer.flush()


class ProgressBar(EveryN):
    """A one-line progress bar (step, loss, examples/s) on a terminal; silent otherwise.

    Args:
        every_n_steps: refresh period in steps. default=32.
        stream: where to draw. default=sys.stderr.
        force: draw even when the stream is not a terminal. default=False.
    """

    def __init__(self, every_n_steps: int = 32, stream: IO[str] | None = None, force: bool = False) -> None:
        super().__init__(every_n_steps=every_n_steps, first_n_steps=0)
        self.stream = stream
        self.force = force
        self._start: tuple[int, float] | None = None
        self._drawn = False

    def _enabled(self) -> bool:
        stream = self.stream or sys.stderr
        return self.force or (hasattr(stream, "isatty") and stream.isatty() and os.environ.get("TERM") != "dumb")

    def begin(self, max_steps: int | None = None) -> None:
        super().begin(max_steps)
        self._start, self._drawn = None, False

    def next_step(self, step: int) -> int | None:
        if not self._enabled():
            return None
        if self._start is None:
            self._start = (step, time.perf_counter())
        return super().next_step(step)

    def every_n_step_end(self, step: int, outputs: Mapping[str, Any]) -> bool:
        stream = self.stream or sys.stderr
        first_step, t0 = self._start
        elapsed = max(time.perf_counter() - t0, 1e-9)
        batch = getattr(self._estimator, "_fit_batch_size", None) or 0
        rate = (step - first_step) * batch / elapsed
        total = self._max_steps
        if total:
            done = (step - first_step) / max(total - first_step, 1)
            bar = "=" * int(28 * done) + ">" + " " * (28 - int(28 * done))
            head = f"step {step}/{total} [{bar[:29]}]"
        else:
            head = f"step {step}"
        tail = f" loss {outputs['loss']:.4g}" + (f"  {rate:,.0f} ex/s" if batch else "") + f"  {elapsed:.0f}s"
        stream.write("\r" + head + tail + "   ")
        stream.flush()
        self._drawn = True
        return False

    def end(self) -> None:
        if self._drawn:
            (self.stream or sys.stderr).write("\n")
