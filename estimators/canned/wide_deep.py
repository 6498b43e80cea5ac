"""Wide-and-deep models with scikit-learn's contract: `DNNLinearCombinedClassifier` and
`DNNLinearCombinedRegressor`, a linear model and a DNN trained jointly, each on the columns it is given."""

from __future__ import annotations

import numbers
from typing import Any

from estimators._validation import invalid_argument
from estimators.canned.base import COMMON_ARGS_DOC
from estimators.canned.classifier import CannedClassifier
from estimators.canned.dnn import DNNParams
from estimators.canned.model_fns import dnn_linear_combined_model_fn
from estimators.canned.regressor import CannedRegressor

__all__ = ["DNNLinearCombinedClassifier", "DNNLinearCombinedRegressor"]


def _as_list(columns: Any) -> list[Any]:
    if isinstance(columns, (str, numbers.Integral)):
        return [columns]
    return list(columns)


class _ColumnParams(DNNParams):
    """`linear_features`/`dnn_features`, resolved against the fitted columns and passed to the model_fn."""

    def _model_params(self, seed: int | None) -> dict[str, Any]:
        return {
            **super()._model_params(seed),
            "linear_features": self._columns_of("linear_features"),
            "dnn_features": self._columns_of("dnn_features"),
        }

    def _columns_of(self, argument: str) -> list[Any] | None:
        """`linear_features`/`dnn_features` as the model_fn takes them: column names when the model
        sees a PandasFeeder dict, else positions in the feature matrix (names looked up in
        `feature_names_in_`, or among a DataFrame's numeric columns)."""
        columns = getattr(self, argument)
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
            where = f"column positions 0..{self.n_features_in_ - 1}" + (
                f" or names {names}" if names else "; X has no column names"
            )
            raise invalid_argument(
                argument, columns, f"columns of X ({where}); {bad} {'are' if len(bad) > 1 else 'is'} not a column of X"
            )
        if not resolved:
            raise invalid_argument(argument, columns, "a selection of at least one column")
        if self._vocabulary_sizes:  # the model sees a dict: numeric block + one vector per categorical column
            return list(dict.fromkeys(resolved))
        order = self._numeric_columns if self._numeric_columns is not None else names
        if names:
            resolved = [order.index(c) for c in resolved]
        return sorted(set(resolved))


class DNNLinearCombinedClassifier(_ColumnParams, CannedClassifier):
    __doc__ = (
        """Wide-and-deep classifier: a linear model plus a DNN, trained jointly.

    linear_features / dnn_features: the columns each part sees, default all: positions in X, or names
    of a DataFrame's columns (numeric or categorical). Other arguments as DNNClassifier.
    """
        + COMMON_ARGS_DOC
    )

    _model_fn = staticmethod(dnn_linear_combined_model_fn)

    def __init__(self, hidden_units=(64, 64), linear_features=None, dnn_features=None, n_classes=None,
                 activation="relu", dropout=None, optimizer="Adam", learning_rate=0.001, batch_size=32, epochs=20,
                 steps=None, clip_gradients=None, model_dir=None, warm_start=False, config=None, random_state=None,
                 verbose=0, standardize=True, impute=None):  # fmt: skip
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
        self.standardize = standardize
        self.impute = impute


class DNNLinearCombinedRegressor(_ColumnParams, CannedRegressor):
    __doc__ = """Wide-and-deep regressor (see DNNLinearCombinedClassifier).""" + COMMON_ARGS_DOC

    _model_fn = staticmethod(dnn_linear_combined_model_fn)

    def __init__(self, hidden_units=(64, 64), linear_features=None, dnn_features=None, activation="relu",
                 dropout=None, optimizer="Adam", learning_rate=0.001, batch_size=32, epochs=20, steps=None,
                 clip_gradients=None, model_dir=None, warm_start=False, config=None, random_state=None, verbose=0,
                 standardize=True, impute=None):  # fmt: skip
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
        self.standardize = standardize
        self.impute = impute
