"""The `model_fn` contract: modes, the returned spec, and argument injection by name.

A `model_fn` may take any of the seed's signatures, `(features, targets)`,
`(features, targets, mode)`, `(features, targets, mode, params)`, and tf.estimator's
`(features, labels, mode, params, config)`; arguments are injected by *name*, so these are one
mechanism. It returns `(predictions, loss, train_op)` or an :class:`EstimatorSpec`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import tensorflow as tf

from estimators._context import current_context, raise_clean

__all__ = ["EstimatorSpec", "ModeKeys", "ModelFunction", "model_fn_args", "validate_model_fn"]


class ModeKeys:
    """The three modes a `model_fn` is called in (the seed's names; `PREDICT` is tf.estimator's alias)."""

    TRAIN = "train"
    EVAL = "eval"
    INFER = "infer"
    PREDICT = INFER


class EstimatorSpec(NamedTuple):
    """What a `model_fn` may return instead of `(predictions, loss, train_op)`.

    Attributes:
        mode: one of `ModeKeys`.
        predictions: a tensor or a dict of tensors, batch-major. Required in INFER.
        loss: a scalar tensor. Required in TRAIN and EVAL.
        train_op: the update, usually from `optimize_loss`. Required in TRAIN.
        eval_metric_ops: dict name -> a per-batch value tensor (averaged over the evaluation,
            weighted by batch size) or a `(metric, y_true, y_pred)` triple, where `metric` is a metric
            name ("accuracy", "auc", ...) or a Keras metric; used by `evaluate`.
    """

    mode: str | None = None
    predictions: Any = None
    loss: Any = None
    train_op: Any = None
    eval_metric_ops: Mapping[str, Any] | None = None


def model_fn_args(fn: Callable[..., Any]) -> tuple[str, ...]:
    """Names of the parameters `fn` accepts, for functions, `functools.partial` and callable objects.

    Arguments already bound by a `functools.partial` are left out.
    """
    if isinstance(fn, functools.partial):
        bound = set(fn.keywords or {})
        names = model_fn_args(fn.func)[len(fn.args) :]
        return tuple(n for n in names if n not in bound)
    target = fn if inspect.isfunction(fn) or inspect.ismethod(fn) else type(fn).__call__.__get__(fn)
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"Cannot inspect the arguments of model_fn {fn!r}: {exc}") from None
    return tuple(
        p.name
        for p in sig.parameters.values()
        if p.kind
        in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_ONLY)
    )


def validate_model_fn(model_fn: Any, params: Any) -> tuple[str, ...]:
    """Check that `model_fn` is callable and can take what the Estimator will pass.

    Raises:
        TypeError: model_fn is not callable, lacks a `features` argument, or takes an argument without a
            default that the Estimator cannot pass.
        ValueError: `params` are given but the model_fn has no `params` argument (the original's rule).
    """
    if not callable(model_fn):
        raise TypeError(f"model_fn must be callable; received {type(model_fn).__name__}: {model_fn!r}.")
    args = model_fn_args(model_fn)
    if not args:
        raise TypeError(
            "model_fn must accept at least `features`; received a function with no named arguments. "
            "Expected one of (features, targets), (features, targets, mode), (features, targets, mode, params)."
        )
    if params is not None and "params" not in args:
        raise ValueError(
            f"Estimator's model_fn ({_name(model_fn)}) does not have a params argument, but params "
            f"({params!r}) were passed to the Estimator's constructor."
        )
    if "targets" in args and "labels" in args:
        raise TypeError("model_fn takes both `targets` and `labels`; they are the same thing, keep one.")
    unfillable = [
        name
        for index, (name, _, has_default) in enumerate(_parameters(model_fn, args))
        if name not in _INJECTED and not has_default and index >= len(_ORDER)
    ]
    if unfillable:  # else a TypeError from deep inside TensorFlow's tracing at the first step
        raise TypeError(
            f"model_fn ({_name(model_fn)}) takes argument(s) {unfillable} that the Estimator cannot pass: it "
            "passes features, targets (or labels), mode, params and config. Give them a default value, or "
            "read them from params."
        )
    return args


def call_model_fn(
    model_fn: Callable[..., Any],
    args: tuple[str, ...],
    features: Any,
    targets: Any,
    mode: str,
    params: Any,
    config: Any,
) -> Any:
    """Call `model_fn`, passing each argument it names.

    Known names (`features`, `targets`/`labels`, `mode`, `params`, `config`) get their value
    wherever they stand. Other names take the value of their position in the seed's order
    `(features, targets, mode, params, config)`, as the original passed features and targets by
    position: `(x, y)`, `(x, y, params)` and `(X, y, mode)` all work. Unknown names with a default
    value are left to their default.
    """
    values = {
        "features": features,
        "targets": targets,
        "labels": targets,
        "mode": mode,
        "params": params,
        "config": config,
    }
    positional: list[Any] = []
    keywords: dict[str, Any] = {}
    by_keyword = False  # after a skipped argument, the rest go by name
    for index, (name, keyword_only, has_default) in enumerate(_parameters(model_fn, args)):
        if name in values:
            value = values[name]
        elif has_default or index >= len(_ORDER):
            by_keyword = True  # keeps its default
            continue
        else:
            value = values[_ORDER[index]]
        if keyword_only or by_keyword:
            keywords[name] = value
        else:
            positional.append(value)
    return model_fn(*positional, **keywords)


_ORDER = ("features", "targets", "mode", "params", "config")
_INJECTED = frozenset({*_ORDER, "labels"})


class ModelFunction(NamedTuple):
    """A model_fn bound to what an Estimator passes it: calling it runs `feature_engineering_fn`,
    then the model_fn with its arguments injected by name, and checks what it returned.

    Attributes:
        fn: the user's model_fn.
        args: its argument names (`validate_model_fn`).
        params: its `params`.
        config: the Estimator's RunConfig (its `config` argument).
        feature_engineering_fn: `fn(features, targets) -> (features, targets)`, or None.
    """

    fn: Callable[..., Any]
    args: tuple[str, ...]
    params: Any
    config: Any
    feature_engineering_fn: Callable[[Any, Any], tuple[Any, Any]] | None = None

    def __call__(self, features: Any, targets: Any, mode: str) -> EstimatorSpec:
        if self.feature_engineering_fn is not None:
            features, targets = self.feature_engineering_fn(features, targets)
        graph = tf.compat.v1.get_default_graph()
        first_op = len(graph.get_operations()) if mode == ModeKeys.TRAIN else 0
        output = call_model_fn(self.fn, self.args, features, targets, mode, self.params, self.config)
        spec = normalize_output(output, mode)
        if mode == ModeKeys.TRAIN:
            check_train_op(spec.train_op, graph, first_op)
        return spec


# Ops that change a variable: an optimizer's update is made of these.
_UPDATE_OPS = ("AssignVariableOp", "AssignAddVariableOp", "AssignSubVariableOp")
_UPDATE_PREFIXES = ("ResourceApply", "ResourceSparseApply", "ResourceScatter")
_FIX = (
    "Build the train_op with estimators.optimize_loss(loss, optimizer='Adam', learning_rate=0.01), which "
    "creates the optimizer once and applies one update per step."
)


def check_train_op(train_op: Any, graph: Any, first_op: int) -> None:
    """Refuse a TRAIN-mode train_op that cannot train: not a TF operation or tensor (a Keras
    optimizer object, a number), or one traced without any update of a trainable variable.

    Raises:
        ValueError: naming what was returned and showing `optimize_loss`.
    """
    if not isinstance(train_op, (tf.Operation, tf.Tensor, tf.Variable)) and not hasattr(train_op, "op"):
        raise_clean(
            ValueError(
                f"model_fn returned a train_op of type {type(train_op).__name__} ({_short_repr(train_op)}) in mode "
                f"'train': it must be the operation that updates the model. {_FIX}"
            )
        )
    if not getattr(graph, "building_function", False) or tf.distribute.has_strategy():
        return  # eager, or replicated updates the graph does not show plainly: nothing to inspect
    ctx = current_context()
    if ctx is None or ctx.updates_built:
        return
    trainable = {id(v.handle) for v in ctx.runtime.store.trainable()}
    handles = {internal.name for external, internal in graph.captures if id(external) in trainable}
    for op in graph.get_operations()[first_op:]:
        if (op.type in _UPDATE_OPS or op.type.startswith(_UPDATE_PREFIXES)) and op.inputs:
            if op.inputs[0].name in handles:
                return
    raise_clean(
        ValueError(
            f"model_fn's train_op ({_short_repr(train_op)}) does not update any trainable variable, so training "
            f"would advance the global step and leave the weights unchanged. {_FIX}"
        )
    )


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _parameters(fn: Callable[..., Any], args: tuple[str, ...]) -> list[tuple[str, bool, bool]]:
    """(name, keyword-only, has a default) for each of `args`, in signature order."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return [(name, False, False) for name in args]
    kinds = {p.name: p for p in sig.parameters.values()}
    out = []
    for name in args:
        p = kinds.get(name)
        if p is None:
            out.append((name, False, False))
        else:
            out.append((name, p.kind == inspect.Parameter.KEYWORD_ONLY, p.default is not inspect.Parameter.empty))
    return out


def normalize_output(output: Any, mode: str) -> EstimatorSpec:
    """Check the model_fn's return (see `_normalize_output`); errors surface unwrapped by AutoGraph."""
    try:
        return _normalize_output(output, mode)
    except ValueError as exc:
        raise_clean(exc)
        raise


def _normalize_output(output: Any, mode: str) -> EstimatorSpec:
    """Turn the model_fn's return into an `EstimatorSpec` and check it as the original did.

    Raises:
        ValueError: "Missing train_op." in TRAIN, "Missing loss." in TRAIN/EVAL, "Loss must be scalar"
            for a non-scalar loss, "Missing predictions." in INFER; each names the mode.
    """
    if isinstance(output, EstimatorSpec):
        spec = output
    elif isinstance(output, (tuple, list)) and len(output) == 3:
        spec = EstimatorSpec(mode, *output)
    else:
        got = (
            f"a {type(output).__name__} of length {len(output)}"
            if isinstance(output, (tuple, list))
            else repr(type(output).__name__)
        )
        raise ValueError(
            f"model_fn must return (predictions, loss, train_op) or an EstimatorSpec; in mode '{mode}' it returned {got}."
        )
    predictions, loss, train_op = spec.predictions, spec.loss, spec.train_op
    if mode == ModeKeys.TRAIN and train_op is None:
        raise ValueError(
            "Missing train_op. model_fn returned train_op=None in mode 'train'; build one with "
            "estimators.optimize_loss(loss, optimizer='Adam', learning_rate=0.01)."
        )
    if mode in (ModeKeys.TRAIN, ModeKeys.EVAL):
        if loss is None:
            raise ValueError(f"Missing loss. model_fn returned loss=None in mode '{mode}'.")
        loss = tf.convert_to_tensor(loss)
        n = loss.shape.num_elements()
        if n not in (None, 1):
            raise ValueError(
                f"Loss must be scalar, but model_fn returned a loss of shape {loss.shape.as_list()} in mode "
                f"'{mode}'. Reduce it, for example with tf.reduce_mean."
            )
        loss = tf.reshape(tf.cast(loss, tf.float32), [])
    if mode == ModeKeys.INFER and predictions is None:
        raise ValueError("Missing predictions. model_fn returned predictions=None in mode 'infer'.")
    if predictions is not None:
        if isinstance(predictions, Mapping):
            predictions = {str(k): _to_tensor(v, k) for k, v in predictions.items()}
        else:
            predictions = _to_tensor(predictions, "predictions")
    return spec._replace(mode=mode, predictions=predictions, loss=loss)


def _to_tensor(value: Any, name: Any) -> Any:
    if isinstance(value, (tf.Tensor, tf.SparseTensor, tf.Variable)):
        return value
    try:
        return tf.convert_to_tensor(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"model_fn returned a prediction {name!r} that is not a tensor: {exc}") from None


def _name(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or getattr(getattr(fn, "func", None), "__qualname__", None) or repr(fn)
