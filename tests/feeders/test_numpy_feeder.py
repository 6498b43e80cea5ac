"""DataFeeder: whole shuffled batches for training, one ordered pass for evaluation."""

from __future__ import annotations

import numpy as np
import pytest

from feeders import DataFeeder


def _rows(dataset):
    return np.concatenate([x.numpy() for x, _ in dataset])


def test_ordered_pass_covers_every_row_once_with_a_partial_last_batch():
    x = np.arange(100, dtype=np.float32).reshape(50, 2)
    feeder = DataFeeder(x, np.arange(50), batch_size=16, shuffle=False, epochs=1)
    sizes = [int(b.shape[0]) for b, _ in feeder.dataset()]
    assert sizes == [16, 16, 16, 2]
    np.testing.assert_array_equal(_rows(feeder.dataset()), x)


def test_shuffled_training_batches_are_reproducible_with_a_seed_and_keep_rows_aligned():
    x = np.arange(64, dtype=np.float32).reshape(64, 1)
    y = np.arange(64)
    a = [(bx.numpy(), by.numpy()) for bx, by in DataFeeder(x, y, batch_size=8, seed=3).dataset().take(16)]
    b = [(bx.numpy(), by.numpy()) for bx, by in DataFeeder(x, y, batch_size=8, seed=3).dataset().take(16)]
    for (ax, ay), (bx, by) in zip(a, b, strict=True):
        np.testing.assert_array_equal(ay, by)
        np.testing.assert_array_equal(ax, bx)
        np.testing.assert_array_equal(ax[:, 0], ay)
    first_epoch = np.sort(np.concatenate([ax[:, 0] for ax, _ in a[:8]]))
    np.testing.assert_array_equal(first_epoch, np.arange(64))  # each row once per epoch
    assert not np.array_equal(a[0][0], a[8][0])  # a new permutation next epoch


def test_float64_is_fed_as_float32_and_integers_are_kept():
    feeder = DataFeeder(np.zeros((4, 2)), np.zeros(4, np.int64), batch_size=2)
    assert feeder.input_signature.dtype.name == "float32"
    assert feeder.output_signature.dtype.name == "int64"


def test_a_batch_larger_than_the_data_gives_one_batch():
    feeder = DataFeeder(np.zeros((3, 2)), None, batch_size=32)
    batch = next(iter(feeder.dataset()))
    assert batch.shape == (3, 2)


@pytest.mark.parametrize("batch_size", [0, -3, 2.5, True])
def test_invalid_batch_size(batch_size):
    with pytest.raises(ValueError, match="Invalid value for argument `batch_size`"):
        DataFeeder(np.zeros((3, 2)), None, batch_size=batch_size)
