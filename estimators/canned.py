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
    if random_state is None:
        return None
    if isinstance(random_state, numbers.Integral):
        return int(random_state)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, 2**31 - 1))
    raise ValueError(f"Invalid value for argument `random_state`. Received: random_state={random_state!r}.")


class _CannedEstimator(BaseEstimator):
    """Shared fit/partial_fit/predict machinery; subclasses name their model_fn and head."""

    _model_fn: Any = None
    _head: str = ""

    # ------------------------------------------------------------------ sklearn protocol
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        tags.input_tags.categorical = True
        tags.input_tags.string = True
        tags.non_deterministic = False
        return tags

    def _model_params(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer,
            "learning_rate": self.learning_rate,
            "clip_gradients": getattr(self, "clip_gradients", None),
        }

    def _run_config(self) -> RunConfig:
        seed = _seed(self.random_state)
        base = self.config if self.config is not None else RunConfig(log_step_count_steps=0, verbose=self.verbose)
        if not isinstance(base, RunConfig):
            raise ValueError(
                f"Invalid value for argument `config`. Received a {type(base).__name__}; expected a RunConfig."
            )
        return base.replace(tf_random_seed=seed) if seed is not None else base

    def _new_estimator(self, params: dict[str, Any]) -> Estimator:
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
        return Estimator(type(self)._model_fn, model_dir=model_dir, config=self._run_config(), params=params)

    # ------------------------------------------------------------------ data
    def _validate(self, X: Any, y: Any, reset: bool) -> tuple[Any, Any]:
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None.")
        if _needs_pandas_feeder(X):
            frame = X.to_frame() if isinstance(X, pd.Series) else X
            if reset:
                self.feature_names_in_ = np.asarray([str(c) for c in frame.columns], dtype=object)
                self.n_features_in_ = frame.shape[1]
                self._vocabulary_sizes = FrameEncoding.fit(frame).vocabulary_sizes
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

    def _targets(self, y: np.ndarray, sample_weight: Any, X: Any) -> Any:
        if sample_weight is None:
            return y
        weights = _check_sample_weight(
            sample_weight, X if not isinstance(X, pd.DataFrame) else np.empty((len(X), 0)), dtype=np.float32
        )
        return {"y": y, "sample_weight": weights}

    def _steps(self, n: int, batch_size: int, steps: int | None, epochs: int | None) -> int:
        if steps is not None:
            return steps
        epochs = self.epochs if epochs is None else epochs
        if self.steps is not None and epochs is None:
            return self.steps
        return max(1, math.ceil(n / batch_size) * (epochs or 1))

    # ------------------------------------------------------------------ training
    def _fit(self, X: Any, y: Any, sample_weight: Any, reset: bool, classes: Any = None, **overrides: Any) -> Any:
        unknown = set(overrides) - {"steps", "epochs", "batch_size", "monitors"}
        if unknown:
            raise TypeError(
                f"fit() got unexpected keyword argument(s) {sorted(unknown)}; accepted: steps, epochs, batch_size, monitors."
            )
        X, y = self._validate(X, y, reset=reset)
        y_encoded = self._encode_targets(y, classes=classes, reset=reset)
        batch_size = overrides.get("batch_size") or self.batch_size
        n = len(X)
        if reset or not hasattr(self, "estimator_"):
            params = {
                **self._model_params(),
                **self._head_params(y_encoded),
                "head": self._head,
                "vocabulary_sizes": self._vocabulary_sizes,
            }
            key = (
                repr(sorted(params.items())),
                _layout(X),
                _layout(y_encoded),
                sample_weight is None,
                repr(self._run_config()),
            )
            previous = getattr(self, "estimator_", None)
            if self.warm_start and previous is not None:
                pass  # keep training the model we have
            elif previous is not None and self.model_dir is None and getattr(self, "_fit_key", None) == key:
                # Refit from scratch with the same architecture: reuse the compiled functions (no retrace).
                old_dir = previous.model_dir
                previous._restart(tempfile.mkdtemp(prefix=f"skflow_{type(self).__name__.lower()}_"))
                shutil.rmtree(old_dir, ignore_errors=True)
            else:
                self.estimator_ = self._new_estimator(params)
            self._fit_key = key
        steps = self._steps(n, batch_size, overrides.get("steps"), overrides.get("epochs"))
        targets = self._targets(y_encoded, sample_weight, X)
        if reset:
            self.estimator_.fit(X, targets, steps=steps, batch_size=batch_size, monitors=overrides.get("monitors"))
        else:
            self.estimator_.partial_fit(
                X, targets, steps=steps, batch_size=batch_size, monitors=overrides.get("monitors")
            )
        return self

    def _predict_outputs(self, X: Any, key: str) -> np.ndarray:
        X = self._validate_predict(X)
        return self.estimator_.predict(X, outputs=[key], batch_size=max(self.batch_size, 1024))[key]


