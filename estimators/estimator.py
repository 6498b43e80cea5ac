"""`Estimator`: the seed's model_fn Estimator on TensorFlow 2 (fit, partial_fit, evaluate, predict)."""

from __future__ import annotations

import copy
import logging
import numbers
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import tensorflow as tf
from sklearn.exceptions import NotFittedError

from estimators import _checkpoints as ckpt
from estimators._context import clean_errors
from estimators._inputs import (
    _arrays_key,
    _call_input_fn,
    _cast,
    _check_positive,
    _dataset_signatures,
    _decode_labels,
    _describe,
    _feeder_errors,
    _metric_key,
    _n_rows,
    _per_example,
    _qualname,
    _reraising,
    _select_outputs,
    _validate_y,
)
from estimators._runtime import Runtime, split_element
from estimators._summaries import write_scalars
from estimators.metrics import resolve_metrics
from estimators.model_fn import validate_model_fn
from estimators.monitors import MonitorList, NanLoss, get_default_monitors
from estimators.run_config import RunConfig
from feeders.numpy_feeder import DataFeeder, _signature, _slice, validate_features
from feeders.pandas_feeder import LabelEncoding, PandasFeeder
from feeders.setup import setup_predict_data_feeder, setup_train_data_feeder
from feeders.signature import (
    Signatures,
    check_signatures_compatible,
    signature_from_json,
    signature_to_json,
)

__all__ = ["Estimator", "NotFittedError"]

logger = logging.getLogger("skflow")

_DEFAULT_BATCH_SIZE = 32
_UNPICKLED = ("_runtime", "_checkpoints", "_best_checkpoints", "_default_monitors", "_train_feeder")
BEST = "best"  # model_dir/best holds the best checkpoint kept by ValidationMonitor(keep_best=True)


