"""PandasFeeder: numeric block + vocabularies learned at fit, applied by column name later."""

from __future__ import annotations

import logging

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from estimators import Estimator, RunConfig, optimize_loss
from feeders import PandasFeeder, setup_predict_data_feeder, setup_train_data_feeder


def _frame(n=8):
    return pd.DataFrame(
        {
            "age": np.arange(n, dtype=np.float64),
            "city": pd.Series(["Paris", "Oslo"] * (n // 2), dtype="str"),
            "size": pd.Categorical(["S", "M", "L", "M"] * (n // 4), categories=["S", "M", "L"]),
            "member": [True, False] * (n // 2),
            "visits": np.arange(n, dtype=np.int64) * 2,
        }
    )


def test_numeric_columns_form_one_float32_block_and_categories_become_ids():
    feeder = PandasFeeder(_frame(), batch_size=4, shuffle=False, epochs=1)
    x = feeder.x
    assert set(x) == {"numeric", "city", "size", "member"}
    assert x["numeric"].dtype == np.float32 and x["numeric"].shape == (8, 2)
    np.testing.assert_array_equal(x["numeric"][:, 1], np.arange(8) * 2)
    assert feeder.encoding.vocabularies == {"city": ["Oslo", "Paris"], "size": ["S", "M", "L"], "member": [False, True]}
    np.testing.assert_array_equal(x["city"], [1, 0] * 4)
    np.testing.assert_array_equal(x["size"], [0, 1, 2, 1] * 2)
    assert feeder.encoding.vocabulary_sizes["city"] == 3  # two cities + the out-of-vocabulary id


def test_an_all_numeric_frame_feeds_a_plain_matrix():
    feeder = PandasFeeder(pd.DataFrame({"a": [1.0, 2.0], "b": [3, 4]}), shuffle=False, epochs=1)
    assert isinstance(feeder.x, np.ndarray) and feeder.x.shape == (2, 2)


def test_prediction_matches_columns_by_name_and_sends_unseen_categories_to_oov(caplog):
    train = PandasFeeder(_frame(), batch_size=4)
    test = _frame(4)[["visits", "member", "size", "city", "age"]].copy()
    test.loc[0, "city"] = "Lima"
    test.loc[1, "city"] = "Lima"
    with caplog.at_level(logging.WARNING, logger="skflow"):
        x = setup_predict_data_feeder(test, state=train.state).x
        setup_predict_data_feeder(test, state=train.state)
    np.testing.assert_array_equal(x["city"], [2, 2, 1, 0])
    np.testing.assert_array_equal(x["numeric"][:, 0], np.arange(4))
    assert sum("not seen at fit time" in r.message for r in caplog.records) == 2  # once per feeder, per column


def test_a_missing_column_at_predict_is_named():
    train = PandasFeeder(_frame())
    with pytest.raises(ValueError, match=r"missing column\(s\) \['city'\]"):
        setup_predict_data_feeder(_frame().drop(columns="city"), state=train.state)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"t": pd.date_range("2024-01-01", periods=3)}), r"Column 't' holds dates.*dt.dayofweek"),
        (pd.DataFrame({"m": pd.Series([1, "a", 2.5], dtype=object)}), r"Column 'm' has dtype object and mixes types"),
        (pd.DataFrame({"r": pd.Series([[1, 2], [3], [4, 5, 6]], dtype=object)}), r"Column 'r' holds sequences"),
        (
            pd.DataFrame({"x": [1.0, np.nan, 3.0]}),
            r"^Input X contains NaN in column 'x' \(1 row\(s\)\)\. Pass fit\(\.\.\., impute='mean'\) to fill them with "
            r"the training mean \(PandasFeeder\(\.\.\., impute=True\) when feeding directly\), or drop those rows\.$",
        ),
        (
            pd.DataFrame({"c": ["a", None, "b"]}),
            r"^Input X contains NaN in column 'c' \(1 row\(s\)\)\. Pass fit\(\.\.\., impute='mean'\) to send missing "
            r"categories to the out-of-vocabulary id",
        ),
        (pd.DataFrame({"x": [1.0, np.inf, 3.0]}), r"^Input X contains infinity in column 'x' \(1 row\(s\)\)"),
        (pd.DataFrame({"x": [1.0, 2.0]}).iloc[:0], r"Found array with 0 sample\(s\)"),
        (pd.DataFrame(index=range(3)), r"0 feature\(s\)"),
        (
            pd.DataFrame({"t": pd.Categorical(pd.date_range("2024-01-01", periods=3))}),
            r"Column 't' holds dates/times \(category of datetime64.*dt.dayofweek",
        ),
        (
            pd.DataFrame({"t": pd.Series(list(pd.date_range("2024-01-01", periods=3)), dtype=object)}),
            r"Column 't' holds dates/times",
        ),
        (pd.DataFrame({"b": pd.cut([1.0, 5.0, 9.0], 2)}), r"Column 'b' is a categorical whose categories are Interval"),
        (pd.DataFrame({"s": pd.Series([b"a", b"b", b"a"])}), r"Column 's' holds bytes.*\.str\.decode\('utf-8'\)"),
    ],
)
def test_bad_frames_get_a_clear_error(frame, message):
    with pytest.raises(ValueError, match=message):
        PandasFeeder(frame)


