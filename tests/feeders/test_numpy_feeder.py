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


@pytest.mark.parametrize(("x", "name"), [([[1.0, 2.0], [3.0]], "X"), ([[[1.0], [2.0]], [[3.0]]], "X")])
def test_ragged_nested_lists_are_a_clear_error_not_numpys(x, name):
    with pytest.raises(ValueError, match=rf"^{name} is ragged: its rows \(or nested lists\) have different lengths"):
        DataFeeder(x, [0, 1])


def test_ragged_targets_are_a_clear_error():
    with pytest.raises(ValueError, match=r"^y is ragged"):
        DataFeeder(np.zeros((2, 2)), [[0, 1], [1]])


def test_nan_in_features_is_an_error_naming_the_columns_and_how_to_impute():
    x = np.zeros((4, 5))
    x[1, 2] = x[3, 4] = np.nan
    with pytest.raises(
        ValueError,
        match=r"^Input X contains NaN in column\(s\) \[2, 4\]\. Pass fit\(\.\.\., impute='mean'\) to fill them "
        r"with training means \(DataFeeder\(\.\.\., impute='mean'\) when feeding directly\), or drop those rows\.$",
    ):
        DataFeeder(x, np.zeros(4))


def test_nan_in_a_dict_entry_names_the_entry():
    with pytest.raises(ValueError, match=r"Input X\['b'\] contains NaN in column\(s\) \[0\]"):
        DataFeeder({"a": np.zeros((2, 2)), "b": np.array([1.0, np.nan])}, np.zeros(2))


def test_impute_mean_learns_per_column_means_and_applies_them_from_the_state():
    x = np.array([[1.0, np.nan, 5.0], [3.0, np.nan, np.nan]])
    feeder = DataFeeder(x, np.zeros(2), impute="mean")
    assert feeder.state["fill_values"] == [2.0, 0.0, 5.0]  # an all-NaN column is filled with 0
    np.testing.assert_array_equal(feeder.x, [[1, 0, 5], [3, 0, 5]])
    assert np.isnan(x[0, 1])  # the caller's array is left alone
    later = DataFeeder(np.array([[np.nan, 7.0, np.nan]]), state=feeder.state)
    np.testing.assert_array_equal(later.x, [[2, 7, 5]])


def test_impute_learns_per_key_values_for_a_dict_and_leaves_integers_alone():
    x = {"a": np.array([[1.0], [np.nan], [5.0]]), "ids": np.array([1, 2, 3])}
    feeder = DataFeeder(x, np.zeros(3), impute=True)
    assert feeder.state["fill_values"] == {"a": [3.0], "ids": None}
    np.testing.assert_array_equal(feeder.x["a"][:, 0], [1, 3, 5])
    np.testing.assert_array_equal(feeder.x["ids"], [1, 2, 3])


def test_without_nan_and_without_imputation_there_is_no_state():
    assert DataFeeder(np.zeros((2, 2))).state is None


def test_infinity_stays_an_error_when_imputing():
    with pytest.raises(ValueError, match="Input X contains infinity"):
        DataFeeder(np.array([[1.0, np.inf], [np.nan, 1.0]]), impute="mean")


def test_imputation_values_for_another_row_shape_are_an_error():
    state = DataFeeder(np.array([[1.0, np.nan]]), impute="mean").state
    with pytest.raises(ValueError, match=r"rows of shape \(3,\), but the imputation values .* shape \(2,\)"):
        DataFeeder(np.array([[1.0, np.nan, 2.0]]), state=state)


def test_validate_targets_checks_the_number_of_rows_against_the_features():
    from feeders import validate_targets

    assert validate_targets(np.zeros(4), n_samples=4).shape == (4,)
    with pytest.raises(ValueError, match=r"inconsistent numbers of samples: \[4, 3\]"):
        validate_targets(np.zeros(3), n_samples=4)
    with pytest.raises(ValueError, match=r"inconsistent numbers of samples: \[4, 3\]"):
        validate_targets({"a": np.zeros(4), "b": np.zeros(3)}, n_samples=4)
