"""StreamingDataFeeder: iterators and generators of rows or batches, of unknown length."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from estimators import Estimator, RunConfig
from feeders import StreamingDataFeeder, reraising_iterator, setup_train_data_feeder
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
    with pytest.raises(ValueError, match=r"^Input X contains NaN\. .*fill or drop those rows in the stream"):
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


def _row_ids(feeder) -> np.ndarray:
    """The first feature of every row fed, in order (each row's id)."""
    return np.concatenate([(x[0] if isinstance(x, tuple) else x).numpy()[:, 0] for x in feeder.dataset()])


def _numbered_rows(n: int = 300):
    """A factory of rows whose features are (i, -i) and whose target is i."""
    return lambda: ((np.array([i, -i], np.float32), i) for i in range(n))


def _numbered_batches(n: int = 300, size: int = 25):
    """The rows of `_numbered_rows`, in batches of `size`."""
    return lambda: (
        (np.stack([np.arange(s, s + size), -np.arange(s, s + size)], 1), np.arange(s, s + size))
        for s in range(0, n, size)
    )


@pytest.mark.parametrize("source", [_numbered_rows(), _numbered_batches()], ids=["rows", "batches"])
def test_the_same_seed_gives_the_same_order_and_another_seed_another(source):
    def feed(seed):
        return _row_ids(StreamingDataFeeder(source, batch_size=20, shuffle=True, seed=seed, shuffle_buffer_size=64))

    np.testing.assert_array_equal(feed(1), feed(1))
    assert not np.array_equal(feed(1), feed(2))
    assert not np.array_equal(feed(1), np.arange(300))


@pytest.mark.parametrize("source", [_numbered_rows(), _numbered_batches()], ids=["rows", "batches"])
def test_every_row_comes_once_per_epoch_and_each_epoch_is_shuffled_differently(source):
    feeder = StreamingDataFeeder(source, batch_size=20, epochs=3, shuffle=True, seed=0, shuffle_buffer_size=64)
    epochs = _row_ids(feeder).reshape(3, 300)
    for epoch in epochs:
        np.testing.assert_array_equal(np.sort(epoch), np.arange(300))
    assert not np.array_equal(epochs[0], epochs[1]) and not np.array_equal(epochs[1], epochs[2])
    np.testing.assert_array_equal(_row_ids(feeder).reshape(3, 300), epochs)  # a second pass: the same epochs


@pytest.mark.parametrize("source", [_numbered_rows(), _numbered_batches()], ids=["rows", "batches"])
def test_targets_stay_with_their_rows_when_shuffled(source):
    feeder = StreamingDataFeeder(source, batch_size=20, shuffle=True, seed=3, shuffle_buffer_size=50)
    for x, y in feeder.dataset():
        np.testing.assert_array_equal(x.numpy()[:, 0], y.numpy())
        np.testing.assert_array_equal(x.numpy()[:, 1], -y.numpy())


def test_a_row_moves_at_most_the_buffer_size_from_its_place():
    ids = _row_ids(StreamingDataFeeder(_numbered_rows(), shuffle=True, seed=0, shuffle_buffer_size=16))
    assert np.all(ids - np.arange(300) <= 16)  # a row leaves the buffer no earlier than 16 rows ahead of its turn


def test_without_shuffle_the_stream_order_is_kept():
    for source in (_numbered_rows(), _numbered_batches()):
        np.testing.assert_array_equal(_row_ids(StreamingDataFeeder(source, batch_size=20, seed=0)), np.arange(300))


def test_shuffled_batches_keep_their_sizes():
    sizes = [10, 30, 5, 30, 30, 7]

    def batches():
        start = 0
        for size in sizes:
            yield np.arange(start, start + size, dtype=np.float32)[:, None], np.zeros(size)
            start += size

    feeder = StreamingDataFeeder(batches, shuffle=True, seed=0, shuffle_buffer_size=20)
    assert [int(x.shape[0]) for x, _ in feeder.dataset()] == sizes
    np.testing.assert_array_equal(np.sort(_row_ids(feeder)), np.arange(sum(sizes)))


def test_dict_rows_are_shuffled_with_their_keys_together():
    rows = lambda: ({"a": np.float32(i), "b": np.full(2, i, np.float32)} for i in range(100))  # noqa: E731
    feeder = StreamingDataFeeder(rows, batch_size=10, shuffle=True, seed=0, shuffle_buffer_size=30)
    batches = list(feeder.dataset())
    a = np.concatenate([b["a"].numpy() for b in batches])
    np.testing.assert_array_equal(np.sort(a), np.arange(100))
    assert not np.array_equal(a, np.arange(100))
    for b in batches:
        np.testing.assert_array_equal(b["b"].numpy(), np.repeat(b["a"].numpy()[:, None], 2, 1))


def test_a_generator_reusing_one_array_for_every_row_is_shuffled_correctly():
    def rows():
        buf = np.empty(2, np.float32)
        for i in range(100):
            buf[:] = (i, -i)
            yield buf

    ids = _row_ids(StreamingDataFeeder(rows, batch_size=10, shuffle=True, seed=0, shuffle_buffer_size=30))
    np.testing.assert_array_equal(np.sort(ids), np.arange(100))


def test_setup_passes_shuffle_and_seed_to_the_streaming_feeder():
    feeder = setup_train_data_feeder(_numbered_rows(), None, batch_size=20, shuffle=True, epochs=1, seed=5)
    assert feeder.shuffle and feeder.seed == 5
    expected = StreamingDataFeeder(_numbered_rows(), batch_size=20, shuffle=True, seed=5)
    np.testing.assert_array_equal(_row_ids(feeder), _row_ids(expected))
    assert not setup_train_data_feeder(_numbered_rows(), None, shuffle=False).shuffle


def test_a_row_of_another_shape_is_an_error_not_a_silent_broadcast():
    feeder = StreamingDataFeeder(iter([np.ones(3), np.ones(3), np.ones(1)]))
    with pytest.raises(
        ValueError, match=r"A row of X in the stream has shape \(1,\), but the first row had shape \(3,\)"
    ):
        list(reraising_iterator(feeder.dataset(), feeder))


def test_a_callable_returning_an_empty_iterator_for_a_later_epoch_is_an_error_not_an_endless_loop():
    calls = []

    def source():
        calls.append(1)
        return iter([np.ones(2)] * (4 if len(calls) == 1 else 0))

    feeder = StreamingDataFeeder(source, epochs=None)
    with pytest.raises(ValueError, match="x\\(\\) returned an empty iterator for epoch 1"):
        list(reraising_iterator(feeder.dataset(), feeder))
