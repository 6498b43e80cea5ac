"""Canned estimators with scikit-learn's contract: Linear, DNN and wide-and-deep, classifier and regressor.

They are scikit-learn estimators (`get_params`/`set_params`/`clone`, `Pipeline`, `GridSearchCV`,
pickling) built on the same `Estimator` machinery as a custom model_fn: `__init__` only stores its
arguments; `fit` validates the data, creates an `Estimator` (`estimator_`) and trains it from scratch;
`partial_fit` keeps training the same one. DataFrames with categorical or string columns go through
`PandasFeeder` (vocabularies saved with the model); other input is validated by scikit-learn.
"""

from __future__ import annotations

import math
import numbers
import os
import shutil
import tempfile
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from estimators._heads import dnn_linear_combined_model_fn, dnn_model_fn, linear_model_fn
from estimators.estimator import Estimator
from estimators.run_config import RunConfig
from feeders.pandas_feeder import FrameEncoding

__all__ = [
    "DNNClassifier",
    "DNNLinearCombinedClassifier",
    "DNNLinearCombinedRegressor",
    "DNNRegressor",
    "LinearClassifier",
    "LinearRegressor",
]


def _needs_pandas_feeder(X: Any) -> bool:
    if isinstance(X, pd.Series):
        X = X.to_frame()
    if not isinstance(X, pd.DataFrame):
        return False
    return any(not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype) for dtype in X.dtypes)


def _layout(a: Any) -> Any:
    if isinstance(a, pd.DataFrame):
        return tuple(a.columns), tuple(str(t) for t in a.dtypes)
    return tuple(np.shape(a)[1:]), str(getattr(a, "dtype", None))


def _seed(random_state: Any) -> int | None:
    """The integer seed of one fit: `random_state` itself, or one draw from a RandomState (made once per fit)."""
    if random_state is None:
        return None
    if isinstance(random_state, numbers.Integral):
        return int(random_state)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, 2**31 - 1))
    raise ValueError(f"Invalid value for argument `random_state`. Received: random_state={random_state!r}.")


