"""Tensor signatures: what a model was fitted on, checked against what it is given later.

A :class:`TensorSignature` records the dtype, the shape *without* the batch dimension and whether the
tensor is sparse, as the seed's ``tensor_signature.py`` did. Signatures are recorded at the first
``fit`` and every later ``fit``, ``evaluate`` or ``predict`` input is checked against them, so a
wrong dtype or width fails with a message that names the feature, the expected and the received
signature instead of a TensorFlow stack trace.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf

__all__ = [
    "Signatures",
    "TensorSignature",
    "cast_to_signature",
    "check_signatures_compatible",
    "signature_from_json",
    "signature_of",
    "signature_to_json",
    "signatures_from_spec",
]


@dataclasses.dataclass(frozen=True)
class TensorSignature:
    """dtype, shape without the batch dimension, and sparsity of one tensor.

    Args:
        dtype: the tensor's `tf.DType` (or anything `tf.as_dtype` accepts).
        shape: tuple of the dimensions after the batch dimension; `None` for an unknown dimension.
            A sparse tensor's shape is `(n_features,)` when known.
        is_sparse: whether the tensor is a `tf.SparseTensor`.

    Example:
        >>> sig = TensorSignature.from_array(np.zeros((10, 3), np.float32))
        >>> sig
        TensorSignature(dtype=float32, shape=(3,), is_sparse=False)
    """

    dtype: tf.DType
    shape: tuple[int | None, ...]
    is_sparse: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "dtype", tf.as_dtype(self.dtype))
        object.__setattr__(self, "shape", tuple(None if d is None else int(d) for d in self.shape))

    def __repr__(self) -> str:
        return f"TensorSignature(dtype={self.dtype.name}, shape={self.shape}, is_sparse={self.is_sparse})"

    @classmethod
    def from_array(cls, array: Any) -> TensorSignature:
        """Signature of a batch-major numpy array, scipy.sparse matrix or tensor."""
        if isinstance(array, tf.SparseTensor):
            return cls(array.dtype, tuple(array.shape)[1:], True)
        if hasattr(array, "tocsr") and hasattr(array, "nnz"):  # scipy.sparse, without importing it
            return cls(array.dtype, tuple(array.shape)[1:], True)
        shape = tuple(array.shape)
        return cls(tf.as_dtype(array.dtype), shape[1:], False)

    @classmethod
    def from_spec(cls, spec: tf.TypeSpec) -> TensorSignature:
        """Signature of a `tf.TensorSpec` or `tf.SparseTensorSpec` (the batch dimension is dropped)."""
        if isinstance(spec, tf.SparseTensorSpec):
            return cls(spec.dtype, tuple(spec.shape)[1:], True)
        if isinstance(spec, tf.TensorSpec):
            if spec.shape.rank is None:
                raise ValueError(f"Cannot record a signature for a tensor of unknown rank ({spec}).")
            return cls(spec.dtype, tuple(spec.shape)[1:], False)
        raise TypeError(f"Expected a TensorSpec or SparseTensorSpec, got {type(spec).__name__}: {spec!r}.")

    def to_spec(self, batch_size: int | None = None) -> tf.TypeSpec:
        """The `tf.TypeSpec` of a batch with this signature."""
        shape = (batch_size, *self.shape)
        if self.is_sparse:
            return tf.SparseTensorSpec(shape, self.dtype)
        return tf.TensorSpec(shape, self.dtype)

    def describe(self) -> str:
        """A readable form for messages, e.g. "float32 with shape (n_samples, 3)"."""
        kind = "sparse " if self.is_sparse else ""
        return f"{kind}{self.dtype.name} with shape (n_samples, {', '.join(map(str, self.shape))})".replace(
            ", )", ")"
        ).replace("(n_samples, )", "(n_samples,)")

    def is_compatible_with(self, other: TensorSignature) -> bool:
        """Same sparsity, same dtype, and compatible shapes (unknown dimensions match anything)."""
        if self.is_sparse != other.is_sparse or self.dtype != other.dtype:
            return False
        return tf.TensorShape(self.shape).is_compatible_with(tf.TensorShape(other.shape))

    def can_cast_from(self, other: TensorSignature) -> bool:
        """Whether input with signature `other` may be cast to this one without losing meaning.

        Widening is allowed (bool and integers to floats, bool to integers, integers to other integers,
        float64 to float32); floats to integers and anything to or from strings are not.
        """
        if self.is_sparse != other.is_sparse:
            return False
        if not tf.TensorShape(self.shape).is_compatible_with(tf.TensorShape(other.shape)):
            return False
        src, dst = other.dtype, self.dtype
        if src == dst:
            return True
        if dst.is_floating:
            return src.is_floating or src.is_integer or src == tf.bool
        if dst.is_integer:
            return src.is_integer or src == tf.bool
        return False

    def to_json(self) -> dict[str, Any]:
        """`{"dtype": ..., "shape": [...], "is_sparse": ...}`, JSON-serialisable."""
        return {"dtype": self.dtype.name, "shape": list(self.shape), "is_sparse": self.is_sparse}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TensorSignature:
        """The signature that `to_json` wrote."""
        return cls(data["dtype"], tuple(data["shape"]), bool(data.get("is_sparse", False)))


Signatures = TensorSignature | dict[str, TensorSignature] | None
"""The signature of features or targets: one `TensorSignature`, a dict of them (dict inputs), or None."""


def signature_of(value: Any) -> Signatures:
    """The signature of a batch-major value: an array, a dict of arrays, or None.

    Args:
        value: a numpy array, scipy.sparse matrix or tensor of shape (n_samples, ...), a dict of
            them, or None.

    Returns:
        None for None, a dict of `TensorSignature` for a dict (same keys), else one
        `TensorSignature` (`TensorSignature.from_array`).

    Example:
        >>> signature_of({"ids": np.zeros(4, np.int64)})
        {'ids': TensorSignature(dtype=int64, shape=(), is_sparse=False)}
    """
    if value is None:
        return None
    if isinstance(value, Mapping):
        return {k: TensorSignature.from_array(v) for k, v in value.items()}
    return TensorSignature.from_array(value)


def signatures_from_spec(spec: Any) -> Signatures:
    """The signatures of a batched dataset's element spec (a `tf.TypeSpec`, a dict of them, or None).

    Args:
        spec: the features' (or targets') part of `dataset.element_spec`.

    Returns:
        `Signatures`, the batch dimension dropped.

    Raises:
        TypeError, ValueError: a spec that is neither a TensorSpec nor a SparseTensorSpec, or of unknown rank.
    """
    if spec is None:
        return None
    if isinstance(spec, Mapping):
        return {str(k): TensorSignature.from_spec(v) for k, v in spec.items()}
    return TensorSignature.from_spec(spec)


def signature_to_json(sig: Signatures) -> Any:
    """A JSON-serialisable form of `sig` (None, `{"dict": {key: ...}}`, or one signature's dict).

    `signature_from_json` reads it back.
    """
    if sig is None:
        return None
    if isinstance(sig, Mapping):
        return {"dict": {k: v.to_json() for k, v in sig.items()}}
    return sig.to_json()


def signature_from_json(data: Any) -> Signatures:
    """The `Signatures` that `signature_to_json` wrote."""
    if data is None:
        return None
    if "dict" in data:
        return {k: TensorSignature.from_json(v) for k, v in data["dict"].items()}
    return TensorSignature.from_json(data)


def _width_message(what: str, expected: TensorSignature, received: TensorSignature, owner: str) -> str | None:
    if len(expected.shape) == 1 and len(received.shape) == 1 and expected.dtype == received.dtype:
        return (
            f"{what} has {received.shape[0]} features, but {owner} is expecting {expected.shape[0]} features as input."
        )
    return None


def check_signatures_compatible(
    expected: Signatures,
    received: Signatures,
    what: str = "X",
    owner: str = "Estimator",
    allow_cast: bool = True,
) -> None:
    """Raise a `ValueError` naming the mismatch when `received` does not fit `expected`.

    Args:
        expected: the signatures recorded at the first fit.
        received: the signatures of the new input.
        what: what the input is called in the message ("X", "y", "features", ...).
        owner: the estimator's class name, for the message.
        allow_cast: accept inputs that `TensorSignature.can_cast_from` allows.

    Raises:
        ValueError: with the feature name, the expected and the received signature.
    """
    if expected is None:
        if received is not None:
            raise ValueError(f"{owner} was fitted without {what}, but {what} was given.")
        return
    if received is None:
        raise ValueError(f"{owner} was fitted with {what} of {_describe(expected)}, but {what} is None.")
    if isinstance(expected, Mapping) != isinstance(received, Mapping):
        raise ValueError(
            f"{what} must be {'a dict of arrays' if isinstance(expected, Mapping) else 'a single array'} as at "
            f"fit time ({_describe(expected)}); received {_describe(received)}."
        )
    if isinstance(expected, Mapping):
        missing = sorted(set(expected) - set(received))
        extra = sorted(set(received) - set(expected))
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing {missing}")
            if extra:
                parts.append(f"unexpected {extra}")
            raise ValueError(
                f"{what} keys do not match those seen at fit time: {', '.join(parts)}. "
                f"Expected keys {sorted(expected)}."
            )
        for key in expected:
            _check_one(expected[key], received[key], f"{what}[{key!r}]", owner, allow_cast)
        return
    _check_one(expected, received, what, owner, allow_cast)


def _check_one(expected: TensorSignature, received: TensorSignature, what: str, owner: str, allow_cast: bool) -> None:
    ok = received.is_compatible_with(expected) or (allow_cast and expected.can_cast_from(received))
    if ok:
        return
    width = _width_message(what, expected, received, owner)
    if width and not tf.TensorShape(expected.shape).is_compatible_with(tf.TensorShape(received.shape)):
        raise ValueError(width)
    raise ValueError(
        f"{what} is incompatible with the data {owner} was fitted on: expected {expected.describe()}, "
        f"received {received.describe()}."
        + (
            " Floats cannot be fed where integers were trained; cast the input explicitly if that is meant."
            if expected.dtype.is_integer and received.dtype.is_floating
            else ""
        )
    )


def _describe(sig: Signatures) -> str:
    if isinstance(sig, Mapping):
        return "dict with keys " + ", ".join(f"{k!r}: {v.describe()}" for k, v in sig.items())
    return sig.describe() if sig is not None else "None"


def cast_to_signature(array: np.ndarray, sig: TensorSignature) -> np.ndarray:
    """Cast a numpy array to the dtype of `sig`, once `check_signatures_compatible` has allowed it.

    Args:
        array: the input, of a dtype that `sig.can_cast_from` accepts.
        sig: the signature recorded at fit time.

    Returns:
        `array` itself when its dtype already matches, else a cast copy.
    """
    target = sig.dtype.as_numpy_dtype
    return array if array.dtype == target else array.astype(target)
