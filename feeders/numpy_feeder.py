"""Feeding in-memory numpy arrays (and dicts of them) to TensorFlow as whole batches.

Training batches come from a shuffled *index* permutation per epoch, gathered one whole batch at a
time (``performance-facts.md`` §1.5: shuffling indices keeps up with a 2-core MLP; element-wise
``shuffle`` does not). Evaluation and prediction walk the rows once, in order, with the last partial
batch included.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import tensorflow as tf
from sklearn.utils.validation import check_array, check_consistent_length

from feeders.signature import Signatures, TensorSignature

__all__ = ["DataFeeder", "validate_features", "validate_targets"]

_AUTOTUNE = tf.data.AUTOTUNE


def _check_batch_size(batch_size: Any) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(
            f"Invalid value for argument `batch_size`. Received: batch_size={batch_size!r}. "
            "Expected a positive integer."
        )
    return int(batch_size)


def _check_epochs(epochs: Any) -> int | None:
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, numbers.Integral) or epochs < 1):
        raise ValueError(
            f"Invalid value for argument `epochs`. Received: epochs={epochs!r}. Expected None or a positive integer."
        )
    return epochs


def _as_float32(array: np.ndarray) -> np.ndarray:
    # float64 inputs are fed as float32, like every TF model expects (the seed warned about float64).
    if array.dtype == np.float64 or array.dtype == np.float16:
        return array.astype(np.float32)
    return array


def _reject_tensors(value: Any, name: str) -> None:
    if isinstance(value, (tf.Tensor, tf.SparseTensor, tf.data.Dataset)):
        raise TypeError(
            f"{name} cannot be a TensorFlow tensor or dataset; pass numpy arrays, or pass input_fn= "
            f"returning a tf.data.Dataset instead."
        )


def validate_features(x: Any, name: str = "X", ensure_2d: bool = True) -> np.ndarray | dict[str, np.ndarray]:
    """Check and convert features: a 2-D or N-D numeric array, or a dict of them.

    Uses scikit-learn's own checks, so the messages are scikit-learn's ("Input X contains NaN.",
    "Expected 2D array, got 1D array instead", "Found array with 0 sample(s) ...").

    Args:
        x: the features.
        name: what to call them in messages.
        ensure_2d: require (n_samples, n_features) or more dimensions; dict entries may be 1-D.

    Returns:
        float64 converted to float32; other numeric dtypes kept.
    """
    _reject_tensors(x, name)
    if x is None:
        raise ValueError(f"{name} is None; pass an array-like of shape (n_samples, n_features).")
    if isinstance(x, Mapping):
        if not x:
            raise ValueError(f"{name} is an empty dict; pass at least one feature array.")
        # Dict entries may be 1-D (one id or value per row), as multi-input models take them.
        out = {str(k): validate_features(v, name=f"{name}[{k!r}]", ensure_2d=False) for k, v in x.items()}
        check_consistent_length(*out.values())
        return out
    if hasattr(x, "tocsr") and hasattr(x, "nnz"):
        raise TypeError(
            f"{name} is a scipy.sparse matrix; the dense numpy feeder cannot take it. "
            "Densify small matrices with X.toarray(), or use feeders.SparseDataFeeder."
        )
    if _is_clean_float_matrix(x, ensure_2d):
        # Fast path (partial_fit, one-row predict): scikit-learn's checks would all pass; skip their cost.
        return _as_float32(x if x.flags.c_contiguous else np.ascontiguousarray(x))
    array = np.asarray(x) if not hasattr(x, "dtype") else x
    if getattr(array, "dtype", None) is not None and array.dtype.kind in "US" and array.ndim >= 1:
        raise ValueError(
            f"{name} holds strings (dtype {array.dtype}); the Estimator needs numeric features. "
            "Encode them first (for example sklearn.preprocessing.OrdinalEncoder), or pass a pandas "
            "DataFrame so that the pandas feeder encodes the string columns."
        )
    if getattr(array, "dtype", None) is not None and array.dtype.kind == "O":
        try:
            array = np.asarray(array, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"{name} has dtype object and holds values that are not numbers ({exc}). "
                "Convert it to a numeric array, or pass a pandas DataFrame with typed columns."
            ) from None
    if not ensure_2d and np.ndim(array) == 0:
        raise ValueError(f"{name} must be an array with one entry per sample; got a scalar.")
    array = check_array(array, dtype="numeric", allow_nd=True, ensure_2d=ensure_2d, input_name=name, estimator=None)
    return _as_float32(np.ascontiguousarray(array))


def _is_clean_float_matrix(x: Any, ensure_2d: bool) -> bool:
    return (
        type(x) is np.ndarray
        and x.dtype in (np.float32, np.float64)
        and (x.ndim >= 2 if ensure_2d else x.ndim >= 1)
        and x.size > 0
        and x.shape[-1] > 0
        and bool(np.isfinite(x).all())
    )


def validate_targets(y: Any, n_samples: int | None = None, name: str = "y") -> np.ndarray | dict[str, np.ndarray]:
    """Check and convert targets: 1-D or N-D numeric arrays, or a dict of them."""
    _reject_tensors(y, name)
    if isinstance(y, Mapping):
        return {str(k): validate_targets(v, n_samples, name=f"{name}[{k!r}]") for k, v in y.items()}
    array = np.asarray(y)
    if array.dtype.kind in "USO":
        if array.dtype.kind == "O":
            try:
                array = array.astype(np.float64)
            except (TypeError, ValueError):
                array = None
        if array is None or array.dtype.kind in "US":
            raise ValueError(
                f"{name} holds strings or objects (dtype {np.asarray(y).dtype}); Estimator needs numeric targets. "
                "Encode class labels with sklearn.preprocessing.LabelEncoder, or use a canned classifier, "
                "which accepts string labels."
            )
    if array.ndim == 0:
        raise ValueError(f"{name} must be an array of shape (n_samples,) or (n_samples, n_outputs); got a scalar.")
    array = check_array(array, dtype="numeric", ensure_2d=False, allow_nd=True, input_name=name, estimator=None)
    return _as_float32(np.ascontiguousarray(array))


class DataFeeder:
    """Feeds numpy arrays, or dicts of numpy arrays, as whole `tf.data` batches.

    Args:
        x: array-like of shape (n_samples, n_features) or (n_samples, ...), or a dict of them.
        y: array-like of shape (n_samples,) or (n_samples, n_outputs), a dict of them, or None.
        batch_size: rows per batch, default=32.
        shuffle: shuffle rows each epoch (training), default=True.
        epochs: passes over the data; None repeats forever (training), default=None.
        seed: seed for the per-epoch permutations; the same seed gives the same batches.

    Example:
        >>> feeder = DataFeeder(np.zeros((100, 3)), np.zeros(100), batch_size=32, shuffle=False, epochs=1)
        >>> [int(x.shape[0]) for x, _ in feeder.dataset()]
        [32, 32, 32, 4]
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
        self.x = validate_features(x)
        self.y = None if y is None else validate_targets(y)
        if self.y is not None:
            check_consistent_length(*_leaves(self.x)[:1], *_leaves(self.y))
        self.batch_size = _check_batch_size(batch_size)
        _check_epochs(epochs)
        self.shuffle = bool(shuffle)
        self.epochs = epochs
        self.seed = int(seed) if seed is not None else int(np.random.randint(0, 2**31 - 1))
        self.n_samples = int(_leaves(self.x)[0].shape[0])
        self._tensors: tuple[Any, Any] | None = None

    @property
    def finite(self) -> bool:
        return self.epochs is not None

    @property
    def state(self) -> None:
        return None

    @property
    def input_signature(self) -> Signatures:
        """Signature of the features (per key for dicts)."""
        return _signature(self.x)

    @property
    def output_signature(self) -> Signatures:
        """Signature of the targets, or None."""
        return _signature(self.y)

    def dataset(self) -> tf.data.Dataset:
        """A `tf.data.Dataset` of `(features, targets)` batches (or features alone when y is None)."""
        x, y = self._device_arrays()
        n, batch = self.n_samples, min(self.batch_size, self.n_samples)

        def gather(idx):
            feats = tf.nest.map_structure(lambda a: tf.gather(a, idx), x)
            if y is None:
                return feats
            return feats, tf.nest.map_structure(lambda a: tf.gather(a, idx), y)

        if self.shuffle:
            seed = self.seed
            full = n // batch * batch  # training drops each epoch's remainder; a new permutation covers it next time

            def epoch_batches(epoch):
                perm = tf.random.experimental.stateless_shuffle(
                    tf.range(n, dtype=tf.int64), seed=tf.stack([tf.constant(seed, tf.int64), epoch])
                )
                return tf.data.Dataset.from_tensor_slices(tf.reshape(perm[:full], [-1, batch]))

            epochs = tf.data.Dataset.range(self.epochs) if self.epochs else tf.data.Dataset.range(2**62)
            indices = epochs.flat_map(epoch_batches)
        else:
            starts = tf.data.Dataset.range(0, n, batch).map(lambda s: tf.range(s, tf.minimum(s + batch, n)))
            indices = starts.repeat(self.epochs) if self.epochs else starts.repeat()
        return indices.map(gather, num_parallel_calls=_AUTOTUNE, deterministic=True).prefetch(_AUTOTUNE)

    def _device_arrays(self) -> tuple[Any, Any]:
        """The arrays as (non-trainable) variables, made once per feeder.

        A dataset function that captures an eager *constant* serialises its value every time an
        iterator is made (0.4 s per iter() at 1M x 28 floats); a captured variable is a handle.
        """
        if self._tensors is None:
            with tf.device("/cpu:0"):
                as_var = lambda a: tf.Variable(a, trainable=False)  # noqa: E731
                x = tf.nest.map_structure(as_var, self.x)
                y = None if self.y is None else tf.nest.map_structure(as_var, self.y)
            self._tensors = (x, y)
        return self._tensors

    def numpy_batches(self) -> Iterator[Any]:
        """Ordered batches of the features as numpy views, without going through tf.data (for predict)."""
        for start in range(0, self.n_samples, self.batch_size):
            stop = start + self.batch_size
            yield _slice(self.x, start, stop)


def _leaves(value: Any) -> list[np.ndarray]:
    if isinstance(value, Mapping):
        return list(value.values())
    return [value]


def _slice(value: Any, start: int, stop: int) -> Any:
    if isinstance(value, Mapping):
        return {k: v[start:stop] for k, v in value.items()}
    return value[start:stop]


def _signature(value: Any) -> Signatures:
    if value is None:
        return None
    if isinstance(value, Mapping):
        return {k: TensorSignature.from_array(v) for k, v in value.items()}
    return TensorSignature.from_array(value)