def _check_positive_int(name: str, value: Any, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    if value is None or isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(
            f"Invalid value for argument `{name}`. Received: {name}={value!r}. Expected a positive integer"
            + (" or None." if allow_none else ".")
        )


def _as_list(columns: Any) -> list[Any]:
    if isinstance(columns, (str, numbers.Integral)):
        return [columns]
    return list(columns)


class _CannedEstimator(BaseEstimator):
    """Shared fit/partial_fit/predict machinery; subclasses name their model_fn and head."""

    _model_fn: Any = None
    _head: str = ""

    # ------------------------------------------------------------------ sklearn protocol
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        # DataFrames with categorical and string columns are accepted (through the PandasFeeder), but
        # not arrays of strings; declaring them would make scikit-learn's checks feed only rounded data.
        tags.input_tags.categorical = False
        tags.input_tags.string = False
        tags.non_deterministic = False
        return tags

    def _model_params(self, seed: int | None) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer,
            "learning_rate": self.learning_rate,
            "clip_gradients": getattr(self, "clip_gradients", None),
        }

    def _run_config(self, seed: int | None) -> RunConfig:
        base = self.config if self.config is not None else RunConfig(log_step_count_steps=0, verbose=self.verbose)
        if not isinstance(base, RunConfig):
            raise ValueError(
                f"Invalid value for argument `config`. Received a {type(base).__name__}; expected a RunConfig."
            )
        return base.replace(tf_random_seed=seed) if seed is not None else base

    def _new_estimator(self, params: dict[str, Any], config: RunConfig) -> Estimator:
        model_dir = self.model_dir
        if model_dir is None:
            model_dir = tempfile.mkdtemp(prefix=f"skflow_{type(self).__name__.lower()}_")
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

    # ------------------------------------------------------------------ data
    def _validate(self, X: Any, y: Any, reset: bool) -> tuple[Any, Any]:
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None.")
        if _needs_pandas_feeder(X):
            frame = X.to_frame() if isinstance(X, pd.Series) else X
            if reset:
                self.feature_names_in_ = np.asarray([str(c) for c in frame.columns], dtype=object)
                self.n_features_in_ = frame.shape[1]
                encoding = FrameEncoding.fit(frame)
                self._vocabulary_sizes = encoding.vocabulary_sizes
                self._frame_columns = list(frame.columns)
                self._numeric_columns = list(encoding.numeric)
            else:
                check_is_fitted(self)
                self._check_columns(frame)
            y = np.asarray(y)
            if len(y) != len(frame):
                raise ValueError(
                    f"Found input variables with inconsistent numbers of samples: [{len(frame)}, {len(y)}]"
                )
            return frame, y
        if reset:
            self._vocabulary_sizes = {}
            self._frame_columns = self._numeric_columns = None
        elif getattr(self, "_vocabulary_sizes", None):
            raise ValueError(
                f"{type(self).__name__} was fitted on a DataFrame with categorical columns; pass a DataFrame."
            )
        is_regressor = self._head == "regressor"
        X, y = validate_data(
            self, X, y, reset=reset, dtype=[np.float32, np.float64], y_numeric=is_regressor, multi_output=is_regressor
        )
        return X.astype(np.float32, copy=False), y

    def _check_columns(self, frame: pd.DataFrame) -> None:
        names = getattr(self, "feature_names_in_", None)
        if names is not None and frame.shape[1] != len(names):
            raise ValueError(
                f"X has {frame.shape[1]} features, but {type(self).__name__} is expecting {len(names)} features as input."
            )

    def _validate_predict(self, X: Any) -> Any:
        check_is_fitted(self, "estimator_")
        if getattr(self, "_vocabulary_sizes", None):
            if not isinstance(X, (pd.DataFrame, pd.Series)):
                raise ValueError(
                    f"{type(self).__name__} was fitted on a DataFrame with categorical columns; pass a DataFrame."
                )
            frame = X.to_frame() if isinstance(X, pd.Series) else X
            self._check_columns(frame)
            return frame
        X = validate_data(self, X, reset=False, dtype=[np.float32, np.float64])
        return X.astype(np.float32, copy=False)

    def _validation_data(self, x: Any, y: Any) -> tuple[Any, Any]:
        """Held-out (x, y) as the inner Estimator sees them: the fitted feature checks and target
        encoding (class ids; standardised regression targets). A ValidationMonitor passed to `fit`
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
        unknown = set(overrides) - {"steps", "epochs", "batch_size", "monitors"}
        if unknown:
            raise TypeError(
                f"fit() got unexpected keyword argument(s) {sorted(unknown)}; accepted: steps, epochs, batch_size, monitors."
            )
        _check_positive_int("batch_size", self.batch_size, allow_none=False)
        for name in ("steps", "epochs", "batch_size"):
            _check_positive_int(name, getattr(self, name))
            _check_positive_int(name, overrides.get(name))
        X, y = self._validate(X, y, reset=reset)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(
                sample_weight,
                X if not isinstance(X, pd.DataFrame) else np.empty((len(X), 0)),
                dtype=np.float32,
                ensure_non_negative=True,
            )
        y_encoded = self._encode_targets(y, classes=classes, reset=reset, sample_weight=sample_weight)
        batch_size = overrides.get("batch_size") or self.batch_size
        if reset or not hasattr(self, "estimator_"):
            # One seed per fit: a RandomState is drawn from once, and the model, the shuffling and
            # the refit cache all use that draw.
            seed = _seed(self.random_state)
            config = self._run_config(seed)
            params = {
                **self._model_params(seed),
                **self._head_params(y_encoded),
                "head": self._head,
                "vocabulary_sizes": self._vocabulary_sizes,
                "numeric_columns": self._numeric_columns if self._vocabulary_sizes else None,
            }
            key = (
                repr(sorted(params.items())),
                _layout(X),
                _layout(y_encoded),
                sample_weight is None,
                repr(config),
            )
            previous = getattr(self, "estimator_", None)
            if self.warm_start and previous is not None:
                pass  # keep training the model we have
            elif previous is not None and self.model_dir is None and getattr(self, "_fit_key", None) == key:
                # Refit from scratch with the same architecture: reuse the compiled functions (no retrace).
                old_dir = previous.model_dir
                previous._setup().restart(tempfile.mkdtemp(prefix=f"skflow_{type(self).__name__.lower()}_"))
                shutil.rmtree(old_dir, ignore_errors=True)
            else:
                self.estimator_ = self._new_estimator(params, config)
            self._fit_key = key
        steps = self._steps(len(X), batch_size, overrides, partial)
        targets = y_encoded if sample_weight is None else {"y": y_encoded, "sample_weight": sample_weight}
        # Monitors get raw held-out (x, y), like this fit's: the fit's TrainingContext encodes them
        # as the model is trained (class ids, standardised targets) through `_validation_data`.
        self.estimator_._train(
            X,
            targets,
            None,
            steps,
            None,
            batch_size=batch_size,
            monitors=overrides.get("monitors"),
            partial=not reset,
            prepare=self._validation_data,
            input_token=object(),  # encoded per fit: the classes may differ from the last one's
        )
        return self

    def _predict_outputs(self, X: Any, key: str) -> np.ndarray:
        X = self._validate_predict(X)
        return self.estimator_.predict(X, outputs=[key], batch_size=max(self.batch_size, 1024))[key]


class _ClassifierBase(ClassifierMixin, _CannedEstimator):
    _head = "classifier"

    def _encode_targets(self, y: Any, classes: Any, reset: bool, sample_weight: Any = None) -> np.ndarray:
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y.ravel()
        check_classification_targets(y)
        if reset or not hasattr(self, "classes_"):
            self.classes_ = self._classes(np.unique(y), classes)
        unknown = np.setdiff1d(np.unique(y), self.classes_)
        if unknown.size:
            raise ValueError(f"y contains previously unseen labels: {unknown.tolist()}.")
        return np.searchsorted(self.classes_, y).astype(np.int64)

    def _classes(self, found: np.ndarray, classes: Any) -> np.ndarray:
        """`classes_`: `classes` (partial_fit), else the labels found in y, else with `n_classes` set
        and integer labels, the class ids `0 .. n_classes - 1` (the seed's convention, so a class
        missing from this y still gets its column in predict_proba)."""
        result = np.unique(np.asarray(classes)) if classes is not None else found
        missing = np.setdiff1d(found, result)
        if missing.size:
            raise ValueError(f"y contains classes {missing.tolist()} that are not in `classes` {result.tolist()}.")
        n_classes = self.n_classes
        if n_classes is None or n_classes == len(result):
            return result
        _check_positive_int("n_classes", n_classes)
        if n_classes < len(result):
            raise ValueError(
                f"n_classes={n_classes}, but y has {len(result)} classes {result.tolist()}. Pass "
                f"n_classes={len(result)} or n_classes=None (inferred from y)."
            )
        ids = np.arange(n_classes)
        is_int = np.issubdtype(result.dtype, np.integer) and not np.issubdtype(result.dtype, np.bool_)
        if classes is not None or not is_int or np.setdiff1d(result, ids).size:
            raise ValueError(
                f"n_classes={n_classes}, but y has {len(result)} classes {result.tolist()}. A larger n_classes "
                f"needs integer class ids in [0, {n_classes}); otherwise leave n_classes=None"
                + (" (the classes are given by `classes`)." if classes is not None else ".")
            )
        return ids

    def _head_params(self, y: np.ndarray) -> dict[str, Any]:
        return {"n_classes": max(len(self.classes_), 1)}

    def fit(self, X: Any, y: Any, sample_weight: Any = None, **overrides: Any) -> Any:
        """Train from scratch.

        Args:
            X: array-like of shape (n_samples, n_features), or a DataFrame (categorical and string
                columns are encoded with vocabularies learned here).
            y: class labels of shape (n_samples,): integers, strings, booleans.
            sample_weight: array-like of shape (n_samples,), default=None.
            **overrides: `steps`, `epochs`, `batch_size`, `monitors` for this fit only. A
                `ValidationMonitor` among `monitors` takes raw (x, y) like this fit: they are
                encoded as the model sees them (its loss is on class ids).

        Returns:
            self.
        """
        return self._fit(X, y, sample_weight, reset=True, **overrides)

    def partial_fit(self, X: Any, y: Any, classes: Any = None, sample_weight: Any = None, **overrides: Any) -> Any:
        """Keep training the model on (X, y): one epoch, or the constructor's `steps` when set (a
        `steps=`/`epochs=` override wins over both). `classes` is required on the first call."""
        first = not hasattr(self, "estimator_")
        if first and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        if first:
            return self._fit(X, y, sample_weight, reset=True, classes=classes, partial=True, **overrides)
        return self._fit(X, y, sample_weight, reset=False, partial=True, **overrides)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, array of shape (n_samples, n_classes), columns in `classes_` order."""
        return self._predict_outputs(X, "probabilities")

    def predict_log_proba(self, X: Any) -> np.ndarray:
        return np.log(np.clip(self.predict_proba(X), 1e-30, None))

    def predict(self, X: Any) -> np.ndarray:
        """Predicted class labels, array of shape (n_samples,)."""
        ids = np.argmax(self.predict_proba(X), axis=1)
        return self.classes_[ids]


