"""`CannedEstimator`: the scikit-learn adapter every canned estimator is built on.

A canned estimator is a scikit-learn estimator (`get_params`/`set_params`/`clone`, `Pipeline`,
`GridSearchCV`, pickling) in front of an inner `Estimator` (`estimator_`) that runs one of the
model_fns of `estimators.canned.model_fns`. `__init__` only stores its arguments; `fit` validates
the data, creates the inner Estimator and trains it from scratch; `partial_fit` keeps training the
same one. What the model_fn needs to know about the data (classes, vocabularies) goes to it in the
inner Estimator's `params`.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import weakref
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted, validate_data

from estimators._validation import check_positive_int, invalid_argument
from estimators.canned.data import (
    as_frame,
    check_sample_weight,
    column_statistics,
    layout,
    needs_pandas_feeder,
    numeric_block,
    seed_of,
    str_columns,
)
from estimators.canned.export import export_canned
from estimators.estimator import Estimator
from estimators.metadata import column_dtypes
from estimators.run_config import RunConfig
from feeders import FrameEncoding

__all__ = ["COMMON_ARGS_DOC", "CannedEstimator"]

COMMON_ARGS_DOC = """
    Args:
        optimizer: optimizer name ("Adam", "Adagrad", "SGD", "Ftrl", "RMSProp", ...) or Keras optimizer class.
        learning_rate: step size. batch_size: rows per step, default=32.
        epochs: passes over the data per fit (ignored when `steps` is set). steps: training steps per fit
            and per partial_fit call (which otherwise trains one epoch). Arguments of one `fit` call
            (`steps=`, then `epochs=`) win over both.
        model_dir: checkpoint directory. default=None: a temporary one, removed when the model is
            refitted or garbage-collected. warm_start: continue training the model of the previous fit,
            or the one in model_dir, instead of starting from scratch (a new estimator learns its
            classes and standardisation from the data of its first fit, so give it data like the
            model's).
        config: a RunConfig. random_state: seed for initialisation and shuffling. verbose: 0 quiet, 1 progress.
        standardize: learn each numeric column's mean and standard deviation at fit (weighted by
            `sample_weight`) and standardise the column with them inside the model, so predict, the
            inner Estimator's export and a pickled model apply the same transform. Categorical
            columns of a DataFrame are embedded, not standardised. default=True; False feeds the
            numbers as they are.
        impute: None: NaN in X is an error naming its column. "mean": NaN in a numeric column is
            filled with the column's training mean, and a missing category goes to the
            out-of-vocabulary id; the values are learned at fit and saved with the model, so predict
            fills the same way. default=None.
