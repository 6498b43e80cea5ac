"""The in-memory half of an Estimator: variables, optimizers, global step and compiled functions.

One `_Runtime` lives as long as its Estimator object, so `partial_fit`, `evaluate` and `predict`
reuse the traced functions and the weights in memory; the checkpoint in model_dir is read only when
a variable is first created (see `_checkpoints.py`).
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from estimators._context import ModelContext, VariableStore, passthrough, raise_clean
from estimators.metadata import split_element
from estimators.metrics import MetricSpec, StreamingMetric
from estimators.model_fn import EstimatorSpec, ModeKeys, ModelFunction
from feeders import Signatures

logger = logging.getLogger("skflow")


def _batch_size(features: Any) -> tf.Tensor:
    leaf = tf.nest.flatten(features)[0]
    if isinstance(leaf, tf.SparseTensor):
        return leaf.dense_shape[0]
    return tf.shape(leaf, out_type=tf.int64)[0]


def dummy_targets(signature: Signatures, batch: tf.Tensor) -> Any:
    """Zeros shaped like the fitted targets, for model_fns that compute a loss in INFER mode too."""
    if signature is None:
        return None
    if isinstance(signature, Mapping):
        return {k: dummy_targets(v, batch) for k, v in signature.items()}
    if signature.is_sparse:
        return None
    dims = tf.constant([d if d is not None else 1 for d in signature.shape], tf.int32)
    shape = tf.concat([tf.reshape(tf.cast(batch, tf.int32), [1]), dims], 0)
    return tf.zeros(shape, signature.dtype)


def _count_step(global_step: tf.Variable, loss: tf.Tensor) -> None:
    """Count a step once its loss exists. Without the dependency the increment runs alongside the
    step, so an input that fails in the middle of a compiled chunk left the counter one ahead."""
    with tf.control_dependencies([loss]):
        global_step.assign_add(1)


class Runtime:
    """Variables, optimizers and compiled functions of one Estimator.

    Args:
        model: the bound model_fn (`model_fn.ModelFunction`): called in every mode inside this
            runtime's variable store.
        strategy: a `tf.distribute.Strategy`, or None.
    """

    def __init__(self, model: ModelFunction, strategy: tf.distribute.Strategy | None) -> None:
        self.model = model
        self.strategy = strategy or tf.distribute.get_strategy()
        self.distributed = strategy is not None
        self.store = VariableStore()
        self.optimizers: list[Any] = []
        self.optimizer_vars: dict[str, tf.Variable] = {}
        self._new_optimizer_names: list[str] = []
        self._optimizer_initial: dict[str, Any] = {}
        with self.strategy.scope(), passthrough():
            self.global_step = tf.Variable(
                0,
                dtype=tf.int64,
                trainable=False,
                name="global_step",
                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
            )
        self.traced: set[Any] = set()  # compiled functions already traced (their variables exist)
        self.concrete: dict[Any, Any] = {}  # fixed-signature function -> its concrete function
        self.step = 0  # Python mirror of global_step, kept in sync by the loops
        self._train_fns: dict[bool, Any] = {}
        self._step_fn: Any = None
        self._infer_fn: Any = None
        self._gather_fn: Any = None
        self._eval_fns: dict[Any, tuple[Any, dict[str, StreamingMetric], dict[str, StreamingMetric]]] = {}

    # ---------------------------------------------------------------- model_fn calls
    def register_optimizer(self, index: int, optimizer: Any) -> None:
        while len(self.optimizers) <= index:
            self.optimizers.append(None)
        self.optimizers[index] = optimizer
        for j, var in enumerate(optimizer.variables):
            name = f"optimizer_{index}/{j}"
            self.optimizer_vars[name] = getattr(var, "value", var)
            with tf.init_scope():
                self._optimizer_initial[name] = self.optimizer_vars[name].numpy()
            self._new_optimizer_names.append(name)

    def reinitialize(self) -> None:
        """Back to the state before training: initial weights, fresh optimizer slots, global step 0.
        The compiled functions are kept, which is the point (no retracing on a refit)."""
        self.store.reinitialize()
        for name, value in self._optimizer_initial.items():
            self.optimizer_vars[name].assign(value)
        self.global_step.assign(0)
        self.step = 0

    def pop_new_variables(self) -> dict[str, tf.Variable]:
        """Variables created since the last call (model and optimizer), by checkpoint name."""
        names = self.store.pop_new()
        new = {n: self.store.variables[n] for n in names}
        for n in self._new_optimizer_names:
            new[n] = self.optimizer_vars[n]
        self._new_optimizer_names = []
        return new

    def call_model(self, features: Any, targets: Any, mode: str) -> EstimatorSpec:
        seed = self.model.config.tf_random_seed
        with _seeded_python_random(seed), ModelContext(self, mode).activate(), self.store.capture():
            return self.model(features, targets, mode)

    # ---------------------------------------------------------------- training
    def train_step(self, features: Any, targets: Any) -> tf.Tensor:
        spec = self.call_model(features, targets, ModeKeys.TRAIN)
        return spec.loss

    def _replicated_step(self, element: Any) -> tf.Tensor:
        if not self.distributed:
            features, targets = split_element(element)
            return self.train_step(features, targets)
        features, targets = split_element(element)
        per_replica = self.strategy.run(self.train_step, args=(features, targets))
        return self.strategy.reduce(tf.distribute.ReduceOp.MEAN, per_replica, axis=None)

    def train_fn(self, finite: bool) -> Any:
        """`fn(iterator, n) -> (last_loss, steps_done)`: up to n steps in one compiled call."""
        fn = self._train_fns.get(finite)
        if fn is None:
            global_step = self.global_step

            def loop(iterator, n):
                loss = tf.constant(np.nan, tf.float32)
                done = tf.constant(0, tf.int64)
                for _ in tf.range(n):
                    if finite:
                        optional = iterator.get_next_as_optional()
                        if optional.has_value():
                            loss = self._replicated_step(optional.get_value())
                            _count_step(global_step, loss)
                            done += 1
                        else:
                            break
                    else:
                        loss = self._replicated_step(next(iterator))
                        _count_step(global_step, loss)
                        done += 1
                return loss, done

            fn = tf.function(loop, reduce_retracing=True)
            self._train_fns[finite] = fn
        return fn

    def step_fn(self, features_sig: Signatures, targets_sig: Signatures) -> Any:
        """`fn(features, targets) -> loss`: one training step on a batch given as tensors (partial_fit)."""
        if self._step_fn is None:
            global_step = self.global_step

            def step(features, targets):
                loss = self.train_step(features, targets)
                _count_step(global_step, loss)
                return loss

            specs = [_spec(features_sig), _spec(targets_sig)]
            self._step_fn = tf.function(step, input_signature=specs)
        return self._step_fn

    def gather_fn(self) -> Any:
        """`fn(values) -> rows`: every replica's int64 vector `values`, one row per replica, on every
        worker: the one small collective with which the workers of a multi-worker fit agree after each
        compiled call (`estimators.lockstep`)."""
        if self._gather_fn is None:
            strategy = self.strategy

            def gather(values):
                def replica(v):
                    return tf.distribute.get_replica_context().all_gather(v[tf.newaxis], axis=0)

                return strategy.experimental_local_results(strategy.run(replica, args=(values,)))[0]

            self._gather_fn = tf.function(gather, input_signature=[tf.TensorSpec([None], tf.int64)])
        return self._gather_fn

    # ---------------------------------------------------------------- inference
    def infer_fn(self, features_sig: Signatures, targets_sig: Signatures) -> Any:
        if self._infer_fn is None:

            def infer(features):
                targets = dummy_targets(targets_sig, _batch_size(features))
                return self.call_model(features, targets, ModeKeys.INFER).predictions

            self._infer_fn = tf.function(infer, input_signature=[_spec(features_sig)])
        return self._infer_fn

    # ---------------------------------------------------------------- evaluation
    def eval_fn(
        self, key: Any, metric_specs: Mapping[str, MetricSpec]
    ) -> tuple[Any, dict[str, StreamingMetric], dict[str, StreamingMetric]]:
        """`fn(iterator, n) -> batches_done`; updates the returned metrics (and a loss mean)."""
        cached = self._eval_fns.get(key)
        if cached is not None:
            return cached
        metrics = {name: StreamingMetric(name, spec) for name, spec in metric_specs.items()}
        model_metrics: dict[str, StreamingMetric] = {}
        with passthrough():
            loss_mean = _WeightedMean()
        metrics_all = {"loss": loss_mean}

        def eval_step(features, targets):
            spec = self.call_model(features, targets, ModeKeys.EVAL)
            weight = tf.cast(_batch_size(features), tf.float32)
            loss_mean.update(spec.loss, weight)
            for m in metrics.values():
                try:
                    _build_once(m, targets, spec.predictions)
                    m.update(targets, spec.predictions)
                except ValueError as exc:
                    raise_clean(exc)
            for name, op in (spec.eval_metric_ops or {}).items():
                metric = model_metrics.get(name)
                if metric is None:
                    metric = model_metrics[name] = _model_metric(name, op)
                if isinstance(metric, _WeightedMean):
                    metric.update(op, weight)
                else:
                    y_true, y_pred = op[1], op[2]
                    _build_once(metric, y_true, y_pred)
                    metric.update(y_true, y_pred)

        def loop(iterator, n):
            done = tf.constant(0, tf.int64)
            for _ in tf.range(n):
                optional = iterator.get_next_as_optional()
                if optional.has_value():
                    features, targets = split_element(optional.get_value())
                    eval_step(features, targets)
                    done += 1
                else:
                    break
            return done

        fn = tf.function(loop, reduce_retracing=True)
        # eval_metric_ops metrics appear in model_metrics at trace time; _Live keeps a reference.
        cached = (fn, metrics, _Live(metrics_all, model_metrics))
        self._eval_fns[key] = cached
        return cached


class _Live:
    """The loss mean plus the model_fn's eval_metric_ops metrics, which appear at trace time."""

    def __init__(self, fixed: dict, dynamic: dict) -> None:
        self.fixed, self.dynamic = fixed, dynamic

    def items(self) -> Iterator[tuple[str, Any]]:
        yield from self.fixed.items()
        yield from self.dynamic.items()


