"""Monitors that write things: checkpoints on a schedule, and SavedModel exports."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Mapping
from typing import Any

from estimators._validation import check_positive_int, check_positive_number
from estimators.monitors.base import BaseMonitor, EveryN

__all__ = ["CheckpointSaver", "ExportMonitor"]

logger = logging.getLogger("skflow")


class CheckpointSaver(BaseMonitor):
    """Save a checkpoint every `save_steps` steps or `save_secs` seconds (exactly one of them),
    in addition to the RunConfig schedule.

    Raises:
        ValueError: neither or both given.
    """

    def __init__(self, save_secs: float | None = None, save_steps: int | None = None) -> None:
        super().__init__()
        if (save_secs is None) == (save_steps is None):
            raise ValueError("Exactly one of save_secs and save_steps must be provided.")
        self.save_secs = check_positive_number("save_secs", save_secs, allow_none=True)
        self.save_steps = check_positive_int("save_steps", save_steps, allow_none=True)
        self._last_time = time.monotonic()
        self.saved: list[str] = []

    def begin(self, max_steps: int | None = None) -> None:
        super().begin(max_steps)
        self._last_time = time.monotonic()

    def next_step(self, step: int) -> int | None:
        if self.save_steps:
            return (step // self.save_steps + 1) * self.save_steps
        return None  # time-based: looks at the clock in after_run, never cuts a compiled call short

    def step_end(self, step: int, outputs: Mapping[str, Any]) -> bool:
        if self.save_steps and step % self.save_steps == 0:
            self._save(outputs.get("loss"))
        return False

    def after_run(self, step: int, loss: Any) -> None:
        if self.save_secs and time.monotonic() - self._last_time >= self.save_secs:
            self._save(loss)

    def _save(self, loss: Any) -> None:
        path = self.context.save_checkpoint(loss)
        if path:
            self.saved.append(path)
        self._last_time = time.monotonic()


class ExportMonitor(EveryN):
    """Export a SavedModel every `every_n_steps` steps and at the end, keeping the newest `exports_to_keep`.

    Args:
        every_n_steps: period in steps.
        export_dir: where the timestamped exports go.
        exports_to_keep: how many exports to keep (None: all). default=5.
    """

    def __init__(self, every_n_steps: int, export_dir: str, exports_to_keep: int | None = 5) -> None:
        super().__init__(every_n_steps=every_n_steps, first_n_steps=0)
        self.export_dir = export_dir
        self.exports_to_keep = check_positive_int("exports_to_keep", exports_to_keep, allow_none=True)
        self.exports: list[str] = []

    def every_n_step_end(self, step: int, outputs: Mapping[str, Any]) -> bool:
        self._export(step)
        return False

    def every_n_post_step(self, step: int) -> None:
        self._export(step)  # the final weights, when the last step was not an export step

    def _export(self, step: int) -> None:
        path = self.context.export_saved_model(self.export_dir)
        self.exports.append(path)
        logger.info("Exported step %d to %s.", step, path)
        if self.exports_to_keep:
            while len(self.exports) > self.exports_to_keep:
                old = self.exports.pop(0)
                shutil.rmtree(old, ignore_errors=True)
