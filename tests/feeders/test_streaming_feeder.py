"""StreamingDataFeeder: iterators and generators of rows or batches, of unknown length."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from estimators import Estimator, RunConfig
from feeders import StreamingDataFeeder, setup_train_data_feeder
from tests.helpers import linear_fn


def _sizes(feeder):
    return [int(x.shape[0]) for x, _ in feeder.dataset()]


def test_rows_are_packed_into_whole_batches_with_a_partial_last_one():
    rows = ((np.full(3, i, np.float64), i) for i in range(100))
    feeder = StreamingDataFeeder(rows, batch_size=32)
    batches = list(feeder.dataset())
    assert [int(x.shape[0]) for x, _ in batches] == [32, 32, 32, 4]
    x = np.concatenate([b[0].numpy() for b in batches])
    y = np.concatenate([b[1].numpy() for b in batches])
    np.testing.assert_array_equal(x[:, 0], np.arange(100))
    np.testing.assert_array_equal(y, np.arange(100))
    assert feeder.input_signature.shape == (3,) and feeder.input_signature.dtype.name == "float32"


def test_batches_pass_through_unchanged():
    def batches():
        for i in range(5):
            yield np.full((10, 2), i, np.float32), np.full(10, i)

    feeder = StreamingDataFeeder(batches())
    got = list(feeder.dataset())
    assert feeder.kind == "batches" and len(got) == 5
    np.testing.assert_array_equal(got[3][0].numpy(), np.full((10, 2), 3))


def test_the_seed_two_iterator_form_and_dict_rows():
    xs = iter([{"a": np.ones(2), "b": np.zeros(1)}] * 10)
    ys = iter(range(10))
    feeder = StreamingDataFeeder(xs, ys, batch_size=4)
    first_x, first_y = next(iter(feeder.dataset()))
    assert set(first_x) == {"a", "b"} and first_x["a"].shape == (4, 2)
    np.testing.assert_array_equal(first_y.numpy(), [0, 1, 2, 3])


def test_a_callable_gives_more_epochs_and_an_iterator_only_one():
    make = lambda: ((np.ones(2), 1.0) for _ in range(10))  # noqa: E731
    assert sum(_sizes(StreamingDataFeeder(make, batch_size=4, epochs=3))) == 30
    with pytest.raises(ValueError, match="needs a callable"):
        StreamingDataFeeder(make(), epochs=2)
    assert not StreamingDataFeeder(make, epochs=None).finite


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (iter([]), "The iterator is empty"),
        (iter([np.array(["a", "b"])]), "holds strings"),
        (iter([np.array([1, [2, 3]], dtype=object)]), "ragged"),
        (42, "needs an iterator"),
    ],
)
def test_bad_streams_get_a_clear_error(source, message):
    with pytest.raises((ValueError, TypeError), match=message):
        StreamingDataFeeder(source)


def test_nan_in_a_later_row_surfaces_as_a_clear_error_during_training(tmp_path):
    def rows():
        for i in range(200):
            yield np.array([1.0, np.nan if i == 150 else 2.0, 3.0]), float(i % 3)

    est = Estimator(linear_fn, model_dir=str(tmp_path / "m"), config=RunConfig(log_step_count_steps=0))
    with pytest.raises(ValueError, match="Input X contains NaN"):
        est.fit(rows(), steps=100, batch_size=16)


def test_estimator_trains_from_a_generator_until_it_ends(tmp_path):
    rng = np.random.default_rng(0)
    w = np.array([1.0, -2.0, 0.5])

    def rows():
        for _ in range(3200):
            x = rng.normal(size=3)
            yield x, float(x @ w)

    assert isinstance(setup_train_data_feeder(rows(), None), StreamingDataFeeder)
    est = Estimator(
        linear_fn, model_dir=str(tmp_path / "m"), config=RunConfig(tf_random_seed=0, log_step_count_steps=0)
    )
    est.fit(rows(), steps=10_000, batch_size=16)
    assert est.get_variable_value("global_step") == 200  # 3200 rows / 16: the stream ended
    x = rng.normal(size=(50, 3)).astype(np.float32)
    assert est.evaluate(x, x @ w)["loss"] < 0.05


def test_a_y_iterator_shorter_than_x_is_an_error_not_a_silent_truncation():
    feeder = StreamingDataFeeder(iter([np.ones(3)] * 10), iter(range(7)), batch_size=4)
    with pytest.raises(
        (ValueError, tf.errors.InvalidArgumentError),
        match=r"x and y have different lengths: y ended after 7 element\(s\)",
    ):
        list(feeder.dataset())


def test_an_x_iterator_shorter_than_y_is_an_error():
    feeder = StreamingDataFeeder(iter([np.ones(3)] * 5), iter(range(8)), batch_size=4)
    with pytest.raises(
        (ValueError, tf.errors.InvalidArgumentError),
        match=r"x and y have different lengths: x ended after 5 element\(s\)",
    ):
        list(feeder.dataset())


def test_an_empty_y_iterator_is_an_error_at_once():
    with pytest.raises(ValueError, match="y ended after 0 element"):
        StreamingDataFeeder(iter([np.ones(3)] * 5), iter([]))


def test_a_batch_whose_targets_have_another_number_of_rows_is_an_error():
    with pytest.raises(ValueError, match=r"Batch 0 of the stream has inconsistent numbers of rows: X has 5, y has 4"):
        StreamingDataFeeder(iter([(np.ones((5, 3)), np.zeros(4))]))


def test_a_later_mismatched_batch_surfaces_as_a_clear_error_during_training(tmp_path):
    def batches():
        for i in range(10):
            yield np.ones((8, 3), np.float32), np.zeros(7 if i == 6 else 8, np.float32)

    est = Estimator(linear_fn, model_dir=str(tmp_path / "m"), config=RunConfig(log_step_count_steps=0))
    with pytest.raises(ValueError, match=r"Batch 6 of the stream has inconsistent numbers of rows: X has 8, y has 7"):
        est.fit(batches(), steps=100)


def test_dict_batches_must_agree_on_the_number_of_rows():
    with pytest.raises(ValueError, match=r"X\['a'\] has 4, X\['b'\] has 3"):
        StreamingDataFeeder(iter([({"a": np.ones((4, 2)), "b": np.ones((3, 2))}, np.zeros(4))]))


def test_a_lambda_returning_a_generator_is_a_stream_for_setup_and_the_estimator(tmp_path):
    rows = lambda: ((np.ones(3), 1.0) for _ in range(64))  # noqa: E731
    assert isinstance(setup_train_data_feeder(rows, None), StreamingDataFeeder)
    est = Estimator(linear_fn, model_dir=str(tmp_path / "m"), config=RunConfig(log_step_count_steps=0))
    est.fit(rows, steps=10, batch_size=16)  # a factory: epochs repeat, so 10 steps over 4 batches an epoch
    assert est.get_variable_value("global_step") == 10
