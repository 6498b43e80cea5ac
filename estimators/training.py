"""The training loop: many steps per compiled call, monitors called exactly where they asked.

Training runs many steps per compiled call (`RunConfig.steps_per_execution`). Before each call the
loop asks the monitors at which step they next want their hooks (`next_step`) and ends the call
exactly there, or where a checkpoint is due or an epoch ends (when a monitor has epoch hooks); no
host sync happens at a step nobody asked for. After each call it calls `after_run` on every
monitor; at a requested step it calls `step_begin` (which may name values to read), then
`step_end` with those values (which may ask to stop). When training stops, the loop saves a
checkpoint and calls `end()`; when it stops on an exception (KeyboardInterrupt included) it saves
what was trained unless the weights went bad, calls `abort(exception)`, and re-raises.

A monitor sees the Estimator only through the `TrainingContext` the loop hands it (see
`estimators.monitors` for how to write one).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import tensorflow as tf

from estimators.monitors import NanLoss, get_default_monitors
from estimators.monitors.base import MonitorList
from estimators.monitors.context import TrainingContext
from feeders import reraise_feeder_errors

if TYPE_CHECKING:
    from estimators.model_state import ModelState
    from estimators.run_config import RunConfig

__all__ = ["run_training", "train", "train_on_batch"]

logger = logging.getLogger("skflow")


def run_training(
    context: TrainingContext,
    run: Callable[[int], tuple[Any, int]],
    monitors: list[Any],
    partial: bool = False,
) -> float | None:
    """Run training steps until `context.max_steps` (None: until the input ends); returns the last loss.

    Args:
        context: this fit's context (handed to every monitor).
        run: `run(n) -> (loss, steps_done)` runs up to n steps in one compiled call.
        monitors: all monitors of this fit, defaults included.
        partial: `partial_fit`: no checkpoint at the end (many small calls stay cheap).
    """
    state = context._state
    config = context.config
    mlist = MonitorList(monitors, context=context, is_chief=config.is_chief)
    context._monitors = mlist
    target = context.max_steps
    save_steps, save_secs = config.save_checkpoints_steps, config.save_checkpoints_secs
    last_save_time = time.monotonic()
    spe = config.steps_per_execution
    epochs = context.steps_per_epoch if context.steps_per_epoch and mlist.wants_epochs() else None
    rt = state.runtime
    start_step = rt.step
    loss: Any = None
    try:
        mlist.begin(target)
        if epochs:
            mlist.epoch_begin(0)
        while target is None or rt.step < target:
            n = spe if target is None else min(spe, target - rt.step)
            wanted = mlist.next_step(rt.step)
            if wanted is not None:
                n = min(n, wanted - rt.step)
            if save_steps:
                n = min(n, save_steps - rt.step % save_steps)
            if epochs:
                n = min(n, epochs - (rt.step - start_step) % epochs)
            end = rt.step + n
            hooked = mlist.wanting(end) if wanted == end else []
            names = mlist.step_begin(end, hooked) if hooked else []
            chunk_loss, done = run(n)
            if done:  # an exhausted input returns no loss for an empty chunk
                loss = chunk_loss
            rt.step += done
            mlist.after_run(rt.step, loss)
            if done < n:
                logger.info("Input exhausted after global step %d.", rt.step)
                break
            stop = False
            if hooked:
                context._last_loss = float(loss)
                outputs = {"loss": context._last_loss, "global_step": rt.step}
                for name in names:
                    if name not in outputs:
                        outputs[name] = state.tensor_value(name)
                stop = mlist.step_end(rt.step, outputs, hooked)
            if epochs and (rt.step - start_step) % epochs == 0:
                epoch = (rt.step - start_step) // epochs
                mlist.epoch_end(epoch - 1)
                if target is None or rt.step < target:
                    mlist.epoch_begin(epoch)
            if (save_steps and rt.step % save_steps == 0) or (
                save_secs and time.monotonic() - last_save_time >= save_secs
            ):
                state.save_now(loss)
                last_save_time = time.monotonic()
            if stop:
                logger.info("A monitor requested stop at global step %d.", rt.step)
                break
        context._last_loss = None if loss is None else float(loss)
        if not partial:
            state.save_now(loss)
        mlist.end()
    except BaseException as exc:
        # An error inside a compiled chunk leaves the step variable ahead of its Python mirror.
        rt.step = int(rt.global_step.numpy())
        context.error = exc
        _emergency_save(state, loss)
        mlist.abort(exc)
        raise
    finally:
        # The monitors hold the context and the context their list: break the cycle, so that an
        # Estimator (and its temporary model_dir) goes as soon as nothing else refers to it.
        context._monitors = None
    return context.last_loss


def _emergency_save(state: ModelState, loss: Any) -> None:
    """After an interruption, keep the steps already trained, unless the weights went bad."""
    try:
        path = state.save_now(loss)
        if path:
            logger.info("Training interrupted at global step %d; saved %s.", state.runtime.step, path)
    except Exception as exc:  # never mask the original error
        logger.warning("Could not save a checkpoint after the interruption: %s", exc)


def train(
    estimator: Any,
    state: ModelState,
    x: Any,
    y: Any,
    input_fn: Any,
    steps: int | None,
    max_steps: int | None,
    batch_size: int | None,
    monitors: Any,
    impute: Any = None,
    epochs: int | None = None,
    partial: bool = False,
    prepare: Callable[[Any, Any], tuple[Any, Any]] | None = None,
    input_token: Any = None,
    owner: Any = None,
) -> None:
    """Train the Estimator on x/y or input_fn until `steps` more or `max_steps` (or the input's end).

    `prepare` and `input_token` are how a canned estimator's fit has raw held-out data encoded as
    its own input is (see `TrainingContext.eval_input`); `owner` is the estimator the user called
    (a canned one), which monitors see as `context.estimator`."""
    rt = state.ensure_runtime()
    source = state.inputs.train(x, y, input_fn, batch_size, impute, state.shuffle_seed, epochs)
    start = rt.step
    if max_steps is not None and start >= max_steps:
        logger.info("Skipping training: max_steps=%d is already reached (global step %d).", max_steps, start)
        return
    target = start + steps if steps is not None else max_steps
    if target is None and not source.finite:
        raise ValueError(
            "fit() needs to know when to stop: the input repeats forever. Pass steps= (train this many more "
            "steps), max_steps= (train until the global step reaches it) or epochs= (passes over x)."
        )
    with rt.strategy.scope():
        data = rt.strategy.experimental_distribute_dataset(source.dataset) if rt.distributed else source.dataset
        iterator = iter(data)
        fn = rt.train_fn(source.finite)
        state.trace(fn, "fit", iterator, tf.TensorSpec([], tf.int64))
        state.initialized = True

        def run(n: int) -> tuple[Any, int]:
            with reraise_feeder_errors(source.feeder):
                loss, done = fn(iterator, tf.constant(n, tf.int64))
            return loss, (int(done) if source.finite else n)

        batch = state.inputs.fit_batch_size if input_fn is None else None
        context = TrainingContext(
            estimator,
            state,
            target,
            batch,
            source.steps_per_epoch,
            prepare,
            input_token,
            data=None if input_fn is not None else (x, y),
            feeder=source.feeder,
            fingerprint=source.fingerprint,
            owner=owner,
        )
        run_training(context, run, _monitors(state.config, monitors, partial), partial=partial)


def train_on_batch(estimator: Any, state: ModelState, features: Any, targets: Any, steps: int, monitors: Any) -> None:
    """`steps` training steps on one in-memory batch through a compiled one-step function (partial_fit)."""
    rt = state.ensure_runtime()
    fn = state.concrete(rt.step_fn(state.meta.features, state.meta.targets), "fit")
    state.initialized = True

    def run(n: int) -> tuple[Any, int]:
        loss = None
        for _ in range(n):
            loss = fn(features, targets)
        return loss, n

    batch = int(tf.nest.flatten(features)[0].shape[0])
    context = TrainingContext(estimator, state, rt.step + steps, batch, None, data=(features, targets))
    run_training(context, run, _monitors(state.config, monitors, partial=True), partial=True)


def _monitors(config: RunConfig, monitors: Any, partial: bool) -> list[Any]:
    """The default monitors (NaN check, loss log, summaries, progress), then the fit's own."""
    nan_check = NanLoss(every_n_steps=max(config.log_step_count_steps or 100, 1))
    return [nan_check, *get_default_monitors(config, partial), *(monitors or [])]
