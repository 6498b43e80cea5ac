"""The canned estimators' constructor arguments, known without importing TensorFlow (a config is
checked in a command's first second), and those a pipeline sets itself from other config fields.
`canned_signature_matches` compares the table with the real constructors (a test keeps it empty)."""

from __future__ import annotations

import inspect

__all__ = ["PIPELINE_OWNED", "canned_arguments", "canned_signature_matches"]

# Canned arguments the pipeline sets from other fields (the model_dir per MLflow run, warm_start to resume).
PIPELINE_OWNED = {
    "batch_size": "fit.batch_size",
    "epochs": "fit.epochs",
    "steps": "fit.steps",
    "impute": "fit.impute",
    "model_dir": "model_root",
    "warm_start": "nothing: retried fits resume by themselves",
    "config": "estimator.config",
    "verbose": "estimator.config.verbose",
}


def canned_arguments(name: str) -> list[str]:
    """Constructor arguments of a canned estimator, without importing TensorFlow."""
    return _CANNED_ARGUMENTS[name]


_COMMON = [
    "optimizer", "learning_rate", "batch_size", "epochs", "steps", "clip_gradients", "model_dir", "warm_start",
    "config", "random_state", "verbose", "standardize", "impute",
]  # fmt: skip
_DNN = ["hidden_units", "activation", "dropout"]
_CANNED_ARGUMENTS = {
    "LinearClassifier": ["n_classes", *_COMMON],
    "LinearRegressor": _COMMON,
    "DNNClassifier": [*_DNN, "n_classes", *_COMMON],
    "DNNRegressor": [*_DNN, *_COMMON],
    "DNNLinearCombinedClassifier": [*_DNN, "linear_features", "dnn_features", "n_classes", *_COMMON],
    "DNNLinearCombinedRegressor": [*_DNN, "linear_features", "dnn_features", *_COMMON],
}


def canned_signature_matches() -> dict[str, set[str]]:
    """The difference between `_CANNED_ARGUMENTS` and the real constructors (a test keeps it empty)."""
    import estimators

    out = {}
    for name, arguments in _CANNED_ARGUMENTS.items():
        real = set(inspect.signature(getattr(estimators, name)).parameters)
        if real != set(arguments):
            out[name] = real ^ set(arguments)
    return out