class _ClassifierBase(ClassifierMixin, _CannedEstimator):
    _head = "classifier"

    def _encode_targets(self, y: Any, classes: Any, reset: bool) -> np.ndarray:
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y.ravel()
        check_classification_targets(y)
        if reset or not hasattr(self, "classes_"):
            found = np.unique(y)
            self.classes_ = np.unique(np.asarray(classes)) if classes is not None else found
            missing = np.setdiff1d(found, self.classes_)
            if missing.size:
                raise ValueError(
                    f"y contains classes {missing.tolist()} that are not in `classes` {self.classes_.tolist()}."
                )
            if self.n_classes is not None and self.n_classes < len(self.classes_):
                raise ValueError(f"n_classes={self.n_classes}, but y has {len(self.classes_)} classes.")
        unknown = np.setdiff1d(np.unique(y), self.classes_)
        if unknown.size:
            raise ValueError(f"y contains previously unseen labels: {unknown.tolist()}.")
        return np.searchsorted(self.classes_, y).astype(np.int64)

    def _head_params(self, y: np.ndarray) -> dict[str, Any]:
        return {"n_classes": max(self.n_classes or len(self.classes_), 1)}

    def fit(self, X: Any, y: Any, sample_weight: Any = None, **overrides: Any) -> Any:
        """Train from scratch.

        Args:
            X: array-like of shape (n_samples, n_features), or a DataFrame (categorical and string
                columns are encoded with vocabularies learned here).
            y: class labels of shape (n_samples,): integers, strings, booleans.
            sample_weight: array-like of shape (n_samples,), default=None.
            **overrides: `steps`, `epochs`, `batch_size`, `monitors` for this fit only.

        Returns:
            self.
        """
        return self._fit(X, y, sample_weight, reset=True, **overrides)

    def partial_fit(self, X: Any, y: Any, classes: Any = None, sample_weight: Any = None, **overrides: Any) -> Any:
        """One more epoch over (X, y), keeping the model. `classes` is required on the first call."""
        first = not hasattr(self, "estimator_")
        if first and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        overrides.setdefault("epochs", 1)
        if first:
            return self._fit(X, y, sample_weight, reset=True, classes=classes, **overrides)
        return self._fit(X, y, sample_weight, reset=False, **overrides)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, array of shape (n_samples, n_classes), columns in `classes_` order."""
        probabilities = self._predict_outputs(X, "probabilities")
        return probabilities[:, : len(self.classes_)]

    def predict_log_proba(self, X: Any) -> np.ndarray:
        return np.log(np.clip(self.predict_proba(X), 1e-30, None))

    def predict(self, X: Any) -> np.ndarray:
        """Predicted class labels, array of shape (n_samples,)."""
        ids = np.argmax(self.predict_proba(X), axis=1)
        return self.classes_[ids]


class _RegressorBase(RegressorMixin, _CannedEstimator):
    _head = "regressor"

    def _encode_targets(self, y: Any, classes: Any, reset: bool) -> np.ndarray:
        # The network learns standardised targets (like it learns from standardised features), so a
        # target around 150 does not take thousands of steps of bias updates; predict scales back.
        y = np.asarray(y, dtype=np.float64)
        if reset or not hasattr(self, "_y_mean"):
            self._y_mean = y.mean(axis=0)
            scale = y.std(axis=0)
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
        (n_samples, n_outputs). `**overrides`: `steps`, `epochs`, `batch_size`, `monitors`."""
        return self._fit(X, y, sample_weight, reset=True, **overrides)

    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None, **overrides: Any) -> Any:
        """One more epoch over (X, y), keeping the model."""
        overrides.setdefault("epochs", 1)
        return self._fit(X, y, sample_weight, reset=not hasattr(self, "estimator_"), **overrides)

    def predict(self, X: Any) -> np.ndarray:
        """Predicted values, array of shape (n_samples,) or (n_samples, n_outputs)."""
        return self._predict_outputs(X, "predictions").astype(np.float64) * self._y_scale + self._y_mean


_COMMON_DOC = """
    Args:
        optimizer: optimizer name ("Adam", "Adagrad", "SGD", "Ftrl", "RMSProp", ...) or Keras optimizer class.
        learning_rate: step size. batch_size: rows per step, default=32.
        epochs: passes over the data per fit (ignored when `steps` is set). steps: training steps per fit.
        model_dir: checkpoint directory; default a new temporary one per fit. warm_start: continue training
            the model in model_dir (or of the previous fit) instead of starting from scratch.
        config: a RunConfig. random_state: seed for initialisation and shuffling. verbose: 0 quiet, 1 progress.
"""


class LinearClassifier(_ClassifierBase):
    __doc__ = (
        """Linear (softmax) classifier, the seed's LinearClassifier with scikit-learn's contract.

    n_classes: number of classes; default inferred from y.
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
    def _model_params(self) -> dict[str, Any]:
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
            **super()._model_params(),
            "hidden_units": hidden,
            "activation": self.activation,
            "dropout": self.dropout,
            "seed": _seed(self.random_state),
            "linear_features": getattr(self, "linear_features", None),
            "dnn_features": getattr(self, "dnn_features", None),
        }


class DNNClassifier(_DNNParams, _ClassifierBase):
    __doc__ = (
        """Feed-forward network classifier, the seed's DNNClassifier with scikit-learn's contract.

    hidden_units: units per hidden layer, default=(64, 64). activation: Keras activation, default="relu".
    dropout: dropout rate in training, default=None. n_classes: default inferred from y.
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

    linear_features / dnn_features: column indices (or DataFrame column names) each part sees;
    default all. Other arguments as DNNClassifier.
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
