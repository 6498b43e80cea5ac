"""Linear models with scikit-learn's contract: `LinearClassifier` (softmax) and `LinearRegressor` (least squares)."""

from __future__ import annotations

from estimators.canned.base import COMMON_ARGS_DOC
from estimators.canned.classifier import CannedClassifier
from estimators.canned.model_fns import linear_model_fn
from estimators.canned.regressor import CannedRegressor

__all__ = ["LinearClassifier", "LinearRegressor"]


class LinearClassifier(CannedClassifier):
    __doc__ = (
        """Linear (softmax) classifier, the seed's LinearClassifier with scikit-learn's contract.

    n_classes: number of classes; default inferred from y. Larger than the number of labels in y, the
        labels must be class ids in [0, n_classes) and `classes_` is `0 .. n_classes - 1`.
    """
        + COMMON_ARGS_DOC
    )

    _model_fn = staticmethod(linear_model_fn)

    def __init__(self, n_classes=None, optimizer="Adam", learning_rate=0.05, batch_size=32, epochs=20, steps=None,
                 clip_gradients=None, model_dir=None, warm_start=False, config=None, random_state=None, verbose=0,
                 standardize=True, impute=None):  # fmt: skip
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
        self.standardize = standardize
        self.impute = impute


class LinearRegressor(CannedRegressor):
    __doc__ = """Linear least-squares regressor with scikit-learn's contract.""" + COMMON_ARGS_DOC

    _model_fn = staticmethod(linear_model_fn)

    def __init__(self, optimizer="Adam", learning_rate=0.05, batch_size=32, epochs=20, steps=None, clip_gradients=None,
                 model_dir=None, warm_start=False, config=None, random_state=None, verbose=0, standardize=True,
                 impute=None):  # fmt: skip
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