class _RegressorBase(RegressorMixin, _CannedEstimator):
    _head = "regressor"

    def _encode_targets(self, y: Any, classes: Any, reset: bool, sample_weight: Any = None) -> np.ndarray:
        # The network learns standardised targets (like it learns from standardised features), so a
        # target around 150 does not take thousands of steps of bias updates; predict scales back.
        # With sample_weight, the weighted mean and standard deviation: a weight of 2 standardises
        # like a repeated row.
        y = np.asarray(y, dtype=np.float64)
        if reset or not hasattr(self, "_y_mean"):
            weights = None if sample_weight is None or not np.sum(sample_weight) > 0 else sample_weight
            self._y_mean = np.average(y, axis=0, weights=weights)
            scale = np.sqrt(np.average((y - self._y_mean) ** 2, axis=0, weights=weights))
            self._y_scale = np.where(scale > 0, scale, 1.0)
        return ((y - self._y_mean) / self._y_scale).astype(np.float32)

    def _head_params(self, y: np.ndarray) -> dict[str, Any]:
        return {"n_outputs": 1 if y.ndim == 1 else y.shape[1]}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def fit(self, X: Any, y: Any, sample_weight: Any = None, **overrides: Any) -> Any:
        """Train from scratch on X (array-like or DataFrame) and targets y of shape (n_samples,) or
        (n_samples, n_outputs). `**overrides`: `steps`, `epochs`, `batch_size`, `monitors`.

        The network learns standardised targets, `(y - mean) / std` with the (weighted) statistics
        of this y. A `ValidationMonitor` among `monitors` takes raw (x, y) like this fit; they are
        standardised the same way, so its `loss` (and "mse", "mae", ...) are on that scale: its
        loss is the validation MSE divided by the variance of the training y (per output, averaged).
        """
        return self._fit(X, y, sample_weight, reset=True, **overrides)

    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None, **overrides: Any) -> Any:
        """Keep training the model on (X, y): one epoch, or the constructor's `steps` when set (a
        `steps=`/`epochs=` override wins over both). The first call standardises targets with its y."""
        return self._fit(X, y, sample_weight, reset=not hasattr(self, "estimator_"), partial=True, **overrides)

    def predict(self, X: Any) -> np.ndarray:
        """Predicted values, array of shape (n_samples,) or (n_samples, n_outputs)."""
        return self._predict_outputs(X, "predictions").astype(np.float64) * self._y_scale + self._y_mean


