"""DaskDataFeeder: shuffle and epochs that actually work, one partition in memory at a time."""

from __future__ import annotations

import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest

from estimators import Estimator, RunConfig
from feeders import PandasFeeder, reraising_iterator, setup_train_data_feeder
from feeders.dask_feeder import DaskDataFeeder
from tests.feeders.test_pandas_feeder import _wide_fn
from tests.helpers import linear_fn


def _frame(n=100):
    return pd.DataFrame(
        {"i": np.arange(n, dtype=np.float64), "c": pd.Series(["a", "b", "c", "d"] * (n // 4), dtype="str")}
    )


def _epochs(feeder, n_epochs, rows):
    ids = np.concatenate(
        [x.numpy()[:, 0] if not isinstance(x, dict) else x["numeric"].numpy()[:, 0] for x, _ in feeder.dataset()]
    )
    return ids.reshape(n_epochs, rows)


def test_each_epoch_visits_every_row_once_in_a_new_seeded_order():
    ddf = dd.from_pandas(_frame(), npartitions=5)
    feeder = DaskDataFeeder(ddf[["i"]], ddf["i"], batch_size=7, shuffle=True, epochs=3, seed=1)
    epochs = _epochs(feeder, 3, 100)
    for epoch in epochs:
        np.testing.assert_array_equal(np.sort(epoch), np.arange(100))
    assert not np.array_equal(epochs[0], epochs[1])
    np.testing.assert_array_equal(
        _epochs(DaskDataFeeder(ddf[["i"]], ddf["i"], batch_size=7, epochs=3, seed=1), 3, 100), epochs
    )


def test_rows_stay_aligned_with_targets_across_partition_boundaries():
    ddf = dd.from_pandas(_frame(), npartitions=3)
    feeder = DaskDataFeeder(ddf[["i"]], ddf["i"], batch_size=16, epochs=2, seed=0)
    for x, y in feeder.dataset():
        np.testing.assert_array_equal(x.numpy()[:, 0], y.numpy())


def test_without_shuffle_one_epoch_is_the_data_in_order_with_a_partial_last_batch():
    ddf = dd.from_pandas(_frame(), npartitions=4)
    feeder = DaskDataFeeder(ddf[["i"]], batch_size=30, shuffle=False, epochs=1)
    sizes = [int(x.shape[0]) for x in feeder.dataset()]
    assert sizes == [30, 30, 30, 10]
    np.testing.assert_array_equal(_epochs_plain(feeder), np.arange(100))


def _epochs_plain(feeder):
    return np.concatenate([x.numpy()[:, 0] for x in feeder.dataset()])


def test_the_encoding_is_learned_from_all_partitions_and_matches_pandas():
    frame = _frame()
    feeder = DaskDataFeeder(dd.from_pandas(frame, npartitions=4), batch_size=10, epochs=1, shuffle=False)
    assert feeder.state["frame"]["vocabularies"] == PandasFeeder(frame).state["frame"]["vocabularies"]
    first = next(iter(feeder.dataset()))
    np.testing.assert_array_equal(first["c"].numpy(), [0, 1, 2, 3] * 2 + [0, 1])


def test_dask_arrays_are_fed_too():
    x = da.from_array(np.arange(40, dtype=np.float64).reshape(20, 2), chunks=(6, 1))
    y = da.from_array(np.arange(20), chunks=6)
    feeder = DaskDataFeeder(x, y, batch_size=5, shuffle=False, epochs=1)
    got = np.concatenate([b.numpy() for b, _ in feeder.dataset()])
    np.testing.assert_array_equal(got, np.arange(40).reshape(20, 2))
    assert feeder.input_signature.dtype.name == "float32"


def test_mismatched_partitions_are_a_clear_error():
    with pytest.raises(ValueError, match="partitions"):
        DaskDataFeeder(dd.from_pandas(_frame(), npartitions=4), dd.from_pandas(_frame()["i"], npartitions=2))


def test_estimator_fits_on_dask_and_predicts_on_pandas(tmp_path):
    rng = np.random.default_rng(0)
    n = 400
    frame = pd.DataFrame(
        {"age": rng.uniform(0, 10, n), "city": rng.choice(["Paris", "Oslo"], n), "member": rng.choice([True, False], n)}
    )
    frame["label"] = np.where(frame["member"], "stay", "leave")
    ddf = dd.from_pandas(frame, npartitions=4)
    x, y = ddf[["age", "city", "member"]], ddf["label"]
    assert isinstance(setup_train_data_feeder(x, y), DaskDataFeeder)
    sizes = PandasFeeder(frame[["age", "city", "member"]]).encoding.vocabulary_sizes
    est = Estimator(
        _wide_fn,
        model_dir=str(tmp_path / "m"),
        params={"sizes": sizes},
        config=RunConfig(tf_random_seed=0, log_step_count_steps=0),
    )
    est.fit(x, y, steps=150, batch_size=32)
    predicted = est.predict(frame[["city", "member", "age"]])["class"]
    assert np.mean(predicted == frame["label"].to_numpy()) > 0.95
    assert est.evaluate(x, y, metrics=["accuracy"])["accuracy"] > 0.95


@pytest.mark.timeout(60)
def test_an_empty_frame_is_an_error_even_when_training_forever():
    empty = dd.from_pandas(pd.DataFrame({"a": np.arange(0.0), "b": np.arange(0.0)}), npartitions=1)
    feeder = DaskDataFeeder(empty, None, epochs=None)
    with pytest.raises(ValueError, match=r"Found array with 0 sample\(s\) \(shape=\(0, 2\)\)"):
        next(feeder._stacks())


@pytest.mark.timeout(60)
def test_an_estimator_fitting_on_an_empty_frame_gets_the_error(tmp_path):
    empty = dd.from_pandas(pd.DataFrame({"a": np.arange(0.0), "y": np.arange(0.0)}), npartitions=1)
    est = Estimator(linear_fn, model_dir=str(tmp_path / "m"), config=RunConfig(log_step_count_steps=0))
    with pytest.raises(ValueError, match=r"Found array with 0 sample\(s\)"):
        est.fit(empty[["a"]], empty["y"], steps=5)


def test_x_and_y_with_as_many_partitions_but_other_row_counts_are_an_error_naming_the_partition():
    x = da.from_array(np.arange(20.0).reshape(20, 1), chunks=(5, 1))
    y = da.from_array(np.arange(20.0), chunks=((4, 4, 4, 8),))
    feeder = DaskDataFeeder(x, y, batch_size=2, shuffle=False, epochs=1)
    with pytest.raises(ValueError, match=r"Partition 0 of x has 5 rows but partition 0 of y has 4"):
        list(feeder._batches())


def test_impute_with_a_dask_array_is_an_error_rather_than_ignored():
    with pytest.raises(ValueError, match="impute is supported for dask DataFrames, not dask arrays"):
        DaskDataFeeder(da.zeros((4, 2), chunks=2), None, impute=True)


def test_nan_in_a_dask_array_is_an_error_naming_the_partition_and_the_fix():
    x = da.from_array(np.array([[1.0, 2.0], [3.0, 4.0], [np.nan, 5.0], [6.0, 7.0]]), chunks=2)
    feeder = DaskDataFeeder(x, None, batch_size=2, shuffle=False, epochs=1)
    with pytest.raises(ValueError, match=r"^Input X contains NaN or infinity \(partition 1\)\..*impute='mean'"):
        list(reraising_iterator(feeder.dataset(), feeder))