"""

_FIT_OVERRIDES = ("steps", "epochs", "batch_size", "monitors")


class CannedEstimator(BaseEstimator):
    """Shared fit/partial_fit/predict machinery. Subclasses name their model_fn (`_model_fn`), their
    head (`_head`: "classifier" or "regressor") and how targets are encoded (`_encode_targets`,
    `_head_params`)."""

    _model_fn: Any = None
    _head: str = ""

    # ------------------------------------------------------------------ scikit-learn protocol
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self.impute is not None
        tags.input_tags.sparse = False
        # DataFrames with categorical and string columns are accepted (through the PandasFeeder), but
        # not arrays of strings; declaring them would make scikit-learn's checks feed only rounded data.
        tags.input_tags.categorical = False
        tags.input_tags.string = False
        tags.non_deterministic = False
        return tags

    # ------------------------------------------------------------------ the inner Estimator
    def _model_params(self, seed: int | None) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer,
            "learning_rate": self.learning_rate,
            "clip_gradients": self.clip_gradients,
        }

    def _feature_params(self, X: Any, sample_weight: np.ndarray | None) -> dict[str, Any]:
        """The standardisation the model_fn applies to the numeric features (see `model_fns`)."""
        if not isinstance(self.standardize, (bool, np.bool_)):
            raise invalid_argument("standardize", self.standardize, "True or False")
        values = None
        if self.standardize:
            values = numeric_block(X, self._numeric_columns) if isinstance(X, pd.DataFrame) else X
        if values is None or values.shape[1] == 0:
            return {"feature_mean": None, "feature_scale": None}
        mean, scale = column_statistics(values, sample_weight)
        return {"feature_mean": mean, "feature_scale": scale}

    def _run_config(self, seed: int | None) -> RunConfig:
        base = self.config if self.config is not None else RunConfig(log_step_count_steps=0, verbose=self.verbose)
        if not isinstance(base, RunConfig):
            raise invalid_argument("config", base, "a RunConfig or None")
        return base.replace(tf_random_seed=seed) if seed is not None else base

    def _new_estimator(self, params: dict[str, Any], config: RunConfig) -> Estimator:
        model_dir = self.model_dir
        if model_dir is None:
            model_dir = self._temporary_dir()
        elif (
            not self.warm_start
            and os.path.isdir(model_dir)
            and any(f.endswith(".index") for f in os.listdir(model_dir))
        ):
            raise ValueError(
                f"model_dir={model_dir!r} already holds a trained model and fit() trains from scratch. Pass "
                "warm_start=True to continue training it, or use a new model_dir."
            )
        return Estimator(type(self)._model_fn, model_dir=model_dir, config=config, params=params)

    # ------------------------------------------------------------------ temporary model_dirs
    def _temporary_dir(self) -> str:
        return tempfile.mkdtemp(prefix=f"skflow_{type(self).__name__.lower()}_")

    def _replace_estimator(self, estimator: Estimator) -> None:
        """Make `estimator` the `estimator_`. The temporary model_dir of the one it replaces is removed
        now; the new one's (`model_dir=None`) is removed when it is garbage-collected or replaced."""
        removal = self.__dict__.pop("_dir_removal", None)
        if removal is not None:
            self.estimator_._setup().close_writers()
            removal()
        self.estimator_ = estimator
        if self.model_dir is None:
            self._dir_removal = weakref.finalize(estimator, _remove_model_dir, estimator._setup())

    def _restart(self) -> None:
        """Start `estimator_` over in a new temporary model_dir, keeping its compiled functions."""
        state = self.estimator_._setup()
        old_dir = state.model_dir
        state.restart(self._temporary_dir())  # closes the TensorBoard writers of old_dir
        shutil.rmtree(old_dir, ignore_errors=True)

    def __getstate__(self) -> dict[str, Any]:
        # A copy works in a temporary model_dir of its own, which its inner Estimator removes.
        state = dict(super().__getstate__())
        state.pop("_dir_removal", None)
        return state

    # ------------------------------------------------------------------ data
    def _validate(self, X: Any, y: Any, reset: bool) -> tuple[Any, Any]:
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None.")
        if reset:
            if self.impute not in (None, "mean"):
                raise invalid_argument("impute", self.impute, 'None or "mean"')
            self._impute = self.impute
            self._learn_columns(X)
        if self._vocabulary_sizes:
            frame = self._validate_frame(X)
            y = np.asarray(y)
            if len(y) != len(frame):
                raise ValueError(
                    f"Found input variables with inconsistent numbers of samples: [{len(frame)}, {len(y)}]"
                )
            return frame, y
        is_regressor = self._head == "regressor"
        X, y = validate_data(
            self,
            X,
            y,
            reset=reset,
            dtype=[np.float32, np.float64],
            ensure_all_finite="allow-nan",
            y_numeric=is_regressor,
            multi_output=is_regressor,
        )
        self._check_nan(np.isnan(X).sum(axis=0))
        return X.astype(np.float32, copy=False), y

    def _learn_columns(self, X: Any) -> None:
        """A DataFrame that needs the PandasFeeder: its columns, numeric ones and vocabulary sizes
        (otherwise `validate_data` learns `n_features_in_` and `feature_names_in_`)."""
        self._column_dtypes = column_dtypes(X)  # the export's input dtypes
        if not needs_pandas_feeder(X):
            self._vocabulary_sizes, self._frame_columns, self._numeric_columns = {}, None, None
            return
        frame = as_frame(X)
        encoding = FrameEncoding.fit(frame)
        self.feature_names_in_ = np.asarray([str(c) for c in frame.columns], dtype=object)
        self.n_features_in_ = frame.shape[1]
        self._vocabulary_sizes = encoding.vocabulary_sizes
        self._frame_columns = list(frame.columns)
        self._numeric_columns = list(encoding.numeric)

    def _validate_frame(self, X: Any) -> pd.DataFrame:
        if not isinstance(X, (pd.DataFrame, pd.Series)):
            raise ValueError(
                f"{type(self).__name__} was fitted on a DataFrame with categorical columns; pass a DataFrame."
            )
        frame = as_frame(X)
        self._check_frame(frame)
        return frame

    def _check_frame(self, frame: pd.DataFrame) -> None:
        """A DataFrame for the PandasFeeder: it has the fitted columns (in any order; the feeder ignores
        others, with a warning, as it does for the custom Estimator), without NaN unless imputing."""
        frame, columns = str_columns(frame), list(self.feature_names_in_)
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise ValueError(
                f"X is missing column(s) {missing} that {type(self).__name__} was fitted on. "
                f"Expected columns {columns}."
            )
        self._check_nan(frame[columns].isna().sum().to_numpy())

    def _check_nan(self, counts: np.ndarray) -> None:
        """Without imputation, NaN (counted per fitted column) is an error naming the column and the fix."""
        bad = np.flatnonzero(counts)
        if self._impute is not None or not bad.size:
            return
        names = getattr(self, "feature_names_in_", None)
        column = names[bad[0]] if names is not None else int(bad[0])
        raise ValueError(
            f"Input X contains NaN in column {column!r} ({int(counts[bad[0]])} row(s)). Pass "
            f'{type(self).__name__}(impute="mean") to fill NaN with the training mean of the column (and send '
            "missing categories to the out-of-vocabulary id), or fill them first."
        )

    def _validate_predict(self, X: Any) -> Any:
        check_is_fitted(self, "estimator_")
        if self._vocabulary_sizes:
            return self._validate_frame(X)
        X = validate_data(self, X, reset=False, dtype=[np.float32, np.float64], ensure_all_finite="allow-nan")
        self._check_nan(np.isnan(X).sum(axis=0))
        return X.astype(np.float32, copy=False)

    def _validation_data(self, x: Any, y: Any) -> tuple[Any, Any]:
        """Held-out (x, y) as the inner Estimator sees them: the fitted feature checks and target
        encoding (class ids; regression targets as they are). A ValidationMonitor passed to `fit`
        evaluates through this."""
        return self._validate_predict(x), self._encode_targets(y, classes=None, reset=False)

    def _steps(self, n: int, batch_size: int, overrides: dict[str, Any], partial: bool) -> int:
        """Training steps of one fit (partial_fit call). The first that is set wins: the call's
        `steps`, the call's `epochs`, the constructor's `steps`, then the constructor's `epochs` for
        fit and one epoch for partial_fit."""
        if overrides.get("steps") is not None:
            return overrides["steps"]
        epochs = overrides.get("epochs")
        if epochs is None:
            if self.steps is not None:
                return self.steps
            epochs = 1 if partial else self.epochs
        return math.ceil(n / batch_size) * (epochs or 1)

    # ------------------------------------------------------------------ training
    def _fit(
        self,
        X: Any,
        y: Any,
        sample_weight: Any,
        reset: bool,
        classes: Any = None,
        partial: bool = False,
        **overrides: Any,
    ) -> Any:
        unknown = set(overrides) - set(_FIT_OVERRIDES)
        if unknown:
            raise TypeError(
                f"fit() got unexpected keyword argument(s) {sorted(unknown)}; accepted: {', '.join(_FIT_OVERRIDES)}."
            )
        check_positive_int("batch_size", self.batch_size)
        for name in ("steps", "epochs", "batch_size"):
            check_positive_int(name, getattr(self, name), allow_none=True)
            check_positive_int(name, overrides.get(name), allow_none=True)
        X, y = self._validate(X, y, reset=reset)
        if sample_weight is not None:
            sample_weight = check_sample_weight(sample_weight, len(X))
        y_encoded = self._encode_targets(y, classes=classes, reset=reset, sample_weight=sample_weight)
        batch_size = overrides.get("batch_size") or self.batch_size
        if reset or not hasattr(self, "estimator_"):
            # One seed per fit: a RandomState is drawn from once, and the model, the shuffling and
            # the refit cache all use that draw.
            seed = seed_of(self.random_state)
            config = self._run_config(seed)
            params = {
                **self._model_params(seed),
                **self._head_params(y_encoded, sample_weight),
                **self._feature_params(X, sample_weight),
                "head": self._head,
                "vocabulary_sizes": self._vocabulary_sizes,
                "numeric_columns": self._numeric_columns if self._vocabulary_sizes else None,
            }
            key = (
                repr(sorted(params.items())),
                layout(X),
                layout(y_encoded),
                sample_weight is None,
                repr(config),
            )
            if self.warm_start and hasattr(self, "estimator_"):
                pass  # keep training the model we have
            elif "_dir_removal" in self.__dict__ and self.model_dir is None and getattr(self, "_fit_key", None) == key:
                # Refit from scratch with the same architecture, in a temporary model_dir of ours:
                # reuse the compiled functions (no retrace).
                self._restart()
            else:
                self._replace_estimator(self._new_estimator(params, config))
            self._fit_key = key
        steps = self._steps(len(X), batch_size, overrides, partial)
        targets = y_encoded if sample_weight is None else {"y": y_encoded, "sample_weight": sample_weight}
        # Monitors get raw held-out (x, y), like this fit's: the fit's TrainingContext encodes them
        # as the model is trained (class ids) through `_validation_data`.
        self.estimator_._train(
            X,
            targets,
            None,
            steps,
            None,
            batch_size=batch_size,
            impute=self._impute,
            monitors=overrides.get("monitors"),
            partial=not reset,
            prepare=self._validation_data,
            input_token=object(),  # encoded per fit: the classes may differ from the last one's
            owner=self,  # monitors see (and trackers record) this estimator and its parameters
        )
        return self

    def export_saved_model(self, export_dir_base: str | os.PathLike, checkpoint_path: str | None = None) -> str:
        """Export a TF SavedModel under `export_dir_base/<timestamp>` whose `serving_default`
        signature takes the raw input and returns what `predict` (and `predict_proba`) return.

        Inputs: one 1-D input per column, by name and with the column's own dtype, for a model
        fitted on a DataFrame (strings as `tf.string`, booleans as `tf.bool`); `features` for one
        fitted on an array. Outputs: `classes`, `class_ids` and `probabilities` (classifiers) or
        `predictions` (regressors). Details: `estimators/canned/export.py` and `estimators/serving.py`.

        Args:
            export_dir_base: the parent directory of the export.
            checkpoint_path: export this checkpoint of `estimator_` (a path, a directory or "best")
                instead of the weights in memory. default=None.

        Returns:
            the export directory (`export_dir_base/<timestamp>`): pass it to `tf.saved_model.load`.

        Raises:
            NotFittedError: the estimator is not fitted.

        Example:
            >>> path = DNNClassifier(epochs=5).fit(frame, labels).export_saved_model("/tmp/export")
            >>> serve = tf.saved_model.load(path).signatures["serving_default"]
            >>> serve(**{c: tf.constant(frame[c].to_numpy()) for c in frame})["classes"]
        """
        return export_canned(self, export_dir_base, checkpoint_path)

    def _predict_outputs(self, X: Any, key: str) -> np.ndarray:
        X = self._validate_predict(X)
        return self.estimator_.predict(X, outputs=[key], batch_size=max(self.batch_size, 1024))[key]


def _remove_model_dir(state: Any) -> None:
    """Delete a model's (temporary) model_dir, wherever a restart has moved it.

    No TensorFlow call here: as a finalizer this may run inside garbage collection, while the same
    thread holds a TensorFlow lock (closing the summary writers there deadlocked a test run). The
    writers are garbage too by then; an explicit replacement closes them first."""
    shutil.rmtree(state.model_dir, ignore_errors=True)