_COMMON_DOC = """
    Args:
        optimizer: optimizer name ("Adam", "Adagrad", "SGD", "Ftrl", "RMSProp", ...) or Keras optimizer class.
        learning_rate: step size. batch_size: rows per step, default=32.
        epochs: passes over the data per fit (ignored when `steps` is set). steps: training steps per fit
            and per partial_fit call (which otherwise trains one epoch). Arguments of one `fit` call
            (`steps=`, then `epochs=`) win over both.
        model_dir: checkpoint directory; default a new temporary one per fit. warm_start: continue training
            the model in model_dir (or of the previous fit) instead of starting from scratch.
        config: a RunConfig. random_state: seed for initialisation and shuffling. verbose: 0 quiet, 1 progress.
"""


class LinearClassifier(_ClassifierBase):
    __doc__ = (
        """Linear (softmax) classifier, the seed's LinearClassifier with scikit-learn's contract.

    n_classes: number of classes; default inferred from y. Larger than the number of labels in y, the
        labels must be class ids in [0, n_classes) and `classes_` is `0 .. n_classes - 1`.
    """
        + _COMMON_DOC
    )

    _model_fn = staticmethod(linear_model_fn)

    def __init__(self, n_classes=None, optimizer="Adam", learning_rate=0.05, batch_size=32, epochs=20, steps=None,
                 clip_gradients=None, model_dir=None, warm_start=False, config=None, random_state=None, verbose=0):  # fmt: skip
        self.n_classes = n_classes
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.epochs = epochs
        self.steps = steps
        self.clip_gradients = clip_gradients
        self.model_dir = model_dir
        self.warm_start = warm_start
        self.config = config
        self.random_state = random_state
        self.verbose = verbose


