"""TensorSignature: recorded at fit, checked later, serialisable."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from feeders import (
    TensorSignature,
    check_signatures_compatible,
    signature_from_json,
    signature_to_json,
    signatures_from_spec,
)


def test_signature_drops_the_batch_dimension():
    sig = TensorSignature.from_array(np.zeros((10, 8, 8), np.float32))
    assert sig == TensorSignature(tf.float32, (8, 8), False)
    assert "float32 with shape (n_samples, 8, 8)" == sig.describe()


def test_unknown_dimensions_are_compatible_and_sparsity_must_match():
    a = TensorSignature(tf.float32, (None, 3))
    assert a.is_compatible_with(TensorSignature(tf.float32, (7, 3)))
    assert not a.is_compatible_with(TensorSignature(tf.float32, (7, 3), True))
    assert not a.is_compatible_with(TensorSignature(tf.int32, (7, 3)))


@pytest.mark.parametrize(
    ("expected", "received", "ok"),
    [
        (tf.float32, tf.int64, True),
        (tf.float32, tf.bool, True),
        (tf.int64, tf.int32, True),
        (tf.int64, tf.float32, False),
        (tf.float32, tf.string, False),
    ],
)
def test_casting_rules(expected, received, ok):
    assert TensorSignature(expected, (3,)).can_cast_from(TensorSignature(received, (3,))) is ok


def test_signatures_round_trip_through_json():
    sigs = {"a": TensorSignature(tf.int64, (None,)), "b": TensorSignature(tf.float32, (4,), True)}
    assert signature_from_json(signature_to_json(sigs)) == sigs
    single = TensorSignature(tf.float32, (4,))
    assert signature_from_json(signature_to_json(single)) == single


def test_signatures_from_dataset_specs():
    spec = {"x": tf.TensorSpec([None, 3], tf.float32), "s": tf.SparseTensorSpec([None, 10], tf.float32)}
    sigs = signatures_from_spec(spec)
    assert sigs["x"].shape == (3,) and sigs["s"].is_sparse


@pytest.mark.parametrize(
    ("expected", "received", "message"),
    [
        (
            TensorSignature(tf.float32, (5,)),
            TensorSignature(tf.float32, (3,)),
            "X has 3 features, but Est is expecting 5 features as input.",
        ),
        (
            {"a": TensorSignature(tf.float32, (1,))},
            {"b": TensorSignature(tf.float32, (1,))},
            r"missing \['a'\], unexpected \['b'\]",
        ),
        ({"a": TensorSignature(tf.float32, (1,))}, TensorSignature(tf.float32, (1,)), "must be a dict of arrays"),
        (
            TensorSignature(tf.float32, (8, 8)),
            TensorSignature(tf.float32, (64,)),
            r"expected float32 with shape \(n_samples, 8, 8\), received float32 with shape \(n_samples, 64\)",
        ),
    ],
)
def test_incompatible_signatures_name_the_problem(expected, received, message):
    with pytest.raises(ValueError, match=message):
        check_signatures_compatible(expected, received, "X", "Est")
