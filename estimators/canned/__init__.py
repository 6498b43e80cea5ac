"""Canned estimators with scikit-learn's contract: Linear, DNN and wide-and-deep, classifier and regressor.

They are scikit-learn estimators (`get_params`/`set_params`/`clone`, `Pipeline`, `GridSearchCV`,
pickling) built on the same `Estimator` machinery as a custom model_fn (`base.py` is the adapter,
`model_fns.py` the models). DataFrames with categorical or string columns go through `PandasFeeder`
(vocabularies saved with the model); other input is validated by scikit-learn.
"""

from estimators.canned.dnn import DNNClassifier, DNNRegressor
from estimators.canned.linear import LinearClassifier, LinearRegressor
from estimators.canned.wide_deep import DNNLinearCombinedClassifier, DNNLinearCombinedRegressor

__all__ = [
    "DNNClassifier",
    "DNNLinearCombinedClassifier",
    "DNNLinearCombinedRegressor",
    "DNNRegressor",
    "LinearClassifier",
    "LinearRegressor",
]
