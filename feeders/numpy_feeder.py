"""Feeding in-memory numpy arrays (and dicts of them) to TensorFlow as whole batches.

Training batches come from a shuffled *index* permutation per epoch, gathered one whole batch at a
time: on 2 cores that feeds about 10,000 batches of 256 a second, against about 630 for an
element-wise `from_tensor_slices(...).shuffle(n).batch(256)` (docs/benchmarks.md, feeders).
Evaluation and prediction walk the rows once, in order, with the last partial batch included.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf
from sklearn.utils.validation import check_array, check_consistent_length

from feeders._validation import check_epochs, check_impute, check_positive_int
from feeders.base import prefetched, state_kind
from feeders.rows import n_rows
from feeders.signature import Signatures, signature_of

__all__ = ["DataFeeder", "validate_features", "validate_targets"]

_AUTOTUNE = tf.data.AUTOTUNE


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


def validate_features(
    x: Any, name: str = "X", ensure_2d: bool = True, allow_nan: bool = False
) -> np.ndarray | dict[str, np.ndarray]:
    """Check and convert features: a 2-D or N-D numeric array, or a dict of them.

    Uses scikit-learn's own checks, so the messages are scikit-learn's ("Expected 2D array, got 1D
    array instead", "Found array with 0 sample(s) ..."); a NaN is reported as "Input X contains NaN
    in column(s) [2]. Pass fit(..., impute='mean') ..." (scikit-learn's phrase, plus where and the fix).

    Args:
        x: the features.
        name: what to call them in messages.
        ensure_2d: require (n_samples, n_features) or more dimensions; dict entries may be 1-D.
        allow_nan: let NaN through (for imputation); infinity is still an error.

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
        out = {
            str(k): validate_features(v, name=f"{name}[{k!r}]", ensure_2d=False, allow_nan=allow_nan)
            for k, v in x.items()
        }
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
    array = _as_array(x, name) if not hasattr(x, "dtype") else x
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
    try:
        array = check_array(
            array,
            dtype="numeric",
            allow_nd=True,
            ensure_2d=ensure_2d,
            ensure_all_finite="allow-nan" if allow_nan else True,
            input_name=name,
            estimator=None,
        )
    except ValueError as exc:
        if "contains NaN" not in str(exc):
            raise
        raise ValueError(
            f"Input {name} contains NaN in column(s) {_nan_columns(array)}. Pass fit(..., impute='mean') to fill them "
            "with training means (DataFeeder(..., impute='mean') when feeding directly), or drop those rows."
        ) from None
    return _as_float32(np.ascontiguousarray(array))


def _as_array(x: Any, name: str) -> np.ndarray:
    """`np.asarray`, with a clear error for ragged nested lists instead of numpy's."""
    try:
        return np.asarray(x)
    except ValueError as exc:
        if "inhomogeneous" not in str(exc):
            raise
        raise ValueError(
            f"{name} is ragged: its rows (or nested lists) have different lengths, so it is not an array of shape "
            "(n_samples, n_features). Pad or truncate the rows to one length, or pass the variable-length part "
            f"as its own feature. (numpy: {exc})"
        ) from None


def _nan_columns(array: Any, limit: int = 10) -> str:
    """Where the NaN are: column indices of a 2-D array (index tuples beyond 2-D), at most `limit` listed."""
    try:
        nan = np.isnan(np.asarray(array, dtype=np.float64))
    except (TypeError, ValueError):
        return "[?]"
    if nan.ndim <= 1:
        return "[0]" if nan.any() else "[]"
    where = np.argwhere(nan.any(axis=0))
    found = [int(w[0]) if len(w) == 1 else tuple(int(i) for i in w) for w in where[:limit]]
    more = f" and {len(where) - limit} more" if len(where) > limit else ""
    return f"{found}{more}"


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
    """Check and convert targets: 1-D or N-D numeric arrays, or a dict of them.

    Args:
        y: array-like of shape (n_samples,) or (n_samples, n_outputs), or a dict of them.
        n_samples: the number of rows the features have, or None not to check it.
        name: what to call the targets in messages.

    Returns:
        float64 converted to float32; other numeric dtypes kept.

    Raises:
        ValueError: strings or objects, a scalar, NaN, or (with `n_samples`) another number of rows:
            "Found input variables with inconsistent numbers of samples: [100, 99]".
    """
    _reject_tensors(y, name)
    if isinstance(y, Mapping):
        return {str(k): validate_targets(v, n_samples, name=f"{name}[{k!r}]") for k, v in y.items()}
    array = _as_array(y, name)
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
    if n_samples is not None:
        check_consistent_length(np.empty((n_samples, 0)), array)
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
        impute: None/False (default: a NaN in x is an error naming its column), or "mean" (True
            too): replace NaN with the column's mean over the training rows, learned here and
            kept in `state`, so evaluation and prediction fill with the same values.
        state: a `DataFeeder.state` learned at fit time (its imputation values are applied). States
            of other feeders are ignored: an array is matched to the model by position.

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
        impute: bool | str | None = None,
        state: dict[str, Any] | None = None,
    ) -> None:
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.epochs = check_epochs(epochs)
        impute = check_impute(impute)
        fill_values = state.get("fill_values") if state_kind(state) == "numpy" else None
        if fill_values is not None or impute:
            self.x = validate_features(x, allow_nan=True)
            if fill_values is None:
                fill_values = _learn_means(self.x)
            self.x = _fill(self.x, fill_values, "X")
        else:
            self.x = validate_features(x)
        self._fill_values = fill_values
        self.y = None if y is None else validate_targets(y)
        if self.y is not None:
            check_consistent_length(*_leaves(self.x)[:1], *_leaves(self.y))
        self.shuffle = bool(shuffle)
        self.seed = int(seed) if seed is not None else int(np.random.randint(0, 2**31 - 1))
        self.n_samples = n_rows(self.x)
        self._tensors: tuple[Any, Any] | None = None
        self._seed_var: tf.Variable | None = None
        self._dataset: tf.data.Dataset | None = None

    @property
    def finite(self) -> bool:
        """Whether `dataset()` ends (a number of epochs) or repeats forever (`epochs=None`)."""
        return self.epochs is not None

    @property
    def state(self) -> dict[str, Any] | None:
        """The imputation values (`{"type": "numpy", "fill_values": ...}`), or None without imputation."""
        if self._fill_values is None:
            return None
        return {"type": "numpy", "impute": "mean", "fill_values": self._fill_values}

    @property
    def input_signature(self) -> Signatures:
        """Signature of the features (per key for dicts)."""
        return signature_of(self.x)

    @property
    def output_signature(self) -> Signatures:
        """Signature of the targets, or None."""
        return signature_of(self.y)

    def reseed(self, seed: int) -> None:
        """Shuffle with `seed` in the iterators made from now on. The dataset is built once per feeder
        and reads its seed when an iterator starts an epoch, so a feeder can serve several `fit` calls
        with fresh permutations and no rebuild (tracing its functions costs ~50 ms)."""
        self.seed = int(seed)
        if self._seed_var is not None:
            self._seed_var.assign(self.seed)

    def dataset(self) -> tf.data.Dataset:
        """A `tf.data.Dataset` of `(features, targets)` batches (or features alone when y is None).

        The same dataset object is returned on every call; each `iter()` of it starts at epoch 0
        with the current seed (see `reseed`)."""
        if self._dataset is None:
            self._dataset = self._build_dataset()
        return self._dataset

    def _build_dataset(self) -> tf.data.Dataset:
        x, y = self._device_arrays()
        n, batch = self.n_samples, min(self.batch_size, self.n_samples)

        def gather(idx):
            feats = tf.nest.map_structure(lambda a: tf.gather(a, idx), x)
            if y is None:
                return feats
            return feats, tf.nest.map_structure(lambda a: tf.gather(a, idx), y)

        if self.shuffle:
            with tf.device("/cpu:0"):
                self._seed_var = seed = tf.Variable(self.seed, dtype=tf.int64, trainable=False)
            full = n // batch * batch  # training drops each epoch's remainder; a new permutation covers it next time

            def epoch_batches(epoch):
                perm = tf.random.experimental.stateless_shuffle(
                    tf.range(n, dtype=tf.int64), seed=tf.stack([seed.read_value(), epoch])
                )
                return tf.data.Dataset.from_tensor_slices(tf.reshape(perm[:full], [-1, batch]))

            epochs = tf.data.Dataset.range(self.epochs) if self.epochs else tf.data.Dataset.range(2**62)
            indices = epochs.flat_map(epoch_batches)
        else:
            starts = tf.data.Dataset.range(0, n, batch).map(lambda s: tf.range(s, tf.minimum(s + batch, n)))
            indices = starts.repeat(self.epochs) if self.epochs else starts.repeat()
        return prefetched(indices.map(gather, num_parallel_calls=_AUTOTUNE, deterministic=True))

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