class Estimator:
    """A TensorFlow model defined by a `model_fn`, trained, evaluated and served scikit-learn style.

    Args:
        model_fn: `model_fn(features, targets[, mode[, params[, config]]])` returning
            `(predictions, loss, train_op)` or an `EstimatorSpec`. Arguments are passed by name
            (`labels` is accepted for `targets`); `functools.partial` objects and callable objects
            work. Layers and variables may be created inline: every call gets the same variables.
        model_dir: directory for checkpoints and summaries. default=None: a new temporary directory,
            with a warning.
        config: a `RunConfig`. default=None: `RunConfig()`.
        params: passed to the model_fn's `params` argument. default=None.
        feature_engineering_fn: `fn(features, targets) -> (features, targets)` applied before
            model_fn in every mode. default=None.
        warm_start_from: a model_dir or checkpoint path whose matching model variables initialise a
            model that has no checkpoint of its own yet. default=None.

    Raises:
        ValueError: `params` given to a model_fn without a `params` argument (as in the original).

    Example:
        >>> def model_fn(features, targets, mode, params):
        ...     logits = keras.layers.Dense(params["n_classes"])(features)
        ...     loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits))
        ...     train_op = optimize_loss(loss, optimizer="Adagrad", learning_rate=0.1)
        ...     return {"class": tf.argmax(logits, 1)}, loss, train_op
        >>> est = Estimator(model_fn, params={"n_classes": 3}).fit(X, y, steps=100)
        >>> est.evaluate(X, y, metrics=["accuracy"])["accuracy"]
    """

    def __init__(
        self,
        model_fn: Callable[..., Any],
        model_dir: str | os.PathLike | None = None,
        config: RunConfig | None = None,
        params: Any = None,
        feature_engineering_fn: Callable[[Any, Any], tuple[Any, Any]] | None = None,
        warm_start_from: str | os.PathLike | None = None,
    ) -> None:
        self._model_fn_args = validate_model_fn(model_fn, params)
        if params is None and "params" in self._model_fn_args:
            logger.debug("model_fn takes params but none were given; it receives None.")
        if config is not None and not isinstance(config, RunConfig):
            raise TypeError(f"config must be a RunConfig; received {type(config).__name__}.")
        if feature_engineering_fn is not None and not callable(feature_engineering_fn):
            raise TypeError("feature_engineering_fn must be callable(features, targets) -> (features, targets).")
        self._model_fn = model_fn
        self._params = params
        self._config = config if config is not None else RunConfig()
        self._feature_engineering_fn = feature_engineering_fn
        if model_dir is None:
            model_dir = tempfile.mkdtemp(prefix="skflow_")
            warnings.warn(f"Using temporary folder as model directory: {model_dir}", UserWarning, stacklevel=2)
        self._model_dir = os.fspath(model_dir)
        self._warm_start_from = os.fspath(warm_start_from) if warm_start_from is not None else None
        self._checkpoints = ckpt.CheckpointStore(
            self._model_dir,
            self._config.keep_checkpoint_max,
            self._config.keep_checkpoint_every_n_hours,
            is_chief=self._config.is_chief,
        )
        self._runtime: Runtime | None = None
        self._initialized = False  # in-memory variables hold a restored or trained state
        self._features_info: Signatures = None
        self._targets_info: Signatures = None
        self._has_targets: bool | None = None
        self._fit_batch_size: int | None = None
        self._last_loss: float | None = None
        self._last_saved_step: int | None = None
        self._feeder_state: dict[str, Any] | None = None  # encoding learned by the first fit's feeder
        self._best_checkpoints: ckpt.CheckpointStore | None = None
        self._pinned_checkpoint: str | None = None  # set on copies made by _pinned()
        self._default_monitors: dict[bool, list[Any]] = {}
        self._steps_per_epoch: int | None = None
        self._meta_dirty = False
        self._train_feeder: tuple[Any, Any] | None = None  # (key, DataFeeder) of the last fit on arrays

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict[str, Any]:
        """Pickle without TF objects: the configuration, signatures, and the weights as numpy arrays.

        The model_fn is pickled by reference, so it must be importable (a module-level function).
        A `tf.distribute` strategy in the RunConfig is dropped (it cannot be pickled).
        """
        state = {k: v for k, v in self.__dict__.items() if k not in _UNPICKLED}
        state["_config"] = self._config.replace(train_distribute=None, eval_distribute=None)
        state["_pickled_weights"] = self._weights_for_pickle()
        # Signatures hold TF dtypes: pickle them as their JSON form, so the payload has no TF object.
        state["_features_info"] = signature_to_json(self._features_info)
        state["_targets_info"] = signature_to_json(self._targets_info)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        state["_features_info"] = signature_from_json(state.get("_features_info"))
        state["_targets_info"] = signature_from_json(state.get("_targets_info"))
        self.__dict__.update(state)
        # A copy never writes into the original's model_dir: it gets a directory of its own.
        self._origin_model_dir = state["_model_dir"]
        self._model_dir = tempfile.mkdtemp(prefix="skflow_")
        self._checkpoints = ckpt.CheckpointStore(
            self._model_dir,
            self._config.keep_checkpoint_max,
            self._config.keep_checkpoint_every_n_hours,
            self._config.is_chief,
        )
        self._runtime = None
        self._best_checkpoints = None
        self._default_monitors = {}
        self._train_feeder = None
        self._initialized = False
        self._last_saved_step = None
        self._meta_dirty = self._features_info is not None
        if self._meta_dirty and self._config.is_chief:
            self._record_signatures(self._features_info, self._targets_info, "fit")

    def _weights_for_pickle(self) -> dict[str, np.ndarray] | None:
        if self._runtime is not None and self._initialized:
            rt = self._runtime
            weights = {n: v.numpy() for n, v in rt.store.variables.items()}
            weights.update({n: v.numpy() for n, v in rt.optimizer_vars.items()})
            weights["global_step"] = np.int64(rt.step)
            return weights
        pending = self.__dict__.get("_pickled_weights")
        if pending is not None:
            return pending
        path = self._restore_source() if self._checkpoints is not None else None
        if path is None:
            return None
        reader = tf.train.load_checkpoint(path)
        return {n: reader.get_tensor(ckpt._key_for(n)) for n in ckpt.list_checkpoint_variables(path)}

    # ------------------------------------------------------------------ properties
    @property
    def model_dir(self) -> str:
        return self._model_dir

    @property
    def config(self) -> RunConfig:
        return self._config

    @property
    def params(self) -> Any:
        return self._params

    @property
    def model_fn(self) -> Callable[..., Any]:
        return self._model_fn

    # ------------------------------------------------------------------ public API
    def fit(
        self,
        x: Any = None,
        y: Any = None,
        input_fn: Callable[[], Any] | None = None,
        steps: int | None = None,
        batch_size: int | None = None,
        monitors: list[Any] | None = None,
        max_steps: int | None = None,
        impute: bool | str | None = None,
    ) -> Estimator:
        """Train the model.

        Args:
            x: features, array-like of shape (n_samples, n_features) (or N-D), or a dict of arrays.
                Exclusive with `input_fn`.
            y: targets, array-like of shape (n_samples,) or (n_samples, n_outputs), or None.
            input_fn: a function returning a `tf.data.Dataset` of `(features, targets)` batches, or a
                `(features, targets)` pair of tensors.
            steps: train this many more steps (two `fit(steps=100)` train 200).
            batch_size: rows per batch for x/y. default=32.
            monitors: monitors (`BaseMonitor`s, objects with begin/step_end/end, or callables
                `fn(step, outputs)`), called during this fit only.
            max_steps: train until the global step reaches this (two `fit(max_steps=100)` train 100).
            impute: None (default: NaN in x is an error naming its column), or "mean" (True too):
                fill NaN with column means learned at the first fit and saved with the model, so
                evaluate and predict fill the same way. numpy arrays and DataFrames only.

        Calling `fit` again with numpy arrays of the same content (up to 256 MiB; a SHA-1 of their
        bytes tells) reuses the input pipeline with a new shuffle seed, so `fit(steps=100)` in a
        loop pays no re-validation, copy or tracing. Its copy of the arrays stays alive meanwhile.

        Returns:
            self.

        Raises:
            ValueError: both steps and max_steps, x and input_fn together, bad data.
        """
        if steps is not None and max_steps is not None:
            raise ValueError("Can not provide both steps and max_steps.")
        _check_positive("steps", steps)
        _check_positive("max_steps", max_steps)
        dataset, finite = self._train_dataset(x, y, input_fn, batch_size, impute)
        self._train(dataset, finite, steps, max_steps, monitors)
        return self

    def partial_fit(
        self,
        x: Any = None,
        y: Any = None,
        input_fn: Callable[[], Any] | None = None,
        steps: int = 1,
        batch_size: int | None = None,
        monitors: list[Any] | None = None,
    ) -> Estimator:
        """Train `steps` more steps on this data, keeping the model in memory (no retrace, no reload).

        With x/y and `batch_size` None (or at least len(x)), each step uses all of x as one batch,
        through a compiled one-step function: the fast path for online learning. Checkpoints are
        written on the RunConfig schedule, not on every call; `save_checkpoint()` writes one now.

        Returns:
            self.
        """
        _check_positive("steps", steps)
        if input_fn is None and x is not None and self._runtime_is_local() and self._feeder_state is None:
            features = validate_features(x)
            n = _n_rows(features)
            if batch_size is None or batch_size >= n:
                targets = None if y is None else _validate_y(y, n)
                self._record_signatures(_signature(features), _signature(targets), "fit")
                features, targets = self._cast_inputs(features, targets)
                self._train_on_batch(features, targets, steps, monitors)
                return self
        dataset, finite = self._train_dataset(x, y, input_fn, batch_size)
        self._train(dataset, finite, steps, None, monitors, partial=True)
        return self

    def evaluate(
        self,
        x: Any = None,
        y: Any = None,
        input_fn: Callable[[], Any] | None = None,
        batch_size: int | None = None,
        steps: int | None = None,
        metrics: Any = None,
        name: str | None = None,
        checkpoint_path: str | None = None,
    ) -> dict[str, Any]:
        """Evaluate the model on one pass over the data (or `steps` batches).

        Args:
            x, y: as in `fit`; or `input_fn`.
            batch_size: rows per batch for x/y. default: the fit batch size, else 32.
            steps: number of batches; None: one full pass (finite data only).
            metrics: a list of metric names ("accuracy", "auc", "mse", "mae", "rmse", "precision",
                "recall"), Keras metrics or functions, or a dict name -> one of those or a `MetricSpec`.
            name: evaluation name; summaries go to model_dir/eval_<name> (model_dir/eval without).
            checkpoint_path: evaluate this checkpoint (a path, a directory, or "best": the one
                `ValidationMonitor(keep_best=True)` kept) instead of the weights in memory.

        Returns:
            dict with `loss` (mean over examples), `global_step` and one entry per metric, plus the
            model_fn's `eval_metric_ops`.

        Raises:
            NotFittedError: no checkpoint in model_dir and nothing trained in memory.
        """
        _check_positive("steps", steps)
        if checkpoint_path is not None:
            pinned = self._pinned(checkpoint_path)
            return pinned.evaluate(
                x, y, input_fn=input_fn, batch_size=batch_size, steps=steps, metrics=metrics, name=name
            )
        specs = resolve_metrics(metrics)
        rt = self._ready_runtime("evaluate")
        dataset = self._eval_dataset(x, y, input_fn, batch_size, steps)
        key = (tuple((k, _metric_key(v)) for k, v in specs.items()),)
        fn, user_metrics, other = rt.eval_fn(key, specs)
        iterator = iter(dataset)
        limit = steps if steps is not None else 2**62
        with rt.strategy.scope():
            if fn not in rt.traced:
                with clean_errors():
                    fn.get_concrete_function(iterator, tf.TensorSpec([], tf.int64))
                self._sync_variables("evaluate")
                rt.traced.add(fn)
            for _, m in other.items():
                m.reset()
            for m in user_metrics.values():
                m.reset()
            done = 0
            while done < limit:
                n = min(limit - done, max(self._config.steps_per_execution, 1))
                with _feeder_errors():
                    got = int(fn(iterator, tf.constant(n, tf.int64)))
                done += got
                if got < n:
                    break
        if done == 0:
            raise ValueError("Evaluation data is empty: the input produced no batch.")
        results: dict[str, Any] = {}
        for key_, m in other.items():
            results[key_] = m.result()
        for key_, m in user_metrics.items():
            results[key_] = m.result()
        results["global_step"] = rt.step
        self._write_eval_summaries(results, name)
        return results

    def predict(
        self,
        x: Any = None,
        input_fn: Callable[[], Any] | None = None,
        batch_size: int | None = None,
        outputs: list[str] | None = None,
        as_iterable: bool = False,
        checkpoint_path: str | None = None,
    ) -> Any:
        """Predict for x (or input_fn's features).

        Args:
            x: features as in `fit`; or `input_fn` returning a dataset of features (or of
                `(features, targets)`, whose targets are ignored).
            batch_size: rows per call of the model. default: the fit batch size, else 32.
            outputs: keys of the predictions dict to return; default all.
            as_iterable: return an iterator of per-example results instead of arrays.
            checkpoint_path: predict with this checkpoint (a path, a directory, or "best").

        Returns:
            an array of shape (n_samples, ...), a dict of such arrays, or an iterator.

        Raises:
            NotFittedError: no checkpoint in model_dir and nothing trained in memory.
            ValueError: features incompatible with those the model was fitted on.
        """
        if (x is None) == (input_fn is None):
            raise ValueError(
                "Either x or input_fn must be provided, not both."
                if x is not None
                else "Either x or input_fn must be provided."
            )
        if batch_size is not None:
            _check_positive("batch_size", batch_size)
        if checkpoint_path is not None:
            pinned = self._pinned(checkpoint_path)
            return pinned.predict(x, input_fn=input_fn, batch_size=batch_size, outputs=outputs, as_iterable=as_iterable)
        self._ready_runtime("predict")
        batches = self._predict_batches(x, input_fn, batch_size)
        results = self._predict_iter(batches, outputs)
        if as_iterable:
            return _per_example(results)
        chunks = list(results)
        if not chunks:
            raise ValueError("Prediction data is empty: the input produced no batch.")
        if isinstance(chunks[0], dict):
            return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
        return np.concatenate(chunks)

    def get_variable_names(self) -> list[str]:
        """Names of the variables in the latest checkpoint (model, optimizer slots, global_step)."""
        path = self.latest_checkpoint()
        if path is None:
            raise NotFittedError(self._no_checkpoint_message("get_variable_names"))
        return sorted(ckpt.list_checkpoint_variables(path))

    def get_variable_value(self, name: str) -> np.ndarray:
        """Value of variable `name` in the latest checkpoint (see `get_variable_names`)."""
        path = self.latest_checkpoint()
        if path is None:
            raise NotFittedError(self._no_checkpoint_message("get_variable_value"))
        names = ckpt.list_checkpoint_variables(path)
        if name not in names:
            raise ValueError(f"No variable {name!r} in checkpoint {path}; it has {sorted(names)}.")
        return tf.train.load_checkpoint(path).get_tensor(ckpt._key_for(name))

    def latest_checkpoint(self) -> str | None:
        """Path prefix of the newest checkpoint in model_dir, or None."""
        return self._checkpoints.latest()

    def save_checkpoint(self) -> str:
        """Write the in-memory state to a checkpoint now (after `partial_fit` calls, say)."""
        rt = self._ready_runtime("save_checkpoint")
        return self._save(rt, force=True)

    def export_saved_model(
        self, export_dir_base: str | os.PathLike, checkpoint_path: str | None = None, as_text: bool = False
    ) -> str:
        """Export a TF SavedModel under export_dir_base/<timestamp>; its `serving_default` signature
        returns the same outputs as `predict()`.

        Returns:
            the export directory.
        """
        from estimators._export import export_saved_model

        if checkpoint_path is not None:
            checkpoint_path = self._resolve_checkpoint(checkpoint_path)
        return export_saved_model(self, os.fspath(export_dir_base), checkpoint_path=checkpoint_path, as_text=as_text)

    def _restart(self, model_dir: str) -> None:
        """Start over in a new, empty model_dir, reusing the compiled functions (used by the canned
        estimators' refit: scikit-learn's fit trains from scratch, and tracing costs more than tiny fits)."""
        self._model_dir = model_dir
        self._checkpoints = ckpt.CheckpointStore(
            model_dir,
            self._config.keep_checkpoint_max,
            self._config.keep_checkpoint_every_n_hours,
            self._config.is_chief,
        )
        self._best_checkpoints = None
        self._default_monitors = {}
        self._last_saved_step = None
        self._last_loss = None
        self.__dict__.pop("_pickled_weights", None)
        if self._runtime is not None:
            self._runtime.reinitialize()
            self._initialized = False
        self._meta_dirty = self._features_info is not None
        if self._meta_dirty and self._config.is_chief:
            self._record_signatures(self._features_info, self._targets_info, "fit")

    def _resolve_checkpoint(self, checkpoint_path: str | os.PathLike) -> str:
        """A checkpoint path from a path, a directory (its latest) or "best" (model_dir/best)."""
        path = os.fspath(checkpoint_path)
        if path == BEST:
            best = tf.train.latest_checkpoint(os.path.join(self._model_dir, BEST))
            if best is None:
                raise ValueError(
                    f"No best checkpoint in {os.path.join(self._model_dir, BEST)!r}: train with "
                    "ValidationMonitor(..., keep_best=True) to keep one."
                )
            return best
        if os.path.isdir(path):
            latest = tf.train.latest_checkpoint(path)
            if latest is None:
                raise ValueError(f"checkpoint_path={path!r} is a directory without checkpoints.")
            return latest
        if not tf.io.gfile.exists(path + ".index"):
            raise ValueError(f"checkpoint_path={path!r} is not a checkpoint (no {path}.index).")
        return path

    def _pinned(self, checkpoint_path: str | os.PathLike) -> Estimator:
        """A copy of this Estimator that restores from one checkpoint and leaves this one untouched."""
        path = self._resolve_checkpoint(checkpoint_path)
        other = copy.copy(self)
        other._runtime = None
        other._initialized = False
        other._pinned_checkpoint = path
        other._last_saved_step = None
        other._default_monitors = {}
        return other

    # ------------------------------------------------------------------ inputs
    def _batch_size(self, batch_size: int | None) -> int:
        """The given batch size, else the one of the first fit, else the default."""
        return batch_size if batch_size is not None else (self._fit_batch_size or _DEFAULT_BATCH_SIZE)

    def _feeder(self, x: Any, y: Any, batch_size: int | None, training: bool, impute: Any = None) -> Any:
        """The feeder for x/y (chosen by type), applying the encoding learned at the first fit."""
        self._load_signatures()
        return setup_train_data_feeder(
            x,
            y,
            batch_size=self._batch_size(batch_size),
            shuffle=training,
            epochs=None if training else 1,
            seed=self._shuffle_seed() if training else None,
            state=self._feeder_state,
            impute=impute,
        )

    def _train_dataset(
        self, x: Any, y: Any, input_fn: Any, batch_size: int | None, impute: Any = None
    ) -> tuple[tf.data.Dataset, bool]:
        if x is not None and input_fn is not None:
            raise ValueError("Either x or input_fn must be provided, not both.")
        if x is None and input_fn is None:
            raise ValueError("Either x or input_fn must be provided.")
        if input_fn is not None:
            if y is not None or batch_size is not None or impute:
                raise ValueError("y, batch_size and impute go with x; an input_fn yields its own batches.")
            dataset, finite = _call_input_fn(input_fn, repeat=True)
            self._steps_per_epoch = None
        else:
            feeder = self._reusable_feeder(x, y, batch_size, impute)
            if batch_size is not None or self._fit_batch_size is None:
                self._fit_batch_size = feeder.batch_size
            if self._feeder_state is None and feeder.state is not None:
                self._feeder_state = feeder.state
                self._meta_dirty = True
            dataset, finite = feeder.dataset(), feeder.finite
            n = getattr(feeder, "n_samples", None)
            self._steps_per_epoch = max(n // min(feeder.batch_size, n), 1) if n else None
        features_sig, targets_sig = _dataset_signatures(dataset)
        self._record_signatures(features_sig, targets_sig, "fit")
        return self._cast_dataset(dataset, features_sig, targets_sig), finite

    def _reusable_feeder(self, x: Any, y: Any, batch_size: int | None, impute: Any) -> Any:
        """The training feeder; the previous fit's when x and y are the same, unchanged arrays.

        Building a feeder validates and copies the arrays and traces its dataset's functions: about
        0.1 s at 200k x 28 floats, paid on every `fit` call otherwise (fit(steps=100) in a loop)."""
        key = _arrays_key(x, y)
        if key is not None:
            key = (key, self._batch_size(batch_size), str(impute))
            cached = self._train_feeder
            if cached is not None and cached[0] == key:
                cached[1].reseed(self._shuffle_seed())
                return cached[1]
        self._train_feeder = None  # release the previous copy before making a new one
        feeder = self._feeder(x, y, batch_size, training=True, impute=impute)
        if key is not None and isinstance(feeder, DataFeeder):
            self._train_feeder = (key, feeder)
        return feeder

    def _eval_dataset(
        self, x: Any, y: Any, input_fn: Any, batch_size: int | None, steps: int | None
    ) -> tf.data.Dataset:
        if (x is None) == (input_fn is None):
            raise ValueError(
                "Either x or input_fn must be provided, not both."
                if x is not None
                else "Either x or input_fn must be provided."
            )
        if input_fn is not None:
            if y is not None or batch_size is not None:
                raise ValueError("y and batch_size go with x; an input_fn yields its own batches.")
            dataset, finite = _call_input_fn(input_fn, repeat=False)
        else:
            feeder = self._feeder(x, y, batch_size, training=False)
            dataset, finite = feeder.dataset(), feeder.finite
        if not finite and steps is None:
            raise ValueError(
                "The evaluation input is endless (it repeats forever) and steps=None would never end; "
                "pass steps= or make the input finite."
            )
        features_sig, targets_sig = _dataset_signatures(dataset)
        self._check_known_signatures(features_sig, targets_sig, "evaluate")
        return self._cast_dataset(dataset, features_sig, targets_sig)

    def _predict_batches(self, x: Any, input_fn: Any, batch_size: int | None) -> Iterator[Any]:
        self._load_signatures()
        if input_fn is not None:
            dataset, finite = _call_input_fn(input_fn, repeat=False)
        else:
            batch = batch_size if batch_size is not None else max(self._fit_batch_size or 0, 1024)
            feeder = setup_predict_data_feeder(x, batch_size=batch, state=self._feeder_state)
            if isinstance(feeder, (DataFeeder, PandasFeeder)):
                # In-memory arrays: slice them and call the compiled model directly (no tf.data per call).
                features = feeder.x
                self._check_known_signatures(_signature(features), self._targets_info, "predict", check_targets=False)
                features = self._cast_features(features)
                n = _n_rows(features)
                return (_slice(features, i, i + batch) for i in range(0, n, batch))
            dataset, finite = feeder.dataset(), feeder.finite
        if not finite:
            raise ValueError("The prediction input is endless; predict needs finite data.")
        features_sig, _ = _dataset_signatures(dataset)
        self._check_known_signatures(features_sig, self._targets_info, "predict", check_targets=False)
        return (self._cast_features(split_element(e)[0]) for e in _reraising(dataset))

    def _predict_iter(self, batches: Iterator[Any], outputs: list[str] | None) -> Iterator[Any]:
        rt = self._ready_runtime("predict")
        fn = self._concrete(rt, rt.infer_fn(self._features_info, self._targets_info), "predict")
        labels = LabelEncoding.from_json((self._feeder_state or {}).get("labels"))
        for features in batches:
            predictions = tf.nest.map_structure(lambda t: t.numpy(), fn(features))
            yield _select_outputs(_decode_labels(predictions, labels), outputs)

    # ------------------------------------------------------------------ signatures
    def _record_signatures(self, features_sig: Signatures, targets_sig: Signatures, where: str) -> None:
        self._load_signatures()
        if self._features_info is None:
            self._features_info, self._targets_info = features_sig, targets_sig
            self._has_targets = targets_sig is not None
            self._meta_dirty = True
        else:
            self._check_known_signatures(features_sig, targets_sig, where)
        if self._meta_dirty and self._config.is_chief:
            ckpt.write_meta(
                self._model_dir,
                {
                    "format": 1,
                    "features": signature_to_json(self._features_info),
                    "targets": signature_to_json(self._targets_info),
                    "feeder": self._feeder_state,
                    "model_fn": _qualname(self._model_fn),
                },
            )
        self._meta_dirty = False

    def _check_known_signatures(
        self, features_sig: Signatures, targets_sig: Signatures, where: str, check_targets: bool = True
    ) -> None:
        self._load_signatures()
        if self._features_info is None:
            if where == "fit":
                return
            self._features_info, self._targets_info = features_sig, targets_sig
            return
        owner = type(self).__name__
        check_signatures_compatible(self._features_info, features_sig, "X", owner)
        if check_targets and targets_sig is None and self._targets_info is not None:
            raise ValueError(
                f"y is required: this {owner} was fitted with targets ({_describe(self._targets_info)}), "
                f"but {where}() received none. Pass y (or an input whose elements are (features, targets))."
            )
        if check_targets and targets_sig is not None:
            check_signatures_compatible(self._targets_info, targets_sig, "y", owner)

    def _load_signatures(self) -> None:
        if self._features_info is not None:
            return
        meta = ckpt.read_meta(self._model_dir)
        if meta:
            self._features_info = signature_from_json(meta.get("features"))
            self._targets_info = signature_from_json(meta.get("targets"))
            self._has_targets = self._targets_info is not None
            if self._feeder_state is None:
                self._feeder_state = meta.get("feeder")

    def _cast_features(self, features: Any) -> Any:
        sig = self._features_info
        if isinstance(features, Mapping):
            return {k: _cast(v, sig[k]) for k, v in features.items()}
        return _cast(features, sig)

    def _cast_inputs(self, features: Any, targets: Any) -> tuple[Any, Any]:
        features = self._cast_features(features)
        if targets is not None and self._targets_info is not None:
            sig = self._targets_info
            targets = (
                {k: _cast(v, sig[k]) for k, v in targets.items()}
                if isinstance(targets, Mapping)
                else _cast(targets, sig)
            )
        return features, targets

    def _cast_dataset(
        self, dataset: tf.data.Dataset, features_sig: Signatures, targets_sig: Signatures
    ) -> tf.data.Dataset:
        if features_sig == self._features_info and (targets_sig is None or targets_sig == self._targets_info):
            return dataset
        return dataset.map(lambda *e: self._cast_inputs(*split_element(e if len(e) > 1 else e[0])))

    # ------------------------------------------------------------------ runtime and state
    def _runtime_is_local(self) -> bool:
        return self._config.train_distribute is None

    def _ensure_runtime(self) -> Runtime:
        if self._runtime is None:
            if self._config.tf_random_seed is not None:
                tf.random.set_seed(self._config.tf_random_seed)
            self._runtime = Runtime(self, self._config.train_distribute)
            latest = self._restore_source()
            pickled = self.__dict__.get("_pickled_weights")
            if latest is None and pickled is not None:
                self._runtime.global_step.assign(int(pickled.get("global_step", 0)))
                self._runtime.step = int(self._runtime.global_step.numpy())
                self._initialized = True
            elif latest is not None:
                self._runtime.global_step.assign(ckpt.read_global_step(latest))
                self._runtime.step = int(self._runtime.global_step.numpy())
                self._last_saved_step = self._runtime.step
                self._initialized = True
        return self._runtime

    def _restore_source(self) -> str | None:
        return self._pinned_checkpoint or self._checkpoints.readable_latest()

    def _ready_runtime(self, method: str) -> Runtime:
        """The runtime of a model that has been fitted (restored or trained in memory)."""
        rt = self._ensure_runtime()
        if not self._initialized:
            raise NotFittedError(self._not_fitted_message(method))
        return rt

    def _not_fitted_message(self, method: str) -> str:
        return (
            f"This {type(self).__name__} instance is not fitted yet: there is no checkpoint in model_dir "
            f"{self._model_dir!r}. Call 'fit' with appropriate arguments before using '{method}'."
        )

    def _no_checkpoint_message(self, method: str) -> str:
        if self._initialized:
            return (
                f"'{method}' reads the latest checkpoint, and model_dir {self._model_dir!r} has none yet: the model "
                "was trained in memory (partial_fit). Call save_checkpoint() first."
            )
        return self._not_fitted_message(method)

    def _sync_variables(self, where: str) -> None:
        """Give variables created by the latest trace their values: checkpoint, warm start, or fresh."""
        rt = self._runtime
        new = rt.pop_new_variables()
        if not new:
            return
        source = self._restore_source()
        if source is not None:
            ckpt.restore_variables(source, new, self._model_dir)
            self._initialized = True
            return
        pickled = self.__dict__.get("_pickled_weights")
        if pickled is not None:
            for name, var in new.items():
                if name in pickled:
                    var.assign(pickled[name])
            return
        if self._initialized:
            return  # trained in memory and not saved yet: new variables start fresh
        if self._warm_start_from is not None and where == "fit":
            self._warm_start(new)

    def _warm_start(self, variables: Mapping[str, tf.Variable]) -> None:
        source = self._warm_start_from
        path = tf.train.latest_checkpoint(source) if os.path.isdir(source) else source
        if path is None or not tf.io.gfile.exists(path + ".index"):
            raise ValueError(f"warm_start_from={source!r} holds no checkpoint.")
        model_vars = {n: v for n, v in variables.items() if not n.startswith("optimizer_")}
        missing = ckpt.restore_variables(path, model_vars, source, strict=False)
        logger.info(
            "Warm-started %d variable(s) from %s%s.",
            len(model_vars) - len(missing),
            path,
            f"; {len(missing)} not in it start fresh: {missing[:5]}" if missing else "",
        )

    def _shuffle_seed(self) -> int:
        base = self._config.tf_random_seed
        step = self._runtime.step if self._runtime is not None else 0
        if base is None:
            return int(np.random.randint(0, 2**31 - 1))
        return (int(base) * 1_000_003 + step) % (2**31 - 1)

    def _save(self, rt: Runtime, force: bool = False) -> str | None:
        if not force and self._last_saved_step == rt.step:
            return None
        path = self._checkpoints.save(rt.global_step, rt.store.variables, rt.optimizer_vars, rt.step)
        self._last_saved_step = rt.step
        return path

    # ------------------------------------------------------------------ training loop
    def _train(
        self,
        dataset: tf.data.Dataset,
        finite: bool,
        steps: int | None,
        max_steps: int | None,
        monitors: Any,
        partial: bool = False,
    ) -> None:
        rt = self._ensure_runtime()
        start = rt.step
        if max_steps is not None and start >= max_steps:
            logger.info(
                "Skipping training since max_steps=%d has already been reached (global step %d).", max_steps, start
            )
            return
        target = start + steps if steps is not None else max_steps
        strategy = rt.strategy
        with strategy.scope():
            data = strategy.experimental_distribute_dataset(dataset) if rt.distributed else dataset
            iterator = iter(data)
            fn = rt.train_fn(finite)
            if fn not in rt.traced:
                with clean_errors():
                    fn.get_concrete_function(iterator, tf.TensorSpec([], tf.int64))
                self._sync_variables("fit")
                rt.traced.add(fn)
            self._initialized = True

            def run(n: int) -> tuple[Any, int]:
                with _feeder_errors():
                    loss, done = fn(iterator, tf.constant(n, tf.int64))
                return loss, (int(done) if finite else n)

            self._run_loop(rt, run, target, monitors, partial=partial, steps_per_epoch=self._steps_per_epoch)

    def _concrete(self, rt: Runtime, fn: Any, where: str) -> Any:
        """The traced concrete function of a fixed-signature `tf.function` (traced once, variables synced).

        Calling it directly skips the polymorphic dispatch (argument binding and cache lookup), about
        1 ms per call here: what keeps `partial_fit` and one-row `predict` cheap."""
        concrete = rt.concrete.get(fn)
        if concrete is None:
            with clean_errors():
                concrete = fn.get_concrete_function()
            self._sync_variables(where)
            rt.concrete[fn] = concrete
        return concrete

    def _train_on_batch(self, features: Any, targets: Any, steps: int, monitors: Any) -> None:
        rt = self._ensure_runtime()
        fn = self._concrete(rt, rt.step_fn(self._features_info, self._targets_info), "fit")
        self._initialized = True

        def run(n: int) -> tuple[Any, int]:
            loss = None
            for _ in range(n):
                loss = fn(features, targets)
            return loss, n

        self._run_loop(rt, run, rt.step + steps, monitors, partial=True)

    def _run_loop(
        self,
        rt: Runtime,
        run: Callable[[int], tuple[Any, int]],
        target: int | None,
        monitors: Any,
        partial: bool = False,
        steps_per_epoch: int | None = None,
    ) -> None:
        """Run training steps until `target` (None: until the input ends).

        Each compiled call runs up to `steps_per_execution` steps and ends exactly at the next step a
        monitor asked for, a checkpoint is due, or an epoch ends (when a monitor has epoch hooks).
        Monitors may request values (`step_begin`) and stop training (`step_end`); the loop then saves
        and returns. `partial` (partial_fit): quiet defaults and no save at the end, so that many small
        calls stay cheap.
        """
        config = self._config
        # Default monitors live as long as the Estimator (one summary writer, not one per call).
        if partial not in self._default_monitors:
            self._default_monitors[partial] = [
                NanLoss(every_n_steps=max(config.log_step_count_steps or 100, 1)),
                *get_default_monitors(config, partial),
            ]
        defaults = self._default_monitors[partial]
        mlist = MonitorList([*defaults, *(monitors or [])], estimator=self, is_chief=config.is_chief)
        save_steps, save_secs = config.save_checkpoints_steps, config.save_checkpoints_secs
        last_save_time = time.monotonic()
        spe = config.steps_per_execution
        epochs = steps_per_epoch if steps_per_epoch and mlist.wants_epochs() else None
        start_step = rt.step
        mlist.begin(target)
        if epochs:
            mlist.epoch_begin(0)
        loss: Any = None
        try:
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
                    outputs = {"loss": float(loss), "global_step": rt.step}
                    for name in names:
                        if name not in outputs:
                            outputs[name] = self._tensor_value(name)
                    stop = mlist.step_end(rt.step, outputs, hooked)
                if epochs and (rt.step - start_step) % epochs == 0:
                    epoch = (rt.step - start_step) // epochs
                    mlist.epoch_end(epoch - 1)
                    if target is None or rt.step < target:
                        mlist.epoch_begin(epoch)
                if (save_steps and rt.step % save_steps == 0) or (
                    save_secs and time.monotonic() - last_save_time >= save_secs
                ):
                    self._save_now(loss)
                    last_save_time = time.monotonic()
                if stop:
                    logger.info("A monitor requested stop at global step %d.", rt.step)
                    break
        except BaseException:
            # An error inside a compiled chunk leaves the step variable ahead of its Python mirror.
            rt.step = int(rt.global_step.numpy())
            self._emergency_save(rt, loss)
            raise
        self._last_loss = None if loss is None else float(loss)
        if not partial:
            self._save_now(loss)
        mlist.end()

    def _save_now(self, loss: Any = None) -> str | None:
        """Checkpoint the in-memory state, unless the last loss shows the weights went bad (NaN/inf)."""
        rt = self._runtime
        if loss is not None and not np.isfinite(float(loss)):
            logger.warning("Not saving a checkpoint at step %d: the last loss is %s.", rt.step, float(loss))
            return None
        return self._save(rt)

    def _emergency_save(self, rt: Runtime, loss: Any) -> None:
        """After an interruption, keep the steps already trained, unless the weights went bad."""
        if self._last_saved_step == rt.step:
            return
        try:
            path = self._save_now(loss)
            if path:
                logger.info("Training interrupted at global step %d; saved %s.", rt.step, path)
        except Exception as exc:  # never mask the original error
            logger.warning("Could not save a checkpoint after the interruption: %s", exc)

    def _tensor_value(self, name: str) -> Any:
        """A value a monitor asked for: global_step, learning_rate, or a variable by name."""
        rt = self._runtime
        if name == "global_step":
            return rt.step
        if name == "learning_rate" and rt.optimizers:
            lr = rt.optimizers[0].learning_rate
            return float(lr.numpy() if hasattr(lr, "numpy") else lr)
        var = rt.store.variables.get(name)
        if var is None:
            raise ValueError(
                f"A monitor asked for {name!r}, which is not 'loss', 'global_step', 'learning_rate' or a variable "
                f"of the model ({sorted(rt.store.variables)})."
            )
        return var.numpy()

    def _trainable_variable_names(self) -> list[str]:
        return [n for n, v in self._ensure_runtime().store.variables.items() if v.trainable]

    def _input_fn_is_finite(self, input_fn: Callable[[], Any]) -> bool:
        return _call_input_fn(input_fn, repeat=False)[1]

    def _save_best(self, step: int, results: Mapping[str, Any]) -> str:
        """Save the in-memory weights as model_dir/best (one checkpoint, replaced when a better one comes)."""
        rt = self._runtime
        if self._best_checkpoints is None:
            self._best_checkpoints = ckpt.CheckpointStore(
                os.path.join(self._model_dir, BEST), 1, 10000, is_chief=self._config.is_chief
            )
        path = self._best_checkpoints.save(rt.global_step, rt.store.variables, rt.optimizer_vars, step)
        ckpt.write_json(os.path.join(self._model_dir, BEST, "best.json"), {"step": step, "results": dict(results)})
        return path

    def _write_eval_summaries(self, results: Mapping[str, Any], name: str | None) -> None:
        if not self._config.is_chief:
            return
        directory = os.path.join(self._model_dir, f"eval_{name}" if name else "eval")
        scalars = {k: v for k, v in results.items() if k != "global_step" and isinstance(v, numbers.Real)}
        write_scalars(directory, scalars, results["global_step"])