class _WeightedMean:
    """A streaming mean weighted by batch size (loss and per-batch eval_metric_ops)."""

    def __init__(self) -> None:
        with tf.init_scope(), passthrough(), _local_variables():
            self.total = tf.Variable(0.0, dtype=tf.float64, trainable=False)
            self.count = tf.Variable(0.0, dtype=tf.float64, trainable=False)

    def update(self, value: Any, weight: tf.Tensor) -> None:
        value = tf.cast(tf.reduce_mean(tf.cast(value, tf.float64)), tf.float64)
        w = tf.cast(weight, tf.float64)
        self.total.assign_add(value * w)
        self.count.assign_add(w)

    def reset(self) -> None:
        self.total.assign(0.0)
        self.count.assign(0.0)

    def result(self) -> float:
        count = float(self.count.numpy())
        return float(self.total.numpy()) / count if count else float("nan")


def _model_metric(name: str, op: Any) -> Any:
    if isinstance(op, (tuple, list)) and len(op) == 3:
        return StreamingMetric(name, MetricSpec(op[0]))
    if isinstance(op, (tuple, list)):
        raise ValueError(
            f"eval_metric_ops[{name!r}] is a tuple of {len(op)}; expected a value tensor or a "
            "(metric, y_true, y_pred) triple. TF1 (value, update_op) pairs have no meaning in TF2."
        )
    return _WeightedMean()


