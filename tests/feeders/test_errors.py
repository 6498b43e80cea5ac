"""Feeder errors: a feeder's own exception re-raised as itself, per feeder, with no process-wide state."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from feeders import DataFeeder, FeederErrors, StreamingDataFeeder, reraise_feeder_errors, reraising_iterator


def _nan_at(row: int, n: int = 40):
    """A factory of rows whose row `row` holds a NaN."""
    return lambda: (np.array([1.0, np.nan if i == row else 2.0]) for i in range(n))


def _drain(dataset):
    for _ in dataset:
        pass


def test_tf_data_wraps_the_feeders_error_and_the_feeder_keeps_the_original():
    feeder = StreamingDataFeeder(_nan_at(30), batch_size=4)
    with pytest.raises(tf.errors.InvalidArgumentError):
        _drain(feeder.dataset())
    original = feeder.errors.pop()
    assert type(original) is ValueError and str(original).startswith("Input X contains NaN.")
    assert feeder.errors.pop() is None  # popped once


def test_reraise_feeder_errors_raises_the_original_error_as_itself():
    feeder = StreamingDataFeeder(_nan_at(30), batch_size=4)
    with pytest.raises(ValueError, match=r"^Input X contains NaN\.") as raised:
        with reraise_feeder_errors(feeder):
            _drain(feeder.dataset())
    assert not isinstance(raised.value, tf.errors.OpError)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_two_feeders_keep_their_errors_apart():
    failing = StreamingDataFeeder(_nan_at(5), batch_size=4)
    healthy = StreamingDataFeeder(_nan_at(-1), batch_size=4)
    with pytest.raises(tf.errors.InvalidArgumentError):
        _drain(failing.dataset())
    _drain(healthy.dataset())
    assert healthy.errors.pop() is None
    assert failing.errors.pop() is not None


def test_an_op_error_the_feeder_did_not_cause_propagates_unchanged():
    feeder = StreamingDataFeeder(_nan_at(-1), batch_size=4)
    for who in (feeder, DataFeeder(np.zeros((4, 2))), None):
        with pytest.raises(tf.errors.InvalidArgumentError, match="not the feeder"):
            with reraise_feeder_errors(who):
                raise tf.errors.InvalidArgumentError(None, None, "not the feeder")


def test_an_error_left_from_an_earlier_pass_is_forgotten_when_a_new_pass_starts():
    errors = FeederErrors()
    errors.record(ValueError("stale"))
    assert list(errors.watch(iter([1, 2]))) == [1, 2]
    assert errors.pop() is None


def test_reraising_iterator_yields_every_element_then_the_feeders_own_error():
    feeder = StreamingDataFeeder(_nan_at(-1), batch_size=4)
    assert sum(int(x.shape[0]) for x in reraising_iterator(feeder.dataset(), feeder)) == 40
    failing = StreamingDataFeeder(_nan_at(30), batch_size=4)
    with pytest.raises(ValueError, match=r"^Input X contains NaN\."):
        list(reraising_iterator(failing.dataset(), failing))