class LinearRegressor(_RegressorBase):
    __doc__ = """Linear least-squares regressor with scikit-learn's contract.""" + _COMMON_DOC

    _model_fn = staticmethod(linear_model_fn)

    def __init__(self, optimizer="Adam", learning_rate=0.05, batch_size=32, epochs=20, steps=None, clip_gradients=None,
                 model_dir=None, warm_start=False, config=None, random_state=None, verbose=0):  # fmt: skip
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.epochs = epochs
        self.steps = steps
        self.clip_gradients = clip_gradients
        self.model_dir = model_dir
        self.warm_start = warm_start
        self.config = config
        self.random_state = random_state
        self.verbose = verbose


class _DNNParams:
    def _model_params(self, seed: int | None) -> dict[str, Any]:
        hidden = tuple(int(u) for u in (self.hidden_units or ()))
        if any(u < 1 for u in hidden):
            raise ValueError(
                f"Invalid value for argument `hidden_units`. Received: hidden_units={self.hidden_units!r}. Expected positive integers."
            )
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise ValueError(
                f"Invalid value for argument `dropout`. Received: dropout={self.dropout!r}. Expected a number in [0, 1)."
            )
        return {
            **super()._model_params(seed),
            "hidden_units": hidden,
            "activation": self.activation,
            "dropout": self.dropout,
            "seed": seed,
            "linear_features": self._columns_of("linear_features"),
            "dnn_features": self._columns_of("dnn_features"),
        }

    def _columns_of(self, argument: str) -> list[Any] | None:
        """`linear_features`/`dnn_features` as the model_fn takes them: column names when the model
        sees a PandasFeeder dict, else positions in the feature matrix (names looked up in
        `feature_names_in_`, or among a DataFrame's numeric columns)."""
        columns = getattr(self, argument, None)
        if columns is None:
            return None
        requested = _as_list(columns)
        names = list(self._frame_columns or [])
        if not names and getattr(self, "feature_names_in_", None) is not None:
            names = list(self.feature_names_in_)
        by_str = {str(c): c for c in names}
        resolved, bad = [], []
        for c in requested:
            if isinstance(c, numbers.Integral) and not isinstance(c, bool):
                if 0 <= c < self.n_features_in_:
                    resolved.append(names[c] if names else int(c))
                    continue
            elif c in names or str(c) in by_str:
                resolved.append(c if c in names else by_str[str(c)])
                continue
            bad.append(c)
        if bad:
            raise ValueError(
                f"Invalid value for argument `{argument}`. Received: {argument}={columns!r}; {bad} "
                f"{'are' if len(bad) > 1 else 'is'} not a column of X (column positions 0..{self.n_features_in_ - 1}"
                + (f" or names {names})." if names else "; X has no column names).")
            )
        if not resolved:
            raise ValueError(
                f"Invalid value for argument `{argument}`. Received: {argument}={columns!r}; it selects no column."
            )
        if self._vocabulary_sizes:  # the model sees a dict: numeric block + one vector per categorical column
            return list(dict.fromkeys(resolved))
        order = self._numeric_columns if self._numeric_columns is not None else names
        if names:
            resolved = [order.index(c) for c in resolved]
        return sorted(set(resolved))


