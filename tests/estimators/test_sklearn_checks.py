"""scikit-learn's own estimator checks over every canned estimator (tiny models, so the suite stays fast)."""

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

# Each exemption with its reason. Both are float32 numerics, not API gaps.
EXPECTED_FAILED_CHECKS = {
    "check_sample_weight_equivalence_on_dense_data": (
        "Training is minibatch gradient descent in float32: a weight of 2 and a repeated row give the same "
        "objective, but the batches differ, so the fitted weights agree only to float32 precision (~1e-7), "
        "while the check compares at float64 tolerance."
    ),
    "check_methods_sample_order_invariance": (
        "TensorFlow's float32 matmul rounds the last bit differently depending on a row's position in the "
        "batch (differences <= 3e-8); predictions are order-invariant to float32 precision, the check "
        "compares at rtol=1e-7."
    ),
    "check_methods_subset_invariance": (
        "Same float32 rounding as above: a row predicted in a batch of 20 or of 2 can differ in the last "
        "bit (regressors scale it back by the target's standard deviation: ~3e-7 absolute); equal to "
        "float32 precision, the check compares at 1e-7."
    ),
}


def _expected_failed_checks(estimator):
    return EXPECTED_FAILED_CHECKS


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failed_checks)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
