"""Feed-forward networks with scikit-learn's contract: `DNNClassifier` and `DNNRegressor`."""

from __future__ import annotations

from typing import Any

from estimators._validation import invalid_argument
from estimators.canned.base import COMMON_ARGS_DOC
from estimators.canned.classifier import CannedClassifier
from estimators.canned.model_fns import dnn_model_fn
from estimators.canned.regressor import CannedRegressor

__all__ = ["DNNClassifier", "DNNParams", "DNNRegressor"]


class DNNParams:
    """The network's arguments (`hidden_units`, `activation`, `dropout`), checked and passed to the model_fn."""

    def _model_params(self, seed: int | None) -> dict[str, Any]:
        hidden = tuple(int(u) for u in (self.hidden_units or ()))
        if any(u < 1 for u in hidden):
            raise invalid_argument("hidden_units", self.hidden_units, "positive integers")
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise invalid_argument("dropout", self.dropout, "None or a number in [0, 1)")
        return {
            **super()._model_params(seed),
            "hidden_units": hidden,
            "activation": self.activation,
            "dropout": self.dropout,
            "seed": seed,
        }


class DNNClassifier(DNNParams, CannedClassifier):
    __doc__ = (
        """Feed-forward network classifier, the seed's DNNClassifier with scikit-learn's contract.

    hidden_units: units per hidden layer, default=(64, 64). activation: Keras activation, default="relu".
    dropout: dropout rate in training, default=None. n_classes: default inferred from y (see
    LinearClassifier).
    """
        + COMMON_ARGS_DOC
    )

    _model_fn = staticmethod(dnn_model_fn)

    def __init__(self, hidden_units=(64, 64), n_classes=None, activation="relu", dropout=None, optimizer="Adam",
                 learning_rate=0.001, batch_size=32, epochs=20, steps=None, clip_gradients=None, model_dir=None,
                 warm_start=False, config=None, random_state=None, verbose=0, standardize=True,
                 impute=None):  # fmt: skip
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
        self.standardize = standardize
        self.impute = impute


class DNNRegressor(DNNParams, CannedRegressor):
    __doc__ = """Feed-forward network regressor with scikit-learn's contract (see DNNClassifier).""" + COMMON_ARGS_DOC

    _model_fn = staticmethod(dnn_model_fn)

    def __init__(self, hidden_units=(64, 64), activation="relu", dropout=None, optimizer="Adam", learning_rate=0.001,
                 batch_size=32, epochs=20, steps=None, clip_gradients=None, model_dir=None, warm_start=False,
                 config=None, random_state=None, verbose=0, standardize=True, impute=None):  # fmt: skip
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
        self.standardize = standardize
        self.impute = impute
