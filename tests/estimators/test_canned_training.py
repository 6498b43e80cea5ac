"""How canned estimators train: steps and epochs, n_classes, sample weights, seeds, wide-and-deep columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris, make_classification

from estimators.canned import (
    DNNClassifier,
    DNNLinearCombinedClassifier,
    DNNLinearCombinedRegressor,
    LinearClassifier,
    LinearRegressor,
)


@pytest.fixture(scope="module")
def iris_data():
    x, y = load_iris(return_X_y=True)
    return x.astype(np.float32), y


@pytest.fixture(scope="module")
def binary():
    x, y = make_classification(200, n_features=6, n_informative=4, random_state=0)
    return x.astype(np.float32), y


def _global_step(model) -> int:
    model.estimator_.save_checkpoint()  # partial_fit does not checkpoint at the end of every call
    return int(model.estimator_.get_variable_value("global_step"))


# ---------------------------------------------------------------------- steps and epochs
def test_constructor_steps_take_precedence_over_epochs(iris_data):
    x, y = iris_data
    model = LinearClassifier(steps=7, epochs=20, random_state=0).fit(x, y)
    assert _global_step(model) == 7


def test_fit_arguments_take_precedence_over_the_constructor(iris_data):
    x, y = iris_data
    model = LinearClassifier(steps=7, random_state=0)
    assert _global_step(model.fit(x, y, steps=3)) == 3
    assert _global_step(model.fit(x, y, epochs=2, batch_size=50)) == 6  # 150 rows / 50 per batch, twice


def test_partial_fit_trains_one_epoch_per_call_by_default(iris_data):
    x, y = iris_data
    model = LinearClassifier(epochs=20, batch_size=50, random_state=0)
    model.partial_fit(x, y, classes=[0, 1, 2])
    model.partial_fit(x, y)
    assert _global_step(model) == 2 * 3  # the constructor's epochs are for fit, not partial_fit


def test_partial_fit_trains_the_constructor_steps_per_call_or_the_override(iris_data):
    x, y = iris_data
    model = LinearClassifier(steps=4, random_state=0)
    model.partial_fit(x, y, classes=[0, 1, 2])
    model.partial_fit(x, y)
    assert _global_step(model) == 8
    model.partial_fit(x, y, steps=1)
    assert _global_step(model) == 9


@pytest.mark.parametrize("argument", [{"steps": 0}, {"epochs": -1}, {"batch_size": 2.5}])
def test_non_positive_steps_epochs_or_batch_size_are_rejected_at_fit(iris_data, argument):
    x, y = iris_data
    model = LinearClassifier(**argument)
    name = next(iter(argument))
    with pytest.raises(ValueError, match=f"Invalid value for argument `{name}`"):
        model.fit(x, y)


def test_regressor_partial_fit_keeps_learning(binary):
    x, _ = binary
    y = x @ np.arange(1, 7) * 10 + 150
    model = LinearRegressor(learning_rate=0.05, random_state=0)
    model.partial_fit(x, y)
    first = model.score(x, y)
    for _ in range(5):
        model.partial_fit(x, y)
    assert model.score(x, y) > max(first, 0.9)
    assert _global_step(model) == 6 * 7  # 200 rows / 32 per batch: 7 steps an epoch


# ---------------------------------------------------------------------- n_classes
def test_n_classes_above_the_labels_found_gives_one_column_per_class_id(iris_data):
    x, y = iris_data
    model = LinearClassifier(n_classes=5, random_state=0, epochs=10).fit(x, y)  # classes 3 and 4 unseen
    np.testing.assert_array_equal(model.classes_, np.arange(5))
    proba = model.predict_proba(x)
    assert proba.shape == (150, 5)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    assert set(model.predict(x)) <= {0, 1, 2}


def test_n_classes_below_the_labels_found_is_an_error(iris_data):
    x, y = iris_data
    with pytest.raises(ValueError, match=r"n_classes=2, but y has 3 classes \[0, 1, 2\]"):
        LinearClassifier(n_classes=2).fit(x, y)


@pytest.mark.parametrize("labels", [np.array(["a", "b", "c"]), np.array([2, 5, 7])])
def test_a_larger_n_classes_needs_class_ids_from_zero(iris_data, labels):
    x, y = iris_data
    with pytest.raises(ValueError, match=r"needs integer class ids in \[0, 5\)"):
        LinearClassifier(n_classes=5).fit(x, labels[y])


# ---------------------------------------------------------------------- sample weights
def test_zero_sample_weights_on_a_class_change_the_fit(binary):
    x, y = binary
    plain = LinearClassifier(random_state=0).fit(x, y)
    weighted = LinearClassifier(random_state=0).fit(x, y, sample_weight=(y == 0).astype(float))
    assert 0.3 < np.mean(plain.predict(x) == 0) < 0.7
    assert np.mean(weighted.predict(x) == 0) > 0.85


@pytest.mark.parametrize("make", [LinearRegressor, LinearClassifier], ids=["regressor", "classifier"])
def test_a_weight_of_k_trains_like_k_repeated_rows(make):
    # One batch holds every row (so both fits take the same steps); the objectives are then equal,
    # features and targets standardised with the weighted statistics included. Plain SGD: with
    # centred features and targets the bias gradient of the full batch is exactly zero, so in float32
    # it is rounding noise, which Adam's normalised step turns into steps of up to the learning rate
    # (measured: 0.011 apart in predictions when only the order of the repeated rows changes).
    rng = np.random.RandomState(0)
    x = rng.normal(size=(20, 3))
    y = x @ [1.0, -2.0, 0.5] * 40 + 300 if make is LinearRegressor else (x[:, 0] > 0).astype(int)
    weights = rng.randint(0, 4, size=20)
    params = {"batch_size": 64, "epochs": 30, "optimizer": "SGD", "learning_rate": 0.1, "random_state": 0}
    repeated = make(**params).fit(x.repeat(weights, axis=0), y.repeat(weights))
    weighted = make(**params).fit(x, y, sample_weight=weights)
    method = "predict" if make is LinearRegressor else "predict_proba"
    np.testing.assert_allclose(getattr(weighted, method)(x), getattr(repeated, method)(x), rtol=1e-4, atol=1e-6)


def test_negative_sample_weights_are_rejected(binary):
    x, y = binary
    with pytest.raises(ValueError, match="Negative values in data passed to `sample_weight`"):
        LinearRegressor().fit(x, y.astype(float), sample_weight=np.full(len(y), -1.0))


# ---------------------------------------------------------------------- inputs and inference
def test_an_all_numeric_dataframe_sets_feature_names_in(binary):
    x, y = binary
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(6)])
    model = LinearClassifier(epochs=2, random_state=0).fit(frame, y)
    assert list(model.feature_names_in_) == [f"f{i}" for i in range(6)] and model.n_features_in_ == 6
    with pytest.raises(ValueError, match="feature names should match"):
        model.predict(frame.rename(columns={"f0": "other"}))


def test_dropout_is_off_when_predicting(binary):
    x, y = binary
    model = DNNClassifier(hidden_units=(32,), dropout=0.5, epochs=2, random_state=0).fit(x, y)
    first = model.predict_proba(x)
    np.testing.assert_array_equal(model.predict_proba(x), first)
    np.testing.assert_array_equal(np.concatenate([model.predict_proba(x[:7]), model.predict_proba(x[7:])]), first)


def test_predictions_do_not_depend_on_the_other_rows_in_the_batch(binary):
    # float32 matmuls round a row differently at different batch positions; inference runs in float64.
    x, y = binary
    model = DNNLinearCombinedRegressor(hidden_units=(16,), epochs=2, random_state=0).fit(x, y * 100.0)
    order = np.random.RandomState(0).permutation(len(x))
    full = model.predict(x)
    np.testing.assert_array_equal(model.predict(x[order]), full[order])
    np.testing.assert_array_equal(model.predict(x[:3]), full[:3])


def test_monitors_are_passed_through_fit(binary):
    x, y = binary
    steps = []
    LinearClassifier(random_state=0).fit(x, y, steps=5, monitors=[lambda step, outputs: steps.append(step)])
    assert steps == [1, 2, 3, 4, 5]


# ---------------------------------------------------------------------- random_state
def test_a_random_state_instance_is_drawn_from_once_per_fit(binary):
    x, y = binary
    rng = np.random.RandomState(0)
    model = DNNClassifier(hidden_units=(4,), epochs=1, random_state=rng).fit(x, y)
    reference = np.random.RandomState(0)
    seed = reference.randint(0, 2**31 - 1)
    assert rng.randint(1000) == reference.randint(1000)  # exactly one draw was consumed
    assert model.estimator_.config.tf_random_seed == seed
    assert model.estimator_.params["seed"] == seed


# ---------------------------------------------------------------------- wide-and-deep columns
def _input_width(model, layer):
    return model.estimator_.get_variable_value(f"{layer}/kernel").shape[0]


def test_wide_and_deep_columns_by_name_in_an_all_numeric_dataframe(binary):
    x, y = binary
    frame = pd.DataFrame(x, columns=list("abcdef"))
    model = DNNLinearCombinedClassifier(
        hidden_units=(4,), linear_features=["b"], dnn_features=[0, "c", "d"], epochs=1, random_state=0
    ).fit(frame, y)
    assert _input_width(model, "linear") == 1
    assert _input_width(model, "hiddenlayer") == 3
    with pytest.raises(ValueError, match=r"\['z'\] is not a column of X"):
        model.set_params(linear_features=["z"]).fit(frame, y)


def test_wide_and_deep_columns_by_name_with_categorical_columns():
    rng = np.random.default_rng(0)
    n = 120
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "z": rng.normal(size=n),
            "color": pd.Categorical(rng.choice(["red", "green", "blue"], n)),
            "shape": rng.choice(["round", "square"], n),
        }
    )
    y = (frame["x"] > 0).to_numpy().astype(int)
    model = DNNLinearCombinedClassifier(
        hidden_units=(4,), linear_features=["x", "color"], dnn_features=["z", "shape"], epochs=1, random_state=0
    ).fit(frame, y)
    names = model.estimator_.get_variable_names()
    assert _input_width(model, "linear") == 1  # "x" only
    assert any(n.startswith("linear_color/") for n in names)
    assert not any(n.startswith("linear_shape/") or n.startswith("embedding_color/") for n in names)
    shape_dim = model.estimator_.get_variable_value("embedding_shape/embeddings").shape[1]
    assert _input_width(model, "hiddenlayer") == 1 + shape_dim  # "z" and the "shape" embedding
    assert model.predict(frame).shape == (n,)


def test_wide_and_deep_column_names_need_a_dataframe(binary):
    x, y = binary
    with pytest.raises(ValueError, match="X has no column names"):
        DNNLinearCombinedRegressor(dnn_features=["a"]).fit(x, y.astype(float))
