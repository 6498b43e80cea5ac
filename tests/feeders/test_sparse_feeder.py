"""SparseDataFeeder: scipy.sparse rows as whole tf.SparseTensor batches, never densified."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import tensorflow as tf

from feeders.base import Feeder
from feeders.sparse_feeder import SparseDataFeeder

_REPO = Path(__file__).resolve().parents[2]


def _matrix(n_rows=50, n_features=30, density=0.1, seed=0, fmt="csr"):
    return sp.random(n_rows, n_features, density=density, format=fmt, random_state=seed, dtype=np.float64)


def _dense(batch):
    return tf.sparse.to_dense(batch).numpy()


def test_batches_equal_the_corresponding_dense_rows():
    keep = np.ones(50)
    keep[[3, 4]] = 0
    x = (sp.diags(keep) @ _matrix()).tocsr()  # rows 3 and 4 have no stored values
    x.eliminate_zeros()
    assert x[3].nnz == 0
    feeder = SparseDataFeeder(x, np.arange(50), batch_size=8, seed=0)
    for batch, rows in feeder.dataset().take(12):
        assert tuple(batch.dense_shape.numpy()) == (8, 30)
        np.testing.assert_allclose(_dense(batch), x[rows.numpy()].toarray().astype(np.float32))


def test_batches_are_canonically_ordered_sparse_tensors():
    feeder = SparseDataFeeder(_matrix(), np.arange(50), batch_size=16, seed=1)
    batch, _ = next(iter(feeder.dataset()))
    reordered = tf.sparse.reorder(batch)
    np.testing.assert_array_equal(batch.indices.numpy(), reordered.indices.numpy())


def test_ordered_pass_covers_every_row_once_with_a_partial_last_batch():
    x = _matrix()
    feeder = SparseDataFeeder(x, np.arange(50), batch_size=16, shuffle=False, epochs=1)
    batches = list(feeder.dataset())
    assert [int(b.dense_shape[0]) for b, _ in batches] == [16, 16, 16, 2]
    np.testing.assert_array_equal(np.concatenate([r.numpy() for _, r in batches]), np.arange(50))
    dense = np.concatenate([_dense(b) for b, _ in batches])
    np.testing.assert_allclose(dense, x.toarray().astype(np.float32))


def test_shuffled_batches_are_reproducible_with_a_seed_and_keep_rows_aligned_with_targets():
    x = sp.csr_matrix(np.arange(1, 65, dtype=np.float32).reshape(64, 1))  # row i holds i + 1
    y = np.arange(64)

    def take(seed):
        return [
            (_dense(bx), by.numpy()) for bx, by in SparseDataFeeder(x, y, batch_size=8, seed=seed).dataset().take(16)
        ]

    a, b = take(3), take(3)
    for (ax, ay), (bx, by) in zip(a, b, strict=True):
        np.testing.assert_array_equal(ax, bx)
        np.testing.assert_array_equal(ay, by)
        np.testing.assert_array_equal(ax[:, 0], ay + 1)
    first_epoch = np.sort(np.concatenate([ay for _, ay in a[:8]]))
    np.testing.assert_array_equal(first_epoch, np.arange(64))  # each row once per epoch
    assert not np.array_equal(a[0][1], a[8][1])  # a new permutation next epoch
    assert not all(np.array_equal(p[1], q[1]) for p, q in zip(a, take(4), strict=True))


def test_training_drops_each_epochs_remainder():
    feeder = SparseDataFeeder(_matrix(), np.arange(50), batch_size=16, seed=0, epochs=2)
    assert [int(b.dense_shape[0]) for b, _ in feeder.dataset()] == [16] * 6


def test_element_spec_has_an_unknown_batch_dimension():
    for shuffle in (True, False):
        features, targets = SparseDataFeeder(_matrix(), np.arange(50), shuffle=shuffle).dataset().element_spec
        assert features == tf.SparseTensorSpec([None, 30], tf.float32)
        assert targets.shape.as_list() == [None]


def test_csc_input_gives_the_same_batches_as_csr():
    x = _matrix(fmt="csc")
    csc = SparseDataFeeder(x, np.arange(50), batch_size=8, shuffle=False, epochs=1)
    csr = SparseDataFeeder(x.tocsr(), np.arange(50), batch_size=8, shuffle=False, epochs=1)
    for (a, _), (b, _) in zip(csc.dataset(), csr.dataset(), strict=True):
        np.testing.assert_array_equal(a.indices.numpy(), b.indices.numpy())
        np.testing.assert_array_equal(a.values.numpy(), b.values.numpy())


def test_sparse_array_input_is_accepted():
    x = sp.csr_array(_matrix())
    feeder = SparseDataFeeder(x, None, batch_size=50, shuffle=False, epochs=1)
    (batch,) = list(feeder.dataset())
    np.testing.assert_allclose(_dense(batch), x.toarray().astype(np.float32))


def test_unsorted_and_duplicate_indices_are_summed_without_modifying_the_input():
    x = sp.csr_matrix((np.array([1.0, 2.0, 5.0]), np.array([2, 0, 2]), np.array([0, 3])), shape=(1, 3))
    feeder = SparseDataFeeder(x, None, batch_size=1, shuffle=False, epochs=1)
    batch = next(iter(feeder.dataset()))
    np.testing.assert_array_equal(batch.indices.numpy(), [[0, 0], [0, 2]])
    np.testing.assert_array_equal(batch.values.numpy(), [2.0, 6.0])
    np.testing.assert_array_equal(x.indices, [2, 0, 2])  # the caller's matrix is untouched


def test_features_alone_when_y_is_none():
    feeder = SparseDataFeeder(_matrix(), None, batch_size=8, epochs=1)
    assert isinstance(feeder.dataset().element_spec, tf.SparseTensorSpec)
    assert feeder.output_signature is None


def test_conforms_to_the_feeder_protocol_with_a_sparse_float32_signature():
    feeder = SparseDataFeeder(_matrix(), np.arange(50, dtype=np.int64), batch_size=8)
    assert isinstance(feeder, Feeder)
    assert (feeder.batch_size, feeder.n_samples, feeder.finite, feeder.state) == (8, 50, False, None)
    assert repr(feeder.input_signature) == "TensorSignature(dtype=float32, shape=(30,), is_sparse=True)"
    assert repr(feeder.output_signature) == "TensorSignature(dtype=int64, shape=(), is_sparse=False)"
    assert SparseDataFeeder(_matrix(), epochs=1).finite


def test_integer_data_keeps_its_dtype_and_boolean_data_becomes_float32():
    x = _matrix()
    assert SparseDataFeeder((x > 0.5).astype(np.int64)).input_signature.dtype == tf.int64
    assert SparseDataFeeder(x > 0.5).input_signature.dtype == tf.float32


def test_dataset_copies_the_matrix_into_tensorflow_once_per_feeder():
    feeder = SparseDataFeeder(_matrix(), batch_size=8)
    feeder.dataset()
    first = feeder._csr_tensors()
    feeder.dataset()
    assert all(a is b for a, b in zip(first, feeder._csr_tensors(), strict=True))


def test_a_pickled_feeder_gives_the_same_batches():
    feeder = SparseDataFeeder(_matrix(), np.arange(50), batch_size=8, seed=2)
    next(iter(feeder.dataset()))
    clone = pickle.loads(pickle.dumps(feeder))
    for (a, ra), (b, rb) in zip(feeder.dataset().take(3), clone.dataset().take(3), strict=True):
        np.testing.assert_array_equal(ra.numpy(), rb.numpy())
        np.testing.assert_array_equal(_dense(a), _dense(b))


def test_an_ordered_pass_gives_the_rows_in_order_as_float32_sparse_batches():
    x = _matrix()
    batches = list(SparseDataFeeder(x, batch_size=16, shuffle=False, epochs=1).dataset())
    assert [tuple(b.dense_shape.numpy()) for b in batches] == [(16, 30), (16, 30), (16, 30), (2, 30)]
    assert all(isinstance(b, tf.SparseTensor) and b.dtype == tf.float32 for b in batches)
    np.testing.assert_allclose(np.concatenate([_dense(b) for b in batches]), x.toarray().astype(np.float32))


def test_dense_input_raises_a_type_error_naming_what_was_received():
    with pytest.raises(TypeError, match=r"scipy.sparse matrix .* received numpy.ndarray.*DataFeeder"):
        SparseDataFeeder(np.zeros((3, 2)))


def test_a_tensorflow_sparse_tensor_raises_a_type_error():
    with pytest.raises(TypeError, match="SparseTensor"):
        SparseDataFeeder(tf.sparse.from_dense(tf.eye(3)))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_values_are_rejected(bad):
    x = _matrix()
    x.data[5] = bad
    with pytest.raises(ValueError, match=r"^Input X contains (NaN|infinity).* replace those values in X\.data"):
        SparseDataFeeder(x)


def test_no_rows_is_rejected_with_scikit_learn_wording():
    with pytest.raises(ValueError, match=r"Found array with 0 sample\(s\) \(shape=\(0, 5\)\) while a minimum of 1"):
        SparseDataFeeder(sp.csr_matrix((0, 5)))


def test_no_columns_is_rejected_with_scikit_learn_wording():
    with pytest.raises(ValueError, match=r"Found array with 0 feature\(s\) \(shape=\(5, 0\)\) while a minimum of 1"):
        SparseDataFeeder(sp.csr_matrix((5, 0)))


def test_x_and_y_of_different_lengths_are_rejected():
    with pytest.raises(ValueError, match=r"inconsistent numbers of samples: \[50, 49\]"):
        SparseDataFeeder(_matrix(), np.zeros(49))


def test_complex_data_is_rejected():
    with pytest.raises(ValueError, match="Complex data not supported"):
        SparseDataFeeder(_matrix() * 1j)


def test_string_targets_are_rejected():
    with pytest.raises(ValueError, match="y holds strings"):
        SparseDataFeeder(_matrix(), np.array(["a"] * 50))


@pytest.mark.parametrize("batch_size", [0, -3, 2.5, True])
def test_invalid_batch_size(batch_size):
    with pytest.raises(ValueError, match="Invalid value for argument `batch_size`"):
        SparseDataFeeder(_matrix(), batch_size=batch_size)


@pytest.mark.parametrize("epochs", [0, -1, 1.5, True])
def test_invalid_epochs(epochs):
    with pytest.raises(ValueError, match="Invalid value for argument `epochs`"):
        SparseDataFeeder(_matrix(), epochs=epochs)


def test_a_linear_model_trains_on_it_through_the_estimator(tmp_path):
    from estimators import Estimator, RunConfig, optimize_loss

    rng = np.random.default_rng(0)
    n_samples, n_features = 2000, 5000
    x = sp.random(n_samples, n_features, density=0.005, format="csr", random_state=0, dtype=np.float32)
    w_true = rng.normal(size=n_features) * (rng.random(n_features) < 0.5)
    y = (x @ w_true > np.median(x @ w_true)).astype(np.int64)
    feeder = SparseDataFeeder(x, y, batch_size=64, seed=0)

    def model_fn(features, targets):
        w = tf.Variable(tf.zeros([n_features, 1]), name="w")
        b = tf.Variable(0.0, name="b")
        logits = tf.squeeze(tf.sparse.sparse_dense_matmul(features, w), -1) + b
        loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(tf.cast(targets, tf.float32), logits))
        return tf.cast(logits > 0, tf.int64), loss, optimize_loss(loss, "Adam", 0.05)

    est = Estimator(model_fn, model_dir=str(tmp_path), config=RunConfig(tf_random_seed=0, log_step_count_steps=0))
    est.fit(input_fn=lambda: feeder.dataset(), steps=200)
    result = est.evaluate(
        input_fn=lambda: SparseDataFeeder(x, y, batch_size=256, shuffle=False, epochs=1).dataset(), metrics=["accuracy"]
    )
    assert result["global_step"] == 200
    assert result["accuracy"] > 0.9


def test_a_large_matrix_yields_its_first_batch_without_densifying():
    # 200_000 x 50_000 float32 would be 40 GB dense; 1e-4 density is 1M non-zeros (~12 MB as CSR).
    script = textwrap.dedent(
        """
        import os, resource
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        import numpy as np, scipy.sparse as sp, tensorflow as tf
        from feeders.sparse_feeder import SparseDataFeeder
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        rng = np.random.default_rng(0)
        n, d, nnz = 200_000, 50_000, 1_000_000
        x = sp.csr_matrix((rng.random(nnz), (rng.integers(0, n, nnz), rng.integers(0, d, nnz))), shape=(n, d))
        batch, rows = next(iter(SparseDataFeeder(x, np.arange(n), batch_size=256, seed=0).dataset()))
        assert tuple(batch.dense_shape.numpy()) == (256, d)
        np.testing.assert_allclose(tf.sparse.to_dense(batch).numpy(), x[rows.numpy()].toarray(), rtol=1e-6)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print((after - before) * 1024)  # ru_maxrss is in KiB on Linux
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=_REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    growth = int(out.stdout.strip().splitlines()[-1])
    assert growth < 1.5e9, f"peak RSS grew by {growth / 1e9:.2f} GB"