def _learn_means(x: Any) -> Any:
    """Per-column means over the rows, ignoring NaN (0.0 for a column without values), as nested lists."""
    if isinstance(x, Mapping):
        return {k: _learn_means(v) for k, v in x.items()}
    if x.dtype.kind != "f":
        return None  # integers cannot hold NaN
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "Mean of empty slice": an all-NaN column
        means = np.nanmean(x.astype(np.float64), axis=0)
    return np.where(np.isnan(means), 0.0, means).tolist()


def _fill(x: Any, fill_values: Any, name: str) -> Any:
    if isinstance(x, Mapping):
        fills = fill_values if isinstance(fill_values, Mapping) else {}
        return {k: _fill(v, fills.get(k), f"{name}[{k!r}]") for k, v in x.items()}
    if x.dtype.kind != "f":
        return x
    nan = np.isnan(x)
    if not nan.any():
        return x
    if fill_values is None or isinstance(fill_values, Mapping):
        raise ValueError(
            f"Input {name} contains NaN in column(s) {_nan_columns(x)}, and no imputation values were learned for "
            "it at fit time (it held no floats then). Fill or drop those rows."
        )
    fill = np.asarray(fill_values, dtype=x.dtype)
    if fill.shape != x.shape[1:]:
        raise ValueError(
            f"{name} has rows of shape {x.shape[1:]}, but the imputation values learned at fit time are for rows of "
            f"shape {fill.shape}."
        )
    return np.where(nan, fill, x)


def _leaves(value: Any) -> list[np.ndarray]:
    if isinstance(value, Mapping):
        return list(value.values())
    return [value]
