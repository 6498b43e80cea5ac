"""The monitor protocol and the composite the training loop talks to.

Hooks, as in the seed's `monitors.py`: `begin(max_steps)`, `step_begin(step)`, `step_end(step,
outputs)` (return True to stop), `end()`, plus `epoch_begin/epoch_end(epoch)` where epochs exist.
Step `k` is the k-th training step: `step_end(k, ...)` runs after it, when the global step is `k`.

Training runs many steps per compiled call; a monitor says at which steps it wants its hooks with
`next_step(step)`, and the loop ends a compiled call exactly there. No host sync happens on a step
no monitor asked for. `after_run(step, loss)` is called after every compiled call, with the loss
still a tensor: a monitor that only looks at the clock (`CheckpointSaver(save_secs=...)`) uses it
and leaves the calls as long as they are. `abort(exception)` replaces `end()` when training stops
on an exception. Before `begin`, `set_context` hands the monitor the fit's `TrainingContext`: the
only way a monitor reaches the Estimator.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from estimators._validation import check_non_negative_int, check_positive_int

if TYPE_CHECKING:
    from estimators.monitors.context import TrainingContext

__all__ = ["BaseMonitor", "EveryN", "Monitor", "MonitorList"]

logger = logging.getLogger("skflow")


@runtime_checkable
class Monitor(Protocol):
    """Every hook the training loop calls, in the order it calls them. Subclass `BaseMonitor`
    (no-op defaults) rather than implementing all of them.

    - `set_context(context)`: once per fit, before `begin`.
    - `begin(max_steps)`: training starts; `max_steps` is the global step it ends at (None: when the input ends).
    - `epoch_begin(epoch)` / `epoch_end(epoch)`: around each pass over the data (fits on arrays only).
    - `next_step(step)`: the first step after `step` at which the monitor wants `step_begin`/`step_end` (None: never).
    - `step_begin(step)`: before the call that ends at `step`; returns names of values to read then
      ("loss", "global_step", "learning_rate" or a variable name).
    - `after_run(step, loss)`: after every compiled call; `loss` is still a tensor.
    - `step_end(step, outputs)`: at a requested step; `outputs` has "loss", "global_step" and the
      names asked for; return True to stop training.
    - `metrics_reported(step, values)`: another monitor measured `values` at `step`
      (`TrainingContext.report_metrics`; a ValidationMonitor's "val_loss", ...).
    - `end()`: training ended normally (a checkpoint of the last step is saved).
    - `abort(exception)`: training stopped on `exception` (KeyboardInterrupt included), instead of `end()`.
    """

    run_on_all_workers: bool

    def set_context(self, context: TrainingContext) -> None: ...
    def begin(self, max_steps: int | None = None) -> None: ...
    def epoch_begin(self, epoch: int) -> None: ...
    def epoch_end(self, epoch: int) -> None: ...
    def next_step(self, step: int) -> int | None: ...
    def step_begin(self, step: int) -> list[str]: ...
    def after_run(self, step: int, loss: Any) -> None: ...
    def step_end(self, step: int, outputs: Mapping[str, Any]) -> bool: ...
    def metrics_reported(self, step: int, values: Mapping[str, float]) -> None: ...
    def end(self) -> None: ...
    def abort(self, exception: BaseException) -> None: ...


class BaseMonitor:
    """Base class with no-op hooks; a subclass overrides the ones it needs.

    By default a monitor is called at every step (`next_step` returns `step + 1`); `EveryN`
    subclasses are called every N steps. `self.context` is the current fit's `TrainingContext`.
    Only the chief worker runs a monitor unless its class sets `run_on_all_workers = True`.
    """

    run_on_all_workers = False

    def __init__(self) -> None:
        self._context: TrainingContext | None = None
        self._max_steps: int | None = None

    @property
    def context(self) -> TrainingContext:
        """The `TrainingContext` of the fit this monitor runs in."""
        if self._context is None:
            raise RuntimeError(f"{type(self).__name__} is not attached to a fit: pass it to fit(..., monitors=[...]).")
        return self._context

    def set_context(self, context: TrainingContext) -> None:
        self._context = context

    def begin(self, max_steps: int | None = None) -> None:
        self._max_steps = max_steps

    def next_step(self, step: int) -> int | None:
        """The first step after `step` at which this monitor wants `step_begin`/`step_end`; None: never."""
        return step + 1

    def step_begin(self, step: int) -> list[str]:
        return []

    def step_end(self, step: int, outputs: Mapping[str, Any]) -> bool:
        return False

    def after_run(self, step: int, loss: Any) -> None:
        """After every compiled call (global step `step`); `loss` is the last loss, not read from the device."""

    def metrics_reported(self, step: int, values: Mapping[str, float]) -> None:
        """Metrics another monitor measured at `step` (see `TrainingContext.report_metrics`)."""

    def epoch_begin(self, epoch: int) -> None:
        pass

    def epoch_end(self, epoch: int) -> None:
        pass

    def end(self) -> None:
        pass

    def abort(self, exception: BaseException) -> None:
        """Training stopped on `exception`, which is re-raised after every monitor has seen it."""


class EveryN(BaseMonitor):
    """Calls `every_n_step_begin/every_n_step_end` on the first `first_n_steps` steps and every N after,
    and `every_n_post_step(step)` once at the end when the last step was not one of those (as the
    seed's EveryN did), so that a subclass can look at the final weights.

    Args:
        every_n_steps: period in steps. default=100.
        first_n_steps: also fire on steps 1..first_n_steps. default=1.

    Raises:
        ValueError: `every_n_steps` is not a positive integer, or `first_n_steps` a non-negative one.
    """

    def __init__(self, every_n_steps: int = 100, first_n_steps: int = 1) -> None:
        super().__init__()
        self.every_n_steps = check_positive_int("every_n_steps", every_n_steps)
        self.first_n_steps = check_non_negative_int("first_n_steps", first_n_steps)
        self._begin_step: int | None = None  # global step when this fit began
        self._last_active_step: int | None = None  # last step every_n_step_end ran at

    def begin(self, max_steps: int | None = None) -> None:
        super().begin(max_steps)
        self._last_active_step = None
        self._begin_step = self.context.global_step

    def next_step(self, step: int) -> int | None:
        if step < self.first_n_steps:
            return step + 1
        return (step // self.every_n_steps + 1) * self.every_n_steps

    def step_begin(self, step: int) -> list[str]:
        return self.every_n_step_begin(step)

    def step_end(self, step: int, outputs: Mapping[str, Any]) -> bool:
        self._last_active_step = step
        return bool(self.every_n_step_end(step, outputs))

    def end(self) -> None:
        last = self.context.global_step
        if last != self._last_active_step and last > self._begin_step:
            self.every_n_post_step(last)

    def every_n_step_begin(self, step: int) -> list[str]:
        return []

    def every_n_step_end(self, step: int, outputs: Mapping[str, Any]) -> bool:
        return False

    def every_n_post_step(self, step: int) -> None:
        """Once at the end of training, at the last step, when `every_n_step_end` did not run there."""


class _FunctionMonitor(BaseMonitor):
    """A plain callable `fn(step, outputs) -> bool | None`, called after every step."""

    def __init__(self, fn: Callable[[int, Mapping[str, Any]], Any]) -> None:
        super().__init__()
        self.fn = fn

    def step_end(self, step: int, outputs: Mapping[str, Any]) -> bool:
        return bool(self.fn(step, outputs))


class MonitorList:
    """The one object the training loop talks to: fans calls out to monitors, in order."""

    def __init__(self, monitors: Iterable[Any] = (), context: TrainingContext | None = None, is_chief: bool = True):
        self.monitors: list[BaseMonitor] = []
        for m in monitors or ():
            monitor = _as_monitor(m)
            if not is_chief and not getattr(monitor, "run_on_all_workers", False):
                continue
            self.monitors.append(monitor)
        if context is not None:
            for m in self.monitors:
                m.set_context(context)
        self.stop_requested = False

    def __bool__(self) -> bool:
        return bool(self.monitors)

    def begin(self, max_steps: int | None) -> None:
        self.stop_requested = False
        for m in self.monitors:
            m.begin(max_steps)

    def next_step(self, step: int) -> int | None:
        wanted = [s for s in (m.next_step(step) for m in self.monitors) if s is not None]
        return min(wanted) if wanted else None

    def wanting(self, step: int) -> list[BaseMonitor]:
        return [m for m in self.monitors if m.next_step(step - 1) == step]

    def step_begin(self, step: int, monitors: list[BaseMonitor]) -> list[str]:
        names: list[str] = []
        for m in monitors:
            names.extend(m.step_begin(step) or [])
        return names

    def step_end(self, step: int, outputs: Mapping[str, Any], monitors: list[BaseMonitor]) -> bool:
        for m in monitors:
            if m.step_end(step, outputs):
                self.stop_requested = True
        return self.stop_requested

    def after_run(self, step: int, loss: Any) -> None:
        for m in self.monitors:
            m.after_run(step, loss)

    def metrics_reported(self, step: int, values: Mapping[str, float]) -> None:
        for m in self.monitors:
            m.metrics_reported(step, values)

    def wants_epochs(self) -> bool:
        """Whether any monitor overrides an epoch hook (then the loop stops at epoch boundaries)."""
        return any(
            m.wants_epochs() if isinstance(m, _DuckMonitor) else _overrides_epochs(type(m)) for m in self.monitors
        )

    def epoch_begin(self, epoch: int) -> None:
        for m in self.monitors:
            m.epoch_begin(epoch)

    def epoch_end(self, epoch: int) -> None:
        for m in self.monitors:
            m.epoch_end(epoch)

    def end(self) -> None:
        for m in self.monitors:
            m.end()

    def abort(self, exception: BaseException) -> None:
        """Tell every monitor; a monitor failing here is logged, never masks `exception`."""
        for m in self.monitors:
            try:
                m.abort(exception)
            except Exception as exc:
                logger.warning("%s.abort failed: %s", type(m).__name__, exc)


def _overrides_epochs(cls: type) -> bool:
    return cls.epoch_begin is not BaseMonitor.epoch_begin or cls.epoch_end is not BaseMonitor.epoch_end


def _as_monitor(m: Any) -> BaseMonitor:
    if isinstance(m, BaseMonitor):
        return m
    if isinstance(m, type):
        raise TypeError(f"monitors must be instances; received the class {m.__name__}. Did you mean {m.__name__}()?")
    if all(hasattr(m, h) for h in ("begin", "step_end", "end")):
        return _DuckMonitor(m)
    if callable(m):
        return _FunctionMonitor(m)
    raise TypeError(
        f"A monitor must be a BaseMonitor, an object with begin/step_end/end methods, or a callable "
        f"fn(step, outputs); received {type(m).__name__}."
    )


class _DuckMonitor(BaseMonitor):
    """Adapts an object with some of the hook methods (not a BaseMonitor subclass). A seed-style
    object with `set_estimator` gets the Estimator; one with `set_context` gets the context."""

    def __init__(self, obj: Any) -> None:
        super().__init__()
        self.obj = obj
        self.run_on_all_workers = bool(getattr(obj, "run_on_all_workers", False))

    def set_context(self, context: TrainingContext) -> None:
        super().set_context(context)
        if hasattr(self.obj, "set_context"):
            self.obj.set_context(context)
        elif hasattr(self.obj, "set_estimator"):
            self.obj.set_estimator(context.estimator)

    def begin(self, max_steps: int | None = None) -> None:
        self.obj.begin(max_steps)

    def next_step(self, step: int) -> int | None:
        return self.obj.next_step(step) if hasattr(self.obj, "next_step") else step + 1

    def step_begin(self, step: int) -> list[str]:
        return list(self.obj.step_begin(step) or []) if hasattr(self.obj, "step_begin") else []

    def step_end(self, step: int, outputs: Mapping[str, Any]) -> bool:
        return bool(self.obj.step_end(step, outputs))

    def after_run(self, step: int, loss: Any) -> None:
        if hasattr(self.obj, "after_run"):
            self.obj.after_run(step, loss)

    def metrics_reported(self, step: int, values: Mapping[str, float]) -> None:
        if hasattr(self.obj, "metrics_reported"):
            self.obj.metrics_reported(step, values)

    def wants_epochs(self) -> bool:
        return hasattr(self.obj, "epoch_begin") or hasattr(self.obj, "epoch_end")

    def epoch_begin(self, epoch: int) -> None:
        if hasattr(self.obj, "epoch_begin"):
            self.obj.epoch_begin(epoch)

    def epoch_end(self, epoch: int) -> None:
        if hasattr(self.obj, "epoch_end"):
            self.obj.epoch_end(epoch)

    def end(self) -> None:
        self.obj.end()

    def abort(self, exception: BaseException) -> None:
        if hasattr(self.obj, "abort"):
            self.obj.abort(exception)