class DNNClassifier(_DNNParams, _ClassifierBase):
    __doc__ = (
        """Feed-forward network classifier, the seed's DNNClassifier with scikit-learn's contract.

    hidden_units: units per hidden layer, default=(64, 64). activation: Keras activation, default="relu".
    dropout: dropout rate in training, default=None. n_classes: default inferred from y (see
    LinearClassifier).
    """
        + _COMMON_DOC
    )

    _model_fn = staticmethod(dnn_model_fn)

    def __init__(self, hidden_units=(64, 64), n_classes=None, activation="relu", dropout=None, optimizer="Adam",
                 learning_rate=0.001, batch_size=32, epochs=20, steps=None, clip_gradients=None, model_dir=None,
                 warm_start=False, config=None, random_state=None, verbose=0):  # fmt: skip
        self.hidden_units = hidden_units
        self.n_classes = n_classes
        self.activation = activation
        self.dropout = dropout
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.epochs = epochs
        self.steps = steps
        self.clip_gradients = clip_gradients
        self.model_dir = model_dir
        self.warm_start = warm_start
        self.config = config
        self.random_state = random_state
        self.verbose = verbose


class DNNRegressor(_DNNParams, _RegressorBase):
    __doc__ = """Feed-forward network regressor with scikit-learn's contract (see DNNClassifier).""" + _COMMON_DOC

    _model_fn = staticmethod(dnn_model_fn)

    def __init__(self, hidden_units=(64, 64), activation="relu", dropout=None, optimizer="Adam", learning_rate=0.001,
                 batch_size=32, epochs=20, steps=None, clip_gradients=None, model_dir=None, warm_start=False,
                 config=None, random_state=None, verbose=0):  # fmt: skip
        self.hidden_units = hidden_units
        self.activation = activation
        self.dropout = dropout
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.epochs = epochs
        self.steps = steps
        self.clip_gradients = clip_gradients
        self.model_dir = model_dir
        self.warm_start = warm_start
        self.config = config
        self.random_state = random_state
        self.verbose = verbose


class DNNLinearCombinedClassifier(_DNNParams, _ClassifierBase):
    __doc__ = (
        """Wide-and-deep classifier: a linear model plus a DNN, trained jointly.

    linear_features / dnn_features: the columns each part sees, default all: positions in X, or names
    of a DataFrame's columns (numeric or categorical). Other arguments as DNNClassifier.
    """
        + _COMMON_DOC
    )

    _model_fn = staticmethod(dnn_linear_combined_model_fn)

    def __init__(self, hidden_units=(64, 64), linear_features=None, dnn_features=None, n_classes=None,
                 activation="relu", dropout=None, optimizer="Adam", learning_rate=0.001, batch_size=32, epochs=20,
                 steps=None, clip_gradients=None, model_dir=None, warm_start=False, config=None, random_state=None,
                 verbose=0):  # fmt: skip
        self.hidden_units = hidden_units
        self.linear_features = linear_features
        self.dnn_features = dnn_features
        self.n_classes = n_classes
        self.activation = activation
        self.dropout = dropout
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.epochs = epochs
        self.steps = steps
        self.clip_gradients = clip_gradients
        self.model_dir = model_dir
        self.warm_start = warm_start
        self.config = config
        self.random_state = random_state
        self.verbose = verbose


class DNNLinearCombinedRegressor(_DNNParams, _RegressorBase):
    __doc__ = """Wide-and-deep regressor (see DNNLinearCombinedClassifier).""" + _COMMON_DOC

    _model_fn = staticmethod(dnn_linear_combined_model_fn)

    def __init__(self, hidden_units=(64, 64), linear_features=None, dnn_features=None, activation="relu",
                 dropout=None, optimizer="Adam", learning_rate=0.001, batch_size=32, epochs=20, steps=None,
                 clip_gradients=None, model_dir=None, warm_start=False, config=None, random_state=None, verbose=0):  # fmt: skip
        self.hidden_units = hidden_units
        self.linear_features = linear_features
        self.dnn_features = dnn_features
        self.activation = activation
        self.dropout = dropout
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.epochs = epochs
        self.steps = steps
        self.clip_gradients = clip_gradients
        self.model_dir = model_dir
        self.warm_start = warm_start
        self.config = config
        self.random_state = random_state
        self.verbose = verbose