def test_impute_fills_numeric_nan_with_the_training_mean_and_categories_with_oov():
    frame = pd.DataFrame({"x": [1.0, np.nan, 3.0], "c": ["a", None, "b"]})
    x = PandasFeeder(frame, impute=True, shuffle=False, epochs=1).x
    np.testing.assert_allclose(x["numeric"][:, 0], [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(x["c"], [0, 2, 1])


@pytest.mark.parametrize(
    "labels",
    [
        pd.Series(["yes", "no"] * 4),
        pd.Series(pd.Categorical(["b", "a"] * 4, categories=["b", "a"])),
        pd.Series([True, False] * 4),
    ],
)
def test_class_labels_are_encoded_and_decoded(labels):
    feeder = PandasFeeder(_frame(), labels, shuffle=False, epochs=1)
    assert feeder.y.dtype == np.int64
    decoded = feeder.label_encoding.decode(feeder.y)
    assert list(decoded) == list(labels)


def test_setup_train_data_feeder_picks_the_pandas_feeder():
    assert isinstance(setup_train_data_feeder(_frame(), None), PandasFeeder)
    assert isinstance(setup_train_data_feeder(_frame()["age"], None), PandasFeeder)


def _wide_fn(features, targets, mode, params):
    city = keras.layers.Embedding(params["sizes"]["city"], 2)(features["city"])
    member = tf.one_hot(features["member"], params["sizes"]["member"])
    merged = tf.concat([features["numeric"] / 10.0, city, member], axis=1)
    logits = keras.layers.Dense(2)(merged)
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits))
    return {"class": tf.argmax(logits, 1)}, loss, optimize_loss(loss, "Adam", 0.05)


def test_estimator_trains_on_a_dataframe_and_predicts_the_original_string_labels(tmp_path):
    rng = np.random.default_rng(0)
    n = 400
    frame = pd.DataFrame(
        {
            "age": rng.uniform(0, 10, n),
            "city": rng.choice(["Paris", "Oslo", "Rome"], n),
            "member": rng.choice([True, False], n),
        }
    )
    labels = pd.Series(np.where(frame["member"], "stay", "leave"))
    sizes = PandasFeeder(frame).encoding.vocabulary_sizes
    est = Estimator(
        _wide_fn,
        model_dir=str(tmp_path / "m"),
        params={"sizes": sizes},
        config=RunConfig(tf_random_seed=0, log_step_count_steps=0),
    )
    est.fit(frame, labels, steps=150, batch_size=32)
    shuffled = frame[["member", "age", "city"]]  # column order differs at predict
    predicted = est.predict(shuffled)["class"]
    assert set(predicted) <= {"stay", "leave"}
    assert np.mean(predicted == labels.to_numpy()) > 0.95
    assert est.evaluate(frame, labels, metrics=["accuracy"])["accuracy"] > 0.95
    # A fresh Estimator finds the encoding in model_dir.
    fresh = Estimator(_wide_fn, model_dir=str(tmp_path / "m"), params={"sizes": sizes})
    np.testing.assert_array_equal(fresh.predict(shuffled)["class"], predicted)


def test_categorical_labels_of_dates_are_a_clear_error():
    labels = pd.Series(pd.Categorical(pd.date_range("2024-01-01", periods=3)), name="when")
    with pytest.raises(ValueError, match=r"Column 'when' holds dates/times"):
        PandasFeeder(pd.DataFrame({"x": [1.0, 2.0, 3.0]}), labels)


def test_a_file_state_takes_the_numeric_columns_by_name_booleans_included():
    state = {"type": "file", "feature_columns": ["flag", "x"], "target_column": "label"}
    frame = pd.DataFrame({"x": [1.5, 2.5], "label": [0, 1], "flag": [True, False]})
    feeder = setup_predict_data_feeder(frame, state=state)
    np.testing.assert_array_equal(feeder.x, np.array([[1, 1.5], [0, 2.5]], np.float32))
