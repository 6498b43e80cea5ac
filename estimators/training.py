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

Under a strategy that spans several worker processes (a `TF_CONFIG` cluster), the workers run in
lockstep (`estimators.lockstep`): after each call they agree, through one small collective, where the
next call ends and whether to save or stop, so monitors on the chief see the same exact steps while
every worker runs identical chunks. Their hooks then run outside the strategy's scope.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import tensorflow as tf

from estimators.distribute import spans_workers
from estimators.lockstep import Lockstep
from estimators.monitors import NanLoss, get_default_monitors
from estimators.monitors.base import MonitorList
from estimators.monitors.context import TrainingContext
from feeders import reraise_feeder_errors

if TYPE_CHECKING:
    from estimators.model_state import ModelState
    from estimators.run_config import RunConfig

__all__ = ["run_training", "train", "train_on_batch"]

logger = logging.getLogger("skflow")
_NO_HOOKS = contextlib.nullcontext()  # around monitor hooks on one machine: nothing (reusable)


def run_training(
    context: TrainingContext,
    run: Callable[[int], tuple[Any, int]],
    monitors: list[Any],
    partial: bool = False,
    lockstep: Lockstep | None = None,
) -> float | None:
    """Run training steps until `context.max_steps` (None: until the input ends); returns the last loss.

    Args:
        context: this fit's context (handed to every monitor).
        run: `run(n) -> (loss, steps_done)` runs up to n steps in one compiled call.
        monitors: all monitors of this fit, defaults included.
        partial: `partial_fit`: no checkpoint at the end (many small calls stay cheap).
        lockstep: the agreement of a multi-worker fit (see `estimators.lockstep`): chunk ends, saves, stops
            and failures are decided by all workers together. None on one machine.
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
    hooks = lockstep.hooks(state) if lockstep is not None else _NO_HOOKS

    def cut(wanted: int | None) -> int:
        """Where the next chunk ends: the first step a monitor wants, a checkpoint is due or an epoch ends."""
        n = spe if target is None else min(spe, target - rt.step)
        if wanted is not None:
            n = min(n, wanted - rt.step)
        if save_steps:
            n = min(n, save_steps - rt.step % save_steps)
        if epochs:
            n = min(n, epochs - (rt.step - start_step) % epochs)
        return rt.step + n

    loss: Any = None
    try:
        with hooks:
            mlist.begin(target)
            if epochs:
                mlist.epoch_begin(0)
        if lockstep is not None:
            decision = lockstep.decide(cut(mlist.next_step(rt.step)))
            lockstep.apply(decision, state, loss)
        while target is None or rt.step < target:
            wanted = mlist.next_step(rt.step)
            end = decision.cut if lockstep is not None else cut(wanted)
            n = end - rt.step
            hooked = mlist.wanting(end) if wanted == end else []
            names = []
            if hooked:
                with hooks:
                    names = mlist.step_begin(end, hooked)
            chunk_loss, done = run(n)
            if done:  # an exhausted input returns no loss for an empty chunk
                loss = chunk_loss
            rt.step += done
            with hooks:
                mlist.after_run(rt.step, loss)
            if done < n:
                logger.info("Input exhausted after global step %d.", rt.step)
                if lockstep is not None:  # every worker's input ends at this call: settle its hooks first
                    lockstep.apply(lockstep.decide(None, stop=True), state, loss)
                break
            stop = False
            with hooks:
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
            save = bool(save_steps and rt.step % save_steps == 0) or bool(
                save_secs and time.monotonic() - last_save_time >= save_secs
            )
            if lockstep is not None:
                decision = lockstep.decide(cut(mlist.next_step(rt.step)), stop, save)
                lockstep.apply(decision, state, loss)
                stop, save = decision.stop, False  # apply() took the decided saves
                if decision.save:
                    last_save_time = time.monotonic()
            if save:
                state.save_now(loss)
                last_save_time = time.monotonic()
            if stop:
                logger.info("A monitor requested stop at global step %d.", rt.step)
                break
        context._last_loss = None if loss is None else float(loss)
        if not partial:
            state.save_now(loss)
        with hooks:
            mlist.end()
        if lockstep is not None:
            lockstep.apply(lockstep.decide(None), state, loss)  # what end() asked for (the final best weights)
    except BaseException as exc:
        # An error inside a compiled chunk leaves the step variable ahead of its Python mirror.
        rt.step = int(rt.global_step.numpy())
        context.error = exc
        if lockstep is None or lockstep.failure_agreed:
            _emergency_save(state, loss)  # with several workers, only a failure they all know of
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
    rt = state.ensure_runtime(training=True)
    lockstep = Lockstep(rt.gather_fn(), state.config.is_chief) if spans_workers(rt.strategy) else None
    seed = state.shuffle_seed
    if lockstep is not None:
        shared_seed = lockstep.start(rt.step, state.shuffle_seed())
        seed = lambda: shared_seed  # noqa: E731
    source = state.inputs.train(x, y, input_fn, batch_size, impute, seed, epochs)
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
        dataset = _shard_by_data(source.dataset) if lockstep is not None else source.dataset
        data = rt.strategy.experimental_distribute_dataset(dataset) if rt.distributed else dataset
        iterator = iter(data)
        fn = rt.train_fn(source.finite)
        state.trace(fn, "fit", iterator, tf.TensorSpec([], tf.int64))
        state.initialized = True

        def run(n: int) -> tuple[Any, int]:
            with reraise_feeder_errors(source.feeder), _scope(rt.strategy, lockstep):
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
        if lockstep is None:
            run_training(context, run, _monitors(state.config, monitors, partial), partial=partial)
            return
    # Several workers: the monitors run outside the strategy's scope, where a chief-only hook (an
    # evaluation, an export) creates plain variables instead of ones every worker must broadcast.
    run_training(context, run, _monitors(state.config, monitors, partial), partial=partial, lockstep=lockstep)


def _scope(strategy: tf.distribute.Strategy, lockstep: Lockstep | None) -> Any:
    """The strategy's scope around a compiled call of a multi-worker fit (its hooks run outside it)."""
    return strategy.scope() if lockstep is not None else contextlib.nullcontext()


def _shard_by_data(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Each worker builds the whole input and takes its share of every global batch (tf.data's DATA
    auto-sharding), as a single worker would see it; unless the dataset chose a sharding policy itself."""
    policy = tf.data.experimental.AutoShardPolicy
    if dataset.options().experimental_distribute.auto_shard_policy != policy.AUTO:
        return dataset
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = policy.DATA
    return dataset.with_options(options)


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
