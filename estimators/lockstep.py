"""How the workers of a multi-worker fit take every decision together.

Under a strategy that spans several processes (`distribute.spans_workers`), every compiled training call
runs collective operations (the gradient all-reduce): all workers must run chunks of the same sizes, and
save and stop at the same steps, or they wait for each other for ever. Yet monitors run on the chief
only (unless `run_on_all_workers`), and a chief-only monitor may want its hooks at steps the other
workers know nothing of, ask for a checkpoint (`CheckpointSaver`, `ValidationMonitor(keep_best=True)`),
or stop training (early stopping).

So once before the first chunk and after every chunk, each worker proposes where the next chunk should
end (its monitors' `next_step`, the checkpoint schedule, epoch ends, the target, `steps_per_execution`),
and whether it wants to stop, to save a checkpoint (a monitor asked, or `save_checkpoints_secs` elapsed
on its clock), to keep the best weights, or failed in a hook. One all-gather of these few integers (one
small collective per chunk) makes them one decision that every worker applies: the next chunk ends at
the earliest step anyone wants, and a stop, a save or a failure anywhere is one everywhere. Monitors
thus see exactly the steps they ask for, as on one machine. A save asked for from a hook is deferred to
that decision and taken by every worker together (the chief writes model_dir, the others a scratch
directory); a failure in a hook is raised on every worker after an emergency save taken together.

A fit starts with one more agreement: the global step each worker restored (all must read the chief's
model_dir) and the chief's shuffling seed (each worker builds the same input and takes its share of
every global batch).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from estimators.model_state import ModelState

__all__ = ["Decision", "Lockstep", "PeerFailedError"]

logger = logging.getLogger("skflow")

NEVER = 2**62  # a proposal for "no cut wanted"


class PeerFailedError(RuntimeError):
    """Training stopped on every worker because a hook failed on another one (its log has the error)."""


@dataclass(frozen=True)
class Decision:
    """What every worker does next: end the next chunk at `cut`, stop, save a checkpoint, keep the best
    weights, or raise because a hook failed somewhere (`failed_on`: "the chief" or "another worker")."""

    cut: int
    stop: bool = False
    save: bool = False
    best: bool = False
    failed_on: str = ""


class Lockstep:
    """The agreement of one multi-worker fit.

    Args:
        gather: `gather(values) -> rows`: every worker's int64 vector `values`, one row per replica
            (`Runtime.gather_fn()`: an all-gather across the cluster).
        is_chief: whether this process is the chief.
    """

    def __init__(self, gather: Callable[[np.ndarray], Any], is_chief: bool) -> None:
        self._gather = gather
        self.is_chief = is_chief
        self.error: BaseException | None = None  # the first exception a hook raised here
        self.failure_agreed = False  # every worker knows of a failure: they can save together
        self._save = False
        self._best: dict[str, Any] | None = None

    def _rows(self, values: list[int]) -> np.ndarray:
        return np.asarray(self._gather(np.asarray(values, np.int64)))

    def start(self, step: int, seed: int) -> int:
        """Check that every worker restored the same global step; returns the chief's shuffling seed.

        Raises:
            ValueError: the workers restored different steps (they do not all see the chief's model_dir).
        """
        rows = self._rows([step, seed, int(self.is_chief)])
        steps = sorted({int(s) for s in rows[:, 0]})
        if len(steps) > 1:
            raise ValueError(
                f"The workers restored different global steps {steps} (this one: {step}). Every worker restores "
                "from the chief's checkpoints: model_dir must be one directory that all of them see (a shared "
                "filesystem or a bucket), with the same path."
            )
        chief = rows[rows[:, 2] == 1]
        return int((chief if len(chief) else rows)[0, 1])

    def hooks(self, state: ModelState) -> _Hooks:
        """What the loop wraps monitor hooks in (`with lockstep.hooks(state):`): saves they ask for wait
        for the next decision, and an exception is kept for it instead of leaving the others waiting."""
        return _Hooks(self, state)

    def checkpoint(self, state: ModelState, loss: Any) -> str | None:
        """A hook's `save_checkpoint()`: taken at the next decision; returns the path it will have."""
        step = state.runtime.step
        if loss is not None and not math.isfinite(float(loss)):
            logger.warning("Not saving a checkpoint at step %d: the last loss is %s.", step, float(loss))
            return None
        if state.last_saved_step == step:
            return None
        self._save = True
        return os.path.join(state.model_dir, f"model.ckpt-{step}")

    def best(self, state: ModelState, step: int, results: Mapping[str, Any]) -> str:
        """A hook's `save_best(results)`: taken at the next decision; returns the path it will have."""
        self._best = dict(results)
        return os.path.join(state.model_dir, "best", f"model.ckpt-{step}")

    def decide(self, cut: int | None, stop: bool = False, save: bool = False) -> Decision:
        """This worker's proposal in, the cluster's decision out (one collective)."""
        proposal = [
            NEVER if cut is None else cut,
            int(stop),
            int(save or self._save),
            int(self._best is not None),
            int(self.error is not None),
            int(self.is_chief),
        ]
        rows = self._rows(proposal)
        failed = rows[rows[:, 4] == 1]
        failed_on = ""
        if len(failed):
            failed_on = "the chief" if failed[:, 5].any() else "another worker"
        return Decision(
            cut=int(rows[:, 0].min()),
            stop=bool(rows[:, 1].any()),
            save=bool(rows[:, 2].any()),
            best=bool(rows[:, 3].any()),
            failed_on=failed_on,
        )

    def apply(self, decision: Decision, state: ModelState, loss: Any) -> None:
        """Take the decided saves (all workers together) and raise a failure decided on."""
        self._save = False
        if decision.failed_on:
            self.failure_agreed = True
            if self.error is not None:
                raise self.error
            raise PeerFailedError(
                f"Training stopped at global step {state.runtime.step}: a monitor failed on {decision.failed_on} "
                "(its log has the error). Every worker stopped with it."
            )
        if decision.best:
            state.save_best(state.runtime.step, self._best or {})
            self._best = None
        if decision.save:
            state.save_now(loss)


class _Hooks:
    """A reusable context manager around monitor hooks (see `Lockstep.hooks`)."""

    def __init__(self, lockstep: Lockstep, state: ModelState) -> None:
        self.lockstep, self.state = lockstep, state

    def __enter__(self) -> None:
        self.state.save_requests = self.lockstep

    def __exit__(self, kind: Any, exc: BaseException | None, traceback: Any) -> bool:
        self.state.save_requests = None
        if isinstance(exc, Exception):
            if self.lockstep.error is None:
                self.lockstep.error = exc
            return True  # kept for the next decision
        return False
