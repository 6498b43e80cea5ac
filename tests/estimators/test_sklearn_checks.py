"""scikit-learn's own estimator checks over every canned estimator (tiny models, so the suite stays fast).

The expected failures are listed per estimator, each with its measured cause, and are strict: a
listed check that starts to pass fails the run, so the list cannot go stale.
"""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from estimators.canned import (
    DNNClassifier,
    DNNLinearCombinedClassifier,
    DNNLinearCombinedRegressor,
    DNNRegressor,
    LinearClassifier,
    LinearRegressor,
)

TINY = {"epochs": 20, "batch_size": 32, "random_state": 0}
ESTIMATORS = [
    LinearClassifier(learning_rate=0.1, **TINY),
    LinearRegressor(learning_rate=0.1, **TINY),
    DNNClassifier(hidden_units=(8,), learning_rate=0.05, **TINY),
    DNNRegressor(hidden_units=(16,), learning_rate=0.02, **TINY),
    DNNLinearCombinedClassifier(hidden_units=(8,), learning_rate=0.05, **TINY),
    DNNLinearCombinedRegressor(hidden_units=(16,), learning_rate=0.02, **TINY),
]

_SAMPLE_WEIGHT_ROUNDING = (
    "float32 training rounds differently on weighted and on repeated rows. In this check both fits "
    "take the same 20 full-batch steps (15 weighted rows, 27 repeated rows, batch_size=32) and "
    "minimise the same objective (regression targets are standardised with the weighted mean and "
    "standard deviation), but a float32 matmul over 15 rows and one over 27 rows round differently, "
    "so predictions differ by a few float32 ulps (measured: up to 1.6e-7 absolute); the check compares "
    "at rtol=1e-7. "
    "test_canned_training.py checks the equivalence at float32 tolerance."
)

# Measured with scikit-learn 1.9 on this CPU build of TensorFlow. DNNLinearCombinedRegressor passes the
# sample-weight check: its predictions differ by <= 4.3e-8, inside the check's rtol=1e-7 on values near 1.
EXPECTED_FAILED_CHECKS = {
    "LinearClassifier": {"check_sample_weight_equivalence_on_dense_data": _SAMPLE_WEIGHT_ROUNDING},
    "LinearRegressor": {"check_sample_weight_equivalence_on_dense_data": _SAMPLE_WEIGHT_ROUNDING},
    "DNNClassifier": {"check_sample_weight_equivalence_on_dense_data": _SAMPLE_WEIGHT_ROUNDING},
    "DNNRegressor": {"check_sample_weight_equivalence_on_dense_data": _SAMPLE_WEIGHT_ROUNDING},
    "DNNLinearCombinedClassifier": {"check_sample_weight_equivalence_on_dense_data": _SAMPLE_WEIGHT_ROUNDING},
    "DNNLinearCombinedRegressor": {},
}


def _expected_failed_checks(estimator):
    return EXPECTED_FAILED_CHECKS[type(estimator).__name__]


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failed_checks, xfail_strict=True)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
