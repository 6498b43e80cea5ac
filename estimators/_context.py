"""Where a model_fn's variables live, and how inline layers get the same variables on every call.

A model_fn written in 2016 style builds `keras.layers.Dense(...)` (or `tf.Variable`) inline, every
time it is called. Each call runs inside `tf.variable_creator_scope(store.creator)`; the creator
returns a cached variable keyed by a stable name (the layer scope with Keras' global counters
removed, then made unique within the call, like TF1's `dense`, `dense_1`, ...). Variables are
created eagerly under `tf.init_scope()` the first time a trace reaches them, so they are shared by
the train, eval and infer functions and tracked for checkpoints (repeated calls gave identical losses).

The current call's context (mode, the store, the estimator's global step) is found by
`optimize_loss` and `get_global_step` through a graph attribute, so it also works in the replica
threads that `MirroredStrategy` runs a step in.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterator
from typing import Any

import keras
import tensorflow as tf

import feeders

__all__ = ["ModelContext", "VariableStore", "current_context", "get_global_step"]

_SUFFIX = re.compile(r"(_\d+)+$")
_local = threading.local()


class VariableStore:
    """An ordered name -> `tf.Variable` map filled by `creator` while a model_fn runs."""

    def __init__(self) -> None:
        self.variables: dict[str, tf.Variable] = {}
        self.initial_values: dict[str, Any] = {}  # name -> the initial value (or its callable), to re-initialise
        self.new_names: list[str] = []  # created since the last `pop_new()`

    def pop_new(self) -> list[str]:
        names, self.new_names = self.new_names, []
        return names

    def trainable(self) -> list[tf.Variable]:
        return [v for v in self.variables.values() if v.trainable]

    @contextlib.contextmanager
    def capture(self) -> Iterator[None]:
        """Run a model_fn call: name counters restart, and variable creation goes through `creator`."""
        state = _CallState(tf.get_current_name_scope())
        previous = getattr(_local, "call", None)
        _local.call = state
        try:
            with tf.variable_creator_scope(self._creator):
                yield
        finally:
            _local.call = previous

    def _creator(self, next_creator: Any, **kwargs: Any) -> tf.Variable:
        if getattr(_local, "passthrough", False):
            kwargs["experimental_enable_variable_lifting"] = False
            return next_creator(**kwargs)
        state: _CallState = _local.call
        name = state.unique_name(tf.get_current_name_scope(), kwargs.get("name") or "Variable")
        var = self.variables.get(name)
        if var is not None:
            shape = kwargs.get("shape")
            if shape is not None and not tf.TensorShape(shape).is_compatible_with(var.shape):
                raise_clean(
                    ValueError(
                        f"model_fn created variable {name!r} with shape {tf.TensorShape(shape)} in this call, but "
                        f"{var.shape} in an earlier one. A model_fn must create the same variables, in the same "
                        "order, in every mode."
                    )
                )
            return var
        kwargs["initial_value"] = _liftable_initial_value(kwargs.get("initial_value"), name)
        with tf.init_scope(), passthrough():
            var = tf.Variable(**kwargs)
        self.variables[name] = var
        self.initial_values[name] = kwargs["initial_value"]
        self.new_names.append(name)
        return var

    def reinitialize(self) -> None:
        """Give every variable its initial value again (Keras initializers are seeded: same values)."""
        for name, var in self.variables.items():
            value = self.initial_values[name]
            var.assign(value() if callable(value) else value)


class _CallState:
    def __init__(self, root: str) -> None:
        self.root = root
        self.scopes: dict[str, str] = {}
        self.used: set[str] = set()
        self.counts: dict[str, int] = {}

    def unique_name(self, scope: str, name: str) -> str:
        if scope.startswith(self.root):
            scope = scope[len(self.root) :]
        scope = scope.strip("/")
        canon = self.scopes.get(scope)
        if canon is None:
            base = "/".join(_SUFFIX.sub("", part) or part for part in scope.split("/") if part)
            canon, i = base, 0
            while canon in self.used:
                i += 1
                canon = f"{base}_{i}"
            if canon:
                self.used.add(canon)
            self.scopes[scope] = canon
        key = f"{canon}/{name}" if canon else name
        n = self.counts.get(key, 0)
        self.counts[key] = n + 1
        return f"{key}_{n}" if n else key


def next_index(kind: str) -> int:
    """How many times `kind` was asked for in the current model_fn call before (0, 1, ...)."""
    state: _CallState | None = getattr(_local, "call", None)
    if state is None:
        return 0
    key = "\0" + kind
    n = state.counts.get(key, 0)
    state.counts[key] = n + 1
    return n


def raise_clean(exc: BaseException) -> None:
    """Raise one of our own errors from inside traced code so that the caller can re-raise it as is.

    AutoGraph rewraps exceptions raised while tracing ("in user code: ... 'x' must be defined before
    the loop"); `clean_errors` swaps such a wrapper for the original, so users see our message.
    """
    _local.user_error = exc
    raise exc


@contextlib.contextmanager
def clean_errors() -> Iterator[None]:
    """Around tracing: re-raise the error recorded by `raise_clean` instead of AutoGraph's wrapper of
    it, and an error from the user's own code (a KeyError in a model_fn) with the user's file and
    line first and without TensorFlow's frames."""
    _local.user_error = None
    try:
        yield
    except Exception as wrapper:
        original = getattr(_local, "user_error", None)
        _local.user_error = None
        if original is not None and original is not wrapper:
            raise original.with_traceback(None) from None
        user = _user_error(wrapper)
        if user is not None:
            raise user from None
        raise


# Frames in these directories are library code; the last frame outside them raised a user's error.
_LIBRARY_DIRS = tuple(
    os.path.dirname(os.path.abspath(path)) + os.sep
    for path in (tf.__file__, keras.__file__, __file__, feeders.__file__)
)


def _user_error(exc: Exception) -> Exception | None:
    """AutoGraph's error for an exception raised in user code, as that exception's own type with a
    message that starts at the user's file and line (None when the error did not come from user code)."""
    meta = getattr(exc, "ag_error_metadata", None)
    frames = getattr(meta, "translated_stack", None)
    if not frames:
        return None
    user = [f for f in frames if not os.path.abspath(f.filename).startswith(_LIBRARY_DIRS)]
    if not user:
        return None
    frame = user[-1]
    base = next((c for c in type(exc).__mro__ if c.__module__ == "builtins"), Exception)
    cause = str(meta.cause_message)
    if not cause.startswith(f"{base.__name__}:"):
        cause = f"{base.__name__}: {cause}"
    message = f'File "{frame.filename}", line {frame.lineno}, in {frame.function_name}\n    {(frame.code or "").strip()}\n{cause}'
    try:
        return type(base.__name__, (_PlainMessage, base), {"__module__": "builtins"})(message)
    except TypeError:
        return None


class _PlainMessage:
    """Mixin: `str()` is the message as written (KeyError would quote it and escape its newlines)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _liftable_initial_value(value: Any, name: str) -> Any:
    """Initial values must be computable outside the trace: callables, constants, numpy."""
    if callable(value) or not isinstance(value, tf.Tensor) or not tf.is_symbolic_tensor(value):
        return value
    static = tf.get_static_value(value)
    if static is not None:
        return static
    raise_clean(
        ValueError(
            f"Variable {name!r} is initialised from a tensor computed inside model_fn, which cannot be "
            "evaluated when the variable is created. Pass a callable initial value, e.g. "
            "tf.Variable(lambda: tf.random.normal([3, 2])), or use a Keras layer or initializer."
        )
    )


@contextlib.contextmanager
def passthrough() -> Iterator[None]:
    """Create variables normally (not cached in a store): optimizers, metrics, the global step."""
    previous = getattr(_local, "passthrough", False)
    _local.passthrough = True
    try:
        yield
    finally:
        _local.passthrough = previous


class ModelContext:
    """What library code called from inside a model_fn needs to know about the current call."""

    def __init__(self, runtime: Any, mode: str) -> None:
        self.runtime = runtime
        self.mode = mode
        self.updates_built = False  # optimize_loss built an update in this call

    @contextlib.contextmanager
    def activate(self) -> Iterator[ModelContext]:
        graph = tf.compat.v1.get_default_graph()
        previous = getattr(graph, "_skflow_context", None)
        eager_previous = getattr(_local, "context", None)
        graph._skflow_context = self
        _local.context = self
        try:
            yield self
        finally:
            graph._skflow_context = previous
            _local.context = eager_previous


def current_context() -> ModelContext | None:
    """The context of the model_fn call being traced on this graph (or its outer graphs), if any."""
    graph = tf.compat.v1.get_default_graph()
    while graph is not None:
        ctx = getattr(graph, "_skflow_context", None)
        if ctx is not None:
            return ctx
        graph = getattr(graph, "outer_graph", None)
    return getattr(_local, "context", None)


def get_global_step() -> tf.Variable:
    """The Estimator's global step variable (int64), for use inside a model_fn.

    Raises:
        RuntimeError: when called outside a model_fn run by an Estimator.
    """
    ctx = current_context()
    if ctx is None:
        raise RuntimeError("get_global_step() must be called inside a model_fn that an Estimator is running.")
    return ctx.runtime.global_step
