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
    "minimise the same objective (features and regression targets are standardised with the weighted "
    "mean and standard deviation, equal to the last float32 bit), but float32 sums over 15 rows and "
    "over 27 rows round differently, and the check compares at rtol=1e-7, below float32's resolution. "
    "Measured: predictions differ by up to 1.4e-6, and by 4e-3 for LinearRegressor, whose bias gradient "
    "is exactly zero on centred features and targets: rounding noise that Adam's normalised step turns "
    "into a step. Fitting the repeated rows in another order changes the predictions as much. "
    "test_canned_training.py checks the equivalence at float32 tolerance."
)

# Measured with scikit-learn 1.9 on this CPU build of TensorFlow. Before numeric features were
# standardised, DNNLinearCombinedRegressor passed this check by chance (4.3e-8 against rtol=1e-7); with
# standardised features it differs by 5.7e-7, as much as when only the order of the rows changes (6.5e-7).
EXPECTED_FAILED_CHECKS = {
    type(estimator).__name__: {"check_sample_weight_equivalence_on_dense_data": _SAMPLE_WEIGHT_ROUNDING}
    for estimator in ESTIMATORS
}


def _expected_failed_checks(estimator):
    return EXPECTED_FAILED_CHECKS[type(estimator).__name__]


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failed_checks, xfail_strict=True)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
