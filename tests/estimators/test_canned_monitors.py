"""A ValidationMonitor passed to a canned estimator's fit: raw (x, y) in, evaluated as the model sees them."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_iris, make_classification
from sklearn.model_selection import train_test_split

from estimators.canned import DNNClassifier, DNNRegressor, LinearClassifier
from estimators.monitors import ValidationMonitor


@pytest.fixture(scope="module")
def diabetes():
    x, y = load_diabetes(return_X_y=True)
    return train_test_split(x.astype(np.float32), y, test_size=0.25, random_state=0)


def test_a_regressor_validation_loss_is_on_the_standardised_scale_and_its_mse_in_target_units(diabetes):
    x_train, x_val, y_train, y_val = diabetes
    monitor = ValidationMonitor(x_val, y_val, every_n_steps=20, metrics=["mse"])
    model = DNNRegressor(hidden_units=(16,), learning_rate=0.01, random_state=0)
    model.fit(x_train, y_train, steps=60, monitors=[monitor])
    assert [step for step, _ in monitor.history] == [20, 40, 60]
    results = monitor.history[-1][1]  # evaluated on the weights that predict below
    mse = np.mean((model.predict(x_val) - y_val) ** 2)
    assert results["mse"] == pytest.approx(mse, rel=1e-4)
    assert results["loss"] == pytest.approx(mse / np.var(y_train), rel=1e-4)
    assert results["loss"] == pytest.approx(model.estimator_.evaluate(x_val, y_val)["loss"], rel=1e-6)


def test_a_monitor_reused_on_another_fit_evaluates_that_fits_encoding_and_starts_afresh(diabetes):
    x_train, x_val, y_train, y_val = diabetes
    monitor = ValidationMonitor(x_val, y_val, every_n_steps=20, keep_best=True)
    model = DNNRegressor(hidden_units=(16,), learning_rate=0.01, random_state=0)
    model.fit(x_train, y_train, steps=60, monitors=[monitor])
    # A new fit from scratch, with targets that standardise differently: the monitor's loss must be
    # on this fit's scale, and its best value from the first fit no longer counts.
    y_other = 2.0 * y_train + 1000.0 * (x_train[:, 0] > 0)
    model.fit(x_train, y_other, steps=40, monitors=[monitor])
    assert [step for step, _ in monitor.history] == [20, 40]
    loss = monitor.history[-1][1]["loss"]
    assert loss == pytest.approx(np.mean((model.predict(x_val) - y_val) ** 2) / np.var(y_other), rel=1e-4)
    assert monitor.best_step in (20, 40)
    best = model.estimator_.evaluate(x_val, y_val, checkpoint_path="best")
    assert best["global_step"] == monitor.best_step and best["loss"] == pytest.approx(monitor.best_value, rel=1e-6)


def _rising_validation_fit(model, x, y, y_val, **fit):
    # Validation labels that disagree with the training labels: the validation loss rises as the
    # model learns, so early stopping must trigger.
    monitor = ValidationMonitor(x, y_val, every_n_steps=5, early_stopping_rounds=15)
    model.fit(x, y, steps=500, monitors=[monitor], **fit)
    return monitor


def test_early_stopping_with_string_labels():
    x, y = make_classification(200, n_features=6, n_informative=4, random_state=0)
    labels = np.array(["ham", "spam"])
    model = DNNClassifier(hidden_units=(16,), learning_rate=0.01, random_state=0)
    monitor = _rising_validation_fit(model, x, labels[y], labels[1 - y])
    assert monitor.early_stopped
    model.estimator_.save_checkpoint()
    assert model.estimator_.get_variable_value("global_step") == monitor.best_step + 15 < 500


def test_early_stopping_with_labels_from_one_and_accuracy():
    x, y = load_iris(return_X_y=True)
    labels = y + 1  # 1, 2, 3: not class ids
    monitor = ValidationMonitor(
        x,
        labels,
        every_n_steps=10,
        metrics=["accuracy"],
        early_stopping_metric="accuracy",
        early_stopping_metric_minimize=False,
        early_stopping_rounds=30,
    )
    model = LinearClassifier(learning_rate=0.05, random_state=0).fit(x, labels, steps=2000, monitors=[monitor])
    assert monitor.early_stopped
    assert monitor.best_value == pytest.approx(model.score(x, labels), abs=0.05) and monitor.best_value > 0.9
    rolled = _rising_validation_fit(LinearClassifier(random_state=0), x, labels, labels % 3 + 1)
    assert rolled.early_stopped


def test_validation_labels_unseen_in_fit_are_a_clear_error():
    x, y = load_iris(return_X_y=True)
    monitor = ValidationMonitor(x, y + 1, every_n_steps=5)
    with pytest.raises(ValueError, match=r"previously unseen labels: \[3\]"):
        LinearClassifier(random_state=0).fit(x, y, steps=10, monitors=[monitor])
