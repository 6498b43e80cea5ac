"""`optimize_loss`: the seed-era train_op builder, on Keras 3 optimizers inside a traced model_fn."""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from typing import Any

import keras
import tensorflow as tf

from estimators._context import current_context, next_index, passthrough, raise_clean
from estimators.model_fn import ModeKeys

__all__ = ["OPTIMIZER_CLS_NAMES", "optimize_loss"]

OPTIMIZER_CLS_NAMES: dict[str, Callable[..., keras.optimizers.Optimizer]] = {
    "adagrad": keras.optimizers.Adagrad,
    "adam": keras.optimizers.Adam,
    "adamw": keras.optimizers.AdamW,
    "ftrl": keras.optimizers.Ftrl,
    "momentum": lambda **kw: keras.optimizers.SGD(momentum=0.9, **kw),
    "rmsprop": keras.optimizers.RMSprop,
    "sgd": keras.optimizers.SGD,
}


def optimize_loss(
    loss: tf.Tensor,
    optimizer: str | keras.optimizers.Optimizer | type | Callable[[], keras.optimizers.Optimizer] = "Adam",
    learning_rate: float | keras.optimizers.schedules.LearningRateSchedule | None = None,
    clip_gradients: float | Callable[[list], list] | None = None,
    learning_rate_decay_fn: Callable[[Any, tf.Variable], Any] | None = None,
    gradient_multipliers: dict[str, float] | None = None,
    variables: Sequence[tf.Variable] | None = None,
    global_step: Any = None,
    name: str | None = None,
) -> tf.Operation:
    """Build the train_op that minimises `loss`, for use inside a model_fn.

    The optimizer is created once per Estimator (the first time this call is traced) and kept, with
    its slots, in the Estimator's checkpoints. Outside TRAIN mode this is a no-op, so a model_fn may
    build its train_op unconditionally, as seed-era model_fns did.

    Args:
        loss: scalar loss tensor.
        optimizer: a name ("Adagrad", "Adam", "AdamW", "Ftrl", "Momentum", "RMSProp", "SGD"), a Keras
            optimizer class or zero-argument factory, or a Keras optimizer instance. default="Adam".
        learning_rate: float or a `keras.optimizers.schedules.LearningRateSchedule`. Required with a
            name or class; optional with an instance (overrides its rate).
        clip_gradients: float to clip by global norm, or a function mapping the list of
            `(gradient, variable)` pairs to a new list. default=None.
        learning_rate_decay_fn: `fn(learning_rate, global_step) -> decayed rate`, the seed's hook.
        gradient_multipliers: dict variable name -> factor applied to its gradient.
        variables: variables to train; default all trainable variables of the model_fn.
        global_step: accepted for seed compatibility and ignored: the Estimator keeps the global step.
        name: unused, kept for seed compatibility.

    Returns:
        An operation that applies one update (a no-op outside TRAIN).

    Raises:
        RuntimeError: when called outside a model_fn run by an Estimator.
        ValueError: unknown optimizer name, missing learning_rate, or a loss independent of every variable.

    Example:
        >>> def model_fn(features, targets, mode, params):
        ...     logits = keras.layers.Dense(3)(features)
        ...     loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits))
        ...     return tf.argmax(logits, 1), loss, optimize_loss(loss, "Adagrad", params["learning_rate"])
    """
    del global_step, name
    ctx = current_context()
    if ctx is None:
        raise RuntimeError(
            "optimize_loss() must be called inside a model_fn run by an Estimator (it needs the model's "
            "variables and the Estimator's optimizer state)."
        )
    runtime = ctx.runtime
    index = next_index("optimizer")
    var_list = list(variables) if variables is not None else runtime.store.trainable()
    opt = runtime.optimizers[index] if index < len(runtime.optimizers) else None
    if opt is None:
        with tf.init_scope(), passthrough():
            try:
                opt = _make_optimizer(optimizer, learning_rate, learning_rate_decay_fn, runtime.global_step)
            except ValueError as exc:
                raise_clean(exc)
            opt.build(var_list)
        runtime.register_optimizer(index, opt)
    if ctx.mode != ModeKeys.TRAIN:
        return tf.no_op()
    ctx.updates_built = True

    replica = tf.distribute.get_replica_context()
    n_replicas = replica.num_replicas_in_sync if replica is not None else 1
    # The optimizer sums gradients across replicas; each replica's loss is a mean over its share.
    scaled = loss / n_replicas if n_replicas > 1 else loss
    grads = tf.gradients(scaled, var_list)
    pairs = [(g, v) for g, v in zip(grads, var_list, strict=True) if g is not None]
    if not pairs:
        raise_clean(
            ValueError(
                "No gradients: the loss does not depend on any trainable variable of the model_fn "
                f"({[v.name for v in var_list]})."
            )
        )
    if gradient_multipliers:
        names = {id(v): n for n, v in runtime.store.variables.items()}
        pairs = [(g * gradient_multipliers.get(names.get(id(v), ""), 1.0), v) for g, v in pairs]
    if clip_gradients is not None:
        pairs = _clip(pairs, clip_gradients)
    opt.apply_gradients(pairs)
    return tf.no_op()


def _make_optimizer(optimizer: Any, learning_rate: Any, decay_fn: Any, global_step: tf.Variable) -> Any:
    if decay_fn is not None:
        if learning_rate is None:
            raise ValueError("learning_rate_decay_fn needs a learning_rate to decay.")
        base = learning_rate
        learning_rate = lambda: decay_fn(base, global_step)  # noqa: E731  (Keras accepts a callable rate)
    if isinstance(optimizer, keras.optimizers.Optimizer):
        if learning_rate is not None:
            optimizer.learning_rate = learning_rate
        return optimizer
    if isinstance(optimizer, str):
        factory = OPTIMIZER_CLS_NAMES.get(optimizer.lower())
        if factory is None:
            raise ValueError(
                f"Unknown optimizer {optimizer!r}. Expected one of {sorted(OPTIMIZER_CLS_NAMES)} (any case), a Keras "
                "optimizer class or instance."
            )
    elif callable(optimizer):
        factory = optimizer
    else:
        raise ValueError(f"Invalid value for argument `optimizer`. Received: optimizer={optimizer!r}.")
    if isinstance(optimizer, type) or isinstance(optimizer, str):
        if learning_rate is None:
            raise ValueError(
                f"learning_rate is required with optimizer={optimizer!r}; pass a float or a LearningRateSchedule."
            )
        if isinstance(learning_rate, numbers.Real) and learning_rate <= 0:
            raise ValueError(
                f"Invalid value for argument `learning_rate`. Received: learning_rate={learning_rate}. Expected a positive number."
            )
        return factory(learning_rate=learning_rate)
    opt = factory()
    if not isinstance(opt, keras.optimizers.Optimizer):
        raise ValueError(f"optimizer factory {optimizer!r} returned {type(opt).__name__}, not a Keras optimizer.")
    if learning_rate is not None:
        opt.learning_rate = learning_rate
    return opt


def _clip(pairs: list, clip_gradients: Any) -> list:
    if callable(clip_gradients):
        return list(clip_gradients(pairs))
    grads, variables = zip(*pairs, strict=True)
    clipped, _ = tf.clip_by_global_norm(list(grads), float(clip_gradients))
    return list(zip(clipped, variables, strict=True))
