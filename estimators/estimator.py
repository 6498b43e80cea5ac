"""`Estimator`: the seed's model_fn Estimator on TensorFlow 2 (fit, partial_fit, evaluate, predict).

The public API, top to bottom. What it stands on: `model_state` (one model's directory, metadata
and runtime), `inputs` (data into batches, signatures), `training` (the loop and the monitors'
`TrainingContext`), `restore` (where weights come from), `checkpoints`, `export`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError

from estimators import checkpoints as ckpt
from estimators._validation import check_positive_int
from estimators.inputs import decode_labels, per_example, select_outputs
from estimators.metrics import metric_key, resolve_metrics
from estimators.model_state import ModelState, bind_model
from estimators.restore import resolve_checkpoint
from estimators.run_config import RunConfig
from estimators.summaries import write_scalars
from estimators.training import train, train_on_batch
from feeders import reraise_feeder_errors

__all__ = ["Estimator", "NotFittedError"]

logger = logging.getLogger("skflow")


class Estimator(BaseEstimator):
    """A TensorFlow model defined by a `model_fn`, trained, evaluated and served scikit-learn style.

    A scikit-learn estimator: `get_params`/`set_params` cover the constructor's arguments, stored
    unchanged (checked at first use), so `clone`, `GridSearchCV`, `Pipeline` and `cross_val_score`
    work with an importable model_fn; `score` is the negative evaluation loss.

    Args:
        model_fn: `model_fn(features, targets[, mode[, params[, config]]])` returning
            `(predictions, loss, train_op)` or an `EstimatorSpec`. Arguments are passed by name
            (`labels` is accepted for `targets`); `functools.partial` objects and callable objects
            work. Layers and variables may be created inline: every call gets the same variables.
        model_dir: directory for checkpoints and summaries. default=None: a new temporary directory
            (with a warning), removed when the Estimator is garbage-collected.
        config: a `RunConfig`. default=None: `RunConfig()`.
        params: passed to the model_fn's `params` argument. default=None.
        feature_engineering_fn: `fn(features, targets) -> (features, targets)` applied before
            model_fn in every mode. default=None.
        warm_start_from: a model_dir or checkpoint path whose matching model variables initialise a
            model that has no checkpoint of its own yet. default=None.

    Raises (at first use):
        ValueError: `params` given to a model_fn without a `params` argument (as in the original).
        TypeError: model_fn not callable, config not a RunConfig, feature_engineering_fn not callable.

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
        self._init_params = {
            "model_fn": model_fn,
            "model_dir": model_dir,
            "config": config,
            "params": params,
            "feature_engineering_fn": feature_engineering_fn,
            "warm_start_from": warm_start_from,
        }
        self._state: ModelState | None = None

    # ------------------------------------------------------------------ scikit-learn parameters
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's arguments, as given (`model_dir=None` stays None: `clone` makes a new one)."""
        return dict(self._init_params)

    def set_params(self, **params: Any) -> Estimator:
        """Change constructor arguments. The next use rebuilds the model with them; a changed
        `model_dir` or `config` also starts from that directory's checkpoints.

        Raises:
            ValueError: an argument the constructor does not have.
        """
        unknown = sorted(set(params) - set(self._init_params))
        if unknown:
            raise ValueError(
                f"Invalid parameter(s) {unknown} for estimator {type(self).__name__}. "
                f"Valid parameters are: {sorted(self._init_params)}."
            )
        relocate = any(k in params and params[k] is not self._init_params[k] for k in ("model_dir", "config"))
        self._init_params.update(params)
        if relocate:
            self._state = None
        elif self._state is not None:
            self._state.rebind(bind_model(self._init_params, self._state.config))
        return self

    def __sklearn_is_fitted__(self) -> bool:
        """Whether there is a model to use: trained in memory, pickled, or checkpointed in model_dir."""
        if self._state is None and self._init_params["model_dir"] is None:
            return False
        state = self._setup()
        return state.initialized or state.weights.global_step() is not None

    # ------------------------------------------------------------------ properties
    @property
    def model_dir(self) -> str:
        """The directory of checkpoints and summaries (a temporary one when `model_dir=None`)."""
        return self._setup().model_dir

    @property
    def config(self) -> RunConfig:
        """The RunConfig (`RunConfig()` when `config=None`)."""
        return self._setup().config

    @property
    def params(self) -> Any:
        """The model_fn's `params`."""
        return self._init_params["params"]

    @property
    def model_fn(self) -> Callable[..., Any]:
        """The model_fn."""
        return self._init_params["model_fn"]

    # ------------------------------------------------------------------ training
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
        epochs: int | None = None,
    ) -> Estimator:
        """Train the model.

        Args:
            x: features, array-like of shape (n_samples, n_features) (or N-D), a dict of arrays, a
                DataFrame, a sparse matrix, an iterator, a path to Parquet/CSV files, or a feeder.
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
            epochs: passes over x (stops earlier when `steps`/`max_steps` is reached first).

        Arrays repeat forever, so a fit on x/y needs `steps`, `max_steps` or `epochs`; an input that
        ends (an input_fn's finite dataset, an iterator) trains until it ends. Calling `fit` again
        with numpy arrays of the same content reuses the input pipeline with a new shuffle seed.

        Returns:
            self.

        Raises:
            ValueError: both steps and max_steps, x and input_fn together, no stopping point, bad data.
        """
        if steps is not None and max_steps is not None:
            raise ValueError("Can not provide both steps and max_steps.")
        check_positive_int("steps", steps, allow_none=True)
        check_positive_int("max_steps", max_steps, allow_none=True)
        check_positive_int("epochs", epochs, allow_none=True)
        self._train(
            x, y, input_fn, steps, max_steps, batch_size=batch_size, monitors=monitors, impute=impute, epochs=epochs
        )
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
        check_positive_int("steps", steps)
        state = self._setup()
        if input_fn is None and x is not None and not state.trains_distributed:
            batch = state.inputs.in_memory_batch(x, y, batch_size)
            if batch is not None:
                train_on_batch(self, state, *batch, steps, monitors)
                return self
        self._train(x, y, input_fn, steps, None, batch_size=batch_size, monitors=monitors, partial=True)
        return self

    # ------------------------------------------------------------------ evaluation and prediction
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
            metrics: a list of metric names (see `estimators.metrics`: "accuracy", "auc",
                "precision"/"recall"/"f1" for two classes and their "_macro"/"_micro"/"_weighted"
                averages for more, "mse", "mae", "rmse", "r2"), Keras metrics or functions, or a
                dict name -> one of those or a `MetricSpec`. A metric that does not fit the task
                (accuracy of a regressor) is an error naming those that do.
            name: evaluation name; summaries go to model_dir/eval_<name> (model_dir/eval without).
            checkpoint_path: evaluate this checkpoint (a path, a directory, or "best": the one
                `ValidationMonitor(keep_best=True)` kept) instead of the weights in memory.

        Returns:
            dict with `loss` (mean over examples), `global_step` and one entry per metric, plus the
            model_fn's `eval_metric_ops`.

        Raises:
            NotFittedError: no checkpoint in model_dir and nothing trained in memory.
        """
        check_positive_int("steps", steps, allow_none=True)
        if checkpoint_path is not None:
            pinned = self._pinned(checkpoint_path)
            return pinned.evaluate(
                x, y, input_fn=input_fn, batch_size=batch_size, steps=steps, metrics=metrics, name=name
            )
        specs = resolve_metrics(metrics)
        state = self._setup()
        rt = state.ready_runtime("evaluate")
        dataset, feeder = state.inputs.evaluation(x, y, input_fn, batch_size, steps)
        fn, user_metrics, other = rt.eval_fn(tuple((k, metric_key(v)) for k, v in specs.items()), specs)
        iterator = iter(dataset)
        limit = steps if steps is not None else 2**62
        with rt.strategy.scope():
            state.trace(fn, "evaluate", iterator, tf.TensorSpec([], tf.int64))
            for _, m in [*other.items(), *user_metrics.items()]:
                m.reset()
            done = 0
            while done < limit:
                n = min(limit - done, state.config.steps_per_execution)
                with reraise_feeder_errors(feeder):
                    got = int(fn(iterator, tf.constant(n, tf.int64)))
                done += got
                if got < n:
                    break
        if done == 0:
            raise ValueError("Evaluation data is empty: the input produced no batch.")
        results = {key: m.result() for key, m in [*other.items(), *user_metrics.items()]}
        results["global_step"] = rt.step
        if state.config.is_chief:
            directory = os.path.join(state.model_dir, f"eval_{name}" if name else "eval")
            scalars = {k: v for k, v in results.items() if k != "global_step" and isinstance(v, float)}
            write_scalars(state.summary_writer(directory), scalars, rt.step)
        return results

    def score(self, x: Any, y: Any = None, batch_size: int | None = None) -> float:
        """The negative evaluation loss on (x, y): higher is better, as scikit-learn's model
        selection expects (`GridSearchCV`, `cross_val_score` without `scoring=` use it).

        Returns:
            `-evaluate(x, y)["loss"]`, a float.
        """
        return -float(self.evaluate(x, y, batch_size=batch_size)["loss"])

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
            batch_size: rows per call of the model. default: the fit batch size, at least 1024.
            outputs: keys of the predictions dict to return; default all.
            as_iterable: return an iterator of per-example results instead of arrays.
            checkpoint_path: predict with this checkpoint (a path, a directory, or "best").

        Returns:
            an array of shape (n_samples, ...), a dict of such arrays, or an iterator. Class ids are
            decoded back to the labels the feeder encoded (string labels of a DataFrame fit).

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
        check_positive_int("batch_size", batch_size, allow_none=True)
        if checkpoint_path is not None:
            pinned = self._pinned(checkpoint_path)
            return pinned.predict(x, input_fn=input_fn, batch_size=batch_size, outputs=outputs, as_iterable=as_iterable)
        state = self._setup()
        rt = state.ready_runtime("predict")
        batches = state.inputs.prediction(x, input_fn, batch_size)
        fn = state.concrete(rt.infer_fn(state.meta.features, state.meta.targets), "predict")
        labels = state.inputs.labels()
        results = (
            select_outputs(decode_labels(tf.nest.map_structure(lambda t: t.numpy(), fn(b)), labels), outputs)
            for b in batches
        )
        if as_iterable:
            return per_example(results)
        chunks = list(results)
        if not chunks:
            raise ValueError("Prediction data is empty: the input produced no batch.")
        if isinstance(chunks[0], dict):
            return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
        return np.concatenate(chunks)

    # ------------------------------------------------------------------ checkpoints and export
    def get_variable_names(self) -> list[str]:
        """Names of the variables in the latest checkpoint (model, optimizer slots, global_step)."""
        return sorted(ckpt.list_checkpoint_variables(self._setup().latest_or_raise("get_variable_names")))

    def get_variable_value(self, name: str) -> np.ndarray:
        """Value of variable `name` in the latest checkpoint (see `get_variable_names`)."""
        path = self._setup().latest_or_raise("get_variable_value")
        names = ckpt.list_checkpoint_variables(path)
        if name not in names:
            raise ValueError(f"No variable {name!r} in checkpoint {path}; it has {sorted(names)}.")
        return tf.train.load_checkpoint(path).get_tensor(ckpt.key_for(name))

    def latest_checkpoint(self) -> str | None:
        """Path prefix of the newest checkpoint in model_dir, or None."""
        return self._setup().checkpoints.latest()

    def save_checkpoint(self) -> str:
        """Write the in-memory state to a checkpoint now (after `partial_fit` calls, say)."""
        state = self._setup()
        state.ready_runtime("save_checkpoint")
        return state.save(force=True)

    def export_saved_model(self, export_dir_base: str | os.PathLike, checkpoint_path: str | None = None) -> str:
        """Export a TF SavedModel under `export_dir_base/<timestamp>`; its `serving_default`
        signature takes the raw input and returns the same outputs as `predict()`, with no skflow
        code needed to load it.

        Inputs: a model fitted on a DataFrame takes one 1-D input per column, by name (sanitised
        when not a valid key; the mapping is in the SavedModel's `input_keys`/`input_columns`),
        with the column's own dtype (strings as `tf.string`, booleans as `tf.bool`): vocabulary
        lookups, the numeric block and imputation happen in the graph. One fitted on Parquet/CSV
        files takes one float32 input per feature column; one fitted on arrays takes `features`
        (or its dict keys). Outputs: the model_fn's predictions (a single tensor as `predictions`),
        class ids decoded to the labels the feeder encoded. See `estimators/serving.py`.

        Args:
            export_dir_base: the parent directory of the export.
            checkpoint_path: export this checkpoint (a path, a directory or "best") instead of the
                weights in memory.

        Returns:
            the export directory (`export_dir_base/<timestamp>`): pass it to `tf.saved_model.load`.
        """
        from estimators.export import export_model

        return export_model(self._setup(), os.fspath(export_dir_base), checkpoint_path)

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict[str, Any]:
        """Pickle without TF objects: the constructor's arguments (the model_fn by reference, so it
        must be importable; a `tf.distribute` strategy is dropped), the signatures and the weights."""
        config = self._init_params["config"]
        if isinstance(config, RunConfig):
            config = config.replace(train_distribute=None, eval_distribute=None)
        init_params = {**self._init_params, "config": config}
        if self._state is None:  # never used: its arguments are all there is (what GridSearchCV sends to workers)
            return {"init_params": init_params}
        return {"init_params": init_params, "model": self._state.to_pickle()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._init_params = dict(state["init_params"])
        self._state = None
        if "model" in state:
            # A copy of a used Estimator never writes into the original's model_dir: it works in a
            # temporary one of its own, with the weights it carries.
            self._init_params["model_dir"] = None
            self._setup(warn=False).from_pickle(state["model"])

    # ================================================================== internals
    def _setup(self, warn: bool = True) -> ModelState:
        """First use: check the constructor's arguments, resolve model_dir and config."""
        if self._state is None:
            self._state = ModelState.create(self, self._init_params, warn)
        return self._state

    def _pinned(self, checkpoint_path: str | os.PathLike) -> Estimator:
        """A copy of this Estimator that restores from one checkpoint and leaves this one untouched."""
        state = self._setup()
        other = object.__new__(type(self))  # copy.copy would go through __getstate__ (a pickle's copy)
        other._init_params = self._init_params
        other._state = state.pinned(resolve_checkpoint(state.model_dir, checkpoint_path))
        return other

    def _train(self, x: Any, y: Any, input_fn: Any, steps: int | None, max_steps: int | None, **kwargs: Any) -> None:
        """Train on x/y or input_fn (keyword arguments: see `training.train`)."""
        train(self, self._setup(), x, y, input_fn, steps, max_steps, **kwargs)