def _build_once(metric: StreamingMetric, targets: Any, predictions: Any) -> None:
    # Keras metrics create their variables in __init__: build them outside the trace, once.
    if not metric.built:
        with tf.init_scope(), passthrough(), _local_variables():
            metric.build(targets, predictions)


def _spec(sig: Signatures) -> Any:
    if sig is None:
        return None
    if isinstance(sig, Mapping):
        return {k: v.to_spec() for k, v in sig.items()}
    return sig.to_spec()


@contextlib.contextmanager
def _local_variables() -> Iterator[None]:
    """Variables created inside are plain ones of this process, even under a tf.distribute strategy.

    For evaluation metrics: under a `MultiWorkerMirroredStrategy` every new variable broadcasts its
    initial value to all workers, so an evaluation on the chief alone (a `ValidationMonitor` during a
    multi-worker fit) would wait for ever for the others. The strategy's variable creator applies to
    the thread that entered its scope; a variable made in a helper thread escapes it."""
    if not tf.distribute.has_strategy():
        yield
        return

    def creator(next_creator: Any, **kwargs: Any) -> tf.Variable:
        made: dict[str, Any] = {}

        def make() -> None:
            try:
                made["variable"] = tf.Variable(**kwargs)
            except BaseException as exc:  # re-raised in the caller's thread
                made["error"] = exc

        thread = threading.Thread(target=make, name="skflow-local-variable")
        thread.start()
        thread.join()
        if "error" in made:
            raise made["error"]
        return made["variable"]

    with tf.variable_creator_scope(creator):
        yield


@contextlib.contextmanager
def _seeded_python_random(seed: int | None) -> Iterator[None]:
    """Keras draws default initializer seeds from Python's `random`; seed it per call, then restore it."""
    if seed is None:
        yield
        return
    state = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(state)
