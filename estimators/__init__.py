"""skflow estimators: the scikit-learn-style TensorFlow Estimator of the Scikit Flow era, on TF 2.

`estimators` never imports `prefect` or `mlflow`.
"""

from sklearn.exceptions import NotFittedError

from estimators._context import get_global_step
from estimators.canned import (
    DNNClassifier,
    DNNLinearCombinedClassifier,
    DNNLinearCombinedRegressor,
    DNNRegressor,
    LinearClassifier,
    LinearRegressor,
)
from estimators.distribute import cluster_strategy
from estimators.estimator import Estimator
from estimators.launcher import ClusterStartupError, WorkerFailedError, launch_local_workers
from estimators.metrics import MetricSpec
from estimators.model_fn import EstimatorSpec, ModeKeys
from estimators.optimizers import optimize_loss
from estimators.run_config import ClusterConfig, RunConfig, TaskType

__all__ = [
    "ClusterConfig",
    "ClusterStartupError",
    "DNNClassifier",
    "DNNLinearCombinedClassifier",
    "DNNLinearCombinedRegressor",
    "DNNRegressor",
    "Estimator",
    "EstimatorSpec",
    "LinearClassifier",
    "LinearRegressor",
    "MetricSpec",
    "ModeKeys",
    "NotFittedError",
    "RunConfig",
    "TaskType",
    "WorkerFailedError",
    "cluster_strategy",
    "get_global_step",
    "launch_local_workers",
    "optimize_loss",
]
