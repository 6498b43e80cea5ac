"""Feeding scipy.sparse matrices to TensorFlow as whole `tf.SparseTensor` batches, never densified.

The matrix is converted to CSR with sorted, de-duplicated indices once, and its three arrays
(``indptr``, ``indices``, ``data``) become tensors. Each batch is a vector of row ids, drawn from the
same per-epoch index permutation as :class:`~feeders.numpy_feeder.DataFeeder` uses (one
``stateless_shuffle`` per epoch, seeded; training drops each epoch's remainder, an ordered pass keeps
the partial last batch). The batch's non-zeros are then gathered in-graph with a handful of
vectorised ops (``tf.ragged.range`` over the rows' ``indptr`` spans, then ``tf.gather``), so the cost
of a batch is proportional to its non-zeros, not to ``batch_size * n_features``, and no Python runs
per row or per batch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import tensorflow as tf
from sklearn.utils.validation import check_array, check_consistent_length

from feeders._validation import check_epochs, check_positive_int
from feeders.base import prefetched
from feeders.numpy_feeder import validate_targets
from feeders.signature import Signatures, TensorSignature, signature_of

__all__ = ["SparseDataFeeder", "validate_sparse_features"]

_AUTOTUNE = tf.data.AUTOTUNE


def validate_sparse_features(x: Any, name: str = "X") -> sp.csr_matrix | sp.csr_array:
    """Check a scipy.sparse matrix (or sparse array) and return it as canonical CSR, still sparse.

    Uses scikit-learn's `check_array`, so the messages are scikit-learn's ("Input X contains NaN. ...",
    "Found array with 0 sample(s) (shape=(0, 5)) while a minimum of 1 is required.",
    "Complex data not supported"). The input is never modified and never densified.

    Args:
        x: scipy.sparse matrix or array of shape (n_samples, n_features), in any format (CSR is used
            as is, other formats are converted to CSR once).
        name: what the input is called in error messages, default="X".

    Returns:
        A CSR matrix (or `csr_array` for sparse-array input) with sorted indices and no duplicate
        entries. Floating-point and boolean data become float32; integer data keeps its dtype.

    Raises:
        TypeError: when `x` is not a scipy.sparse matrix or array.
        ValueError: for NaN or infinite values, no rows or no columns, or complex data.

    Example:
        >>> validate_sparse_features(sp.random(4, 3, density=0.5, format="csc")).format
        'csr'
    """
    if not sp.issparse(x):
        hint = (
            " For dense arrays use feeders.DataFeeder." if isinstance(x, np.ndarray) or hasattr(x, "__array__") else ""
        )
        raise TypeError(
            f"{name} must be a scipy.sparse matrix or array of shape (n_samples, n_features); "
            f"received {type(x).__module__}.{type(x).__qualname__}.{hint}"
        )
    original = x
    try:
        x = check_array(x, accept_sparse=["csr"], dtype="numeric", input_name=name, estimator=None)
    except ValueError as exc:
        if "contains NaN" not in str(exc) and "contains infinity" not in str(exc):
            raise
        raise ValueError(
            f"{exc} A scipy.sparse matrix is fed as it is (impute='mean' takes numpy arrays or DataFrames): replace "
            f"those values in {name}.data, or drop those rows."
        ) from None
    if (x.dtype.kind == "f" and x.dtype != np.float32) or x.dtype.kind == "b":
        x = x.astype(np.float32)  # astype copies: the caller's matrix is left alone below
    if not x.has_canonical_format:
        if x is original:
            x = x.copy()
        x.sum_duplicates()  # also sorts the column indices of every row
    return x


class SparseDataFeeder:
    """Feeds a scipy.sparse matrix as `tf.SparseTensor` batches, without ever densifying it.

    Conforms to the :class:`~feeders.base.Feeder` protocol exactly like
    :class:`~feeders.numpy_feeder.DataFeeder`: same arguments, same batching (a seeded permutation
    per epoch when shuffling, one ordered pass with the partial last batch otherwise), same target
    validation. Each element is `(features, targets)`, or `features` alone when `y` is None, where
    `features` is a `tf.SparseTensor` of dense shape `[batch, n_features]` in canonical (row-major)
    order and `targets` a dense tensor. The batch dimension of the element spec is unknown (None),
    so full and partial batches share one traced function.

    Args:
        x: scipy.sparse matrix or array of shape (n_samples, n_features); CSR is used as is, CSC and
            other formats are converted to CSR once.
        y: array-like of shape (n_samples,) or (n_samples, n_outputs), a dict of them, or None.
        batch_size: rows per batch, default=32.
        shuffle: shuffle rows each epoch (training), default=True.
        epochs: passes over the data; None repeats forever (training), default=None.
        seed: seed for the per-epoch permutations; the same seed gives the same batches.

    Attributes:
        x: the validated CSR matrix (float32 for floating-point or boolean input).
        y: the validated targets, or None.
        n_samples: number of rows.
        n_features: number of columns.

    Example:
        >>> x = sp.random(100, 1000, density=0.01, format="csr", random_state=0)
        >>> feeder = SparseDataFeeder(x, np.zeros(100), batch_size=32, shuffle=False, epochs=1)
        >>> [f.dense_shape.numpy().tolist() for f, _ in feeder.dataset()]
        [[32, 1000], [32, 1000], [32, 1000], [4, 1000]]
    """

    def __init__(
        self,
        x: Any,
        y: Any = None,
        batch_size: int = 32,
        shuffle: bool = True,
        epochs: int | None = None,
        seed: int | None = None,
    ) -> None:
        self.x = validate_sparse_features(x)
        self.y = None if y is None else validate_targets(y)
        if self.y is not None:
            check_consistent_length(self.x, *(self.y.values() if isinstance(self.y, dict) else [self.y]))
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.shuffle = bool(shuffle)
        self.epochs = check_epochs(epochs)
        self.seed = int(seed) if seed is not None else int(np.random.randint(0, 2**31 - 1))
        self.n_samples, self.n_features = (int(d) for d in self.x.shape)
        self._tensors: tuple[tf.Tensor, tf.Tensor, tf.Tensor] | None = None

    @property
    def finite(self) -> bool:
        """Whether `dataset()` ends (a number of epochs) or repeats forever (`epochs=None`)."""
        return self.epochs is not None

    @property
    def state(self) -> None:
        """None: a sparse matrix is fed by position, with no encoding to learn."""
        return None

    @property
    def input_signature(self) -> Signatures:
        """Sparse signature of the features: dtype and `(n_features,)`."""
        return TensorSignature(self.x.dtype, (self.n_features,), is_sparse=True)

    @property
    def output_signature(self) -> Signatures:
        """Signature of the targets (per key for dicts), or None."""
        return signature_of(self.y)

    def dataset(self) -> tf.data.Dataset:
        """A `tf.data.Dataset` of `(SparseTensor, targets)` batches (or SparseTensors alone when y is None)."""
        indptr, indices, values = self._csr_tensors()
        y = None if self.y is None else tf.nest.map_structure(tf.constant, self.y)
        n, n_features, batch = self.n_samples, self.n_features, min(self.batch_size, self.n_samples)

        def gather(rows: tf.Tensor) -> Any:
            # Forget the static batch size, so full and partial batches have one element spec.
            rows = tf.compat.v1.placeholder_with_default(rows, [None])
            spans = tf.ragged.range(tf.gather(indptr, rows), tf.gather(indptr, rows + 1))
            positions = spans.flat_values  # where each of the batch's non-zeros sits in indices/values
            coords = tf.stack([spans.value_rowids(), tf.gather(indices, positions)], axis=1)
            shape = tf.stack([tf.shape(rows, out_type=tf.int64)[0], tf.constant(n_features, tf.int64)])
            features = tf.SparseTensor(coords, tf.gather(values, positions), shape)
            if y is None:
                return features
            return features, tf.nest.map_structure(lambda a: tf.gather(a, rows), y)

        if self.shuffle:
            seed = self.seed
            full = n // batch * batch  # training drops each epoch's remainder; a new permutation covers it next time

            def epoch_batches(epoch: tf.Tensor) -> tf.data.Dataset:
                perm = tf.random.experimental.stateless_shuffle(
                    tf.range(n, dtype=tf.int64), seed=tf.stack([tf.constant(seed, tf.int64), epoch])
                )
                return tf.data.Dataset.from_tensor_slices(tf.reshape(perm[:full], [-1, batch]))

            epochs = tf.data.Dataset.range(self.epochs) if self.epochs else tf.data.Dataset.range(2**62)
            row_ids = epochs.flat_map(epoch_batches)
        else:
            starts = tf.data.Dataset.range(0, n, batch).map(lambda s: tf.range(s, tf.minimum(s + batch, n)))
            row_ids = starts.repeat(self.epochs) if self.epochs else starts.repeat()
        return prefetched(row_ids.map(gather, num_parallel_calls=_AUTOTUNE, deterministic=True))

    def _csr_tensors(self) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        # Copied into TensorFlow once per feeder, not once per dataset(): the Estimator calls input_fn
        # at every fit/evaluate, and a large matrix's arrays are hundreds of MB.
        if self._tensors is None:
            with tf.init_scope():
                self._tensors = (
                    tf.constant(self.x.indptr, tf.int64),
                    tf.constant(self.x.indices, tf.int64),
                    tf.constant(self.x.data),
                )
        return self._tensors

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_tensors": None}  # the TensorFlow copies are rebuilt on demand
