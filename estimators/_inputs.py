"""The Estimator's input and output plumbing: argument checks, input_fn results, signatures, content
keys for feeder reuse, label decoding and per-example iteration."""

from __future__ import annotations

import contextlib
import hashlib
import numbers
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from estimators._runtime import split_element
from feeders.base import pop_feeder_error
from feeders.pandas_feeder import LabelEncoding
from feeders.signature import Signatures, cast_to_signature, signatures_from_spec

# fit() reuses its feeder when called again with arrays of the same content (a SHA-1 of their bytes,
# ~15 ms per 22 MB) up to this size; the feeder's TF copy of them stays alive meanwhile.
_REUSE_MAX_BYTES = 256 * 2**20


def _check_positive(name: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(
            f"Invalid value for argument `{name}`. Received: {name}={value!r}. Expected a positive integer."
        )


def _call_input_fn(input_fn: Callable[[], Any], repeat: bool) -> tuple[tf.data.Dataset, bool]:
    """Run input_fn; returns a dataset of batches and whether it is finite."""
    if not callable(input_fn):
        raise TypeError(f"input_fn must be callable; received {type(input_fn).__name__}.")
    result = input_fn()
    if isinstance(result, tf.data.Dataset):
        dataset = result
    elif isinstance(result, (tuple, list)) and len(result) == 2:
        features, targets = result
        element = (features, targets) if targets is not None else features
        dataset = tf.data.Dataset.from_tensors(element)
        if repeat:
            dataset = dataset.repeat()
    else:
        raise ValueError(
            f"input_fn must return a tf.data.Dataset or a (features, targets) pair; it returned {type(result).__name__}."
        )
    cardinality = int(dataset.cardinality())
    return dataset, cardinality != int(tf.data.INFINITE_CARDINALITY)


def _dataset_signatures(dataset: tf.data.Dataset) -> tuple[Signatures, Signatures]:
    features_spec, targets_spec = split_element(dataset.element_spec)
    try:
        return signatures_from_spec(features_spec), signatures_from_spec(targets_spec)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"The input's elements must be (features, targets) batches of tensors or dicts of tensors; got "
            f"{dataset.element_spec} ({exc})."
        ) from None


def _describe(sig: Signatures) -> str:
    if isinstance(sig, Mapping):
        return ", ".join(f"{k}: {v}" for k, v in sig.items())
    return str(sig)


def _arrays_key(x: Any, y: Any) -> tuple[Any, ...] | None:
    """The layout and content (SHA-1 of the bytes) of x and y when both are plain numeric numpy arrays
    (or dicts of them) of at most `_REUSE_MAX_BYTES` together; None otherwise."""
    leaves, layout = [], []
    for part in (x, y):
        if isinstance(part, Mapping):
            leaves.extend(part.values())
            layout.append(tuple(part))
        elif part is not None:
            leaves.append(part)
            layout.append(None)
        else:
            layout.append("none")
    if not leaves or any(
        type(a) is not np.ndarray or a.dtype.kind not in "biuf" or not a.flags.c_contiguous or a.size == 0
        for a in leaves
    ):
        return None
    if sum(a.nbytes for a in leaves) > _REUSE_MAX_BYTES:
        return None
    digests = tuple(
        (a.dtype.str, a.shape, hashlib.sha1(memoryview(a).cast("B"), usedforsecurity=False).digest()) for a in leaves
    )
    return (*layout, *digests)


def _validate_y(y: Any, n: int) -> Any:
    from sklearn.utils.validation import check_consistent_length

    from feeders.numpy_feeder import validate_targets

    targets = validate_targets(y)
    leaves = list(targets.values()) if isinstance(targets, Mapping) else [targets]
    check_consistent_length(np.empty((n, 0)), *leaves)
    return targets


def _cast(value: Any, sig: Any) -> Any:
    if isinstance(value, np.ndarray) and sig is not None:
        return cast_to_signature(value, sig)
    if isinstance(value, tf.Tensor) and sig is not None and value.dtype != sig.dtype:
        return tf.cast(value, sig.dtype)
    return value


def _n_rows(features: Any) -> int:
    leaf = next(iter(features.values())) if isinstance(features, Mapping) else features
    return int(leaf.shape[0])


def _select_outputs(predictions: Any, outputs: list[str] | None) -> Any:
    if outputs is None:
        return predictions
    if not isinstance(predictions, dict):
        raise ValueError(
            f"outputs={outputs!r} selects keys of a predictions dict, but model_fn returns a single tensor."
        )
    unknown = [k for k in outputs if k not in predictions]
    if unknown:
        raise ValueError(f"outputs {unknown} are not among the prediction keys {sorted(predictions)}.")
    return {k: predictions[k] for k in outputs}


@contextlib.contextmanager
def _feeder_errors() -> Iterator[None]:
    """Re-raise an error from a feeder's Python code as itself, not as tf.data's wrapper of it."""
    try:
        yield
    except tf.errors.OpError:
        original = pop_feeder_error()
        if original is not None:
            raise original.with_traceback(None) from None
        raise


def _reraising(dataset: tf.data.Dataset) -> Iterator[Any]:
    iterator = iter(dataset)
    while True:
        with _feeder_errors():
            try:
                element = next(iterator)
            except StopIteration:
                return
        yield element


_CLASS_KEYS = ("class", "classes", "class_ids")


def _decode_labels(predictions: Any, labels: LabelEncoding) -> Any:
    """Map predicted class ids back to the original labels when the feeder encoded them."""
    if labels.classes is None:
        return predictions
    if isinstance(predictions, dict):
        return {k: labels.decode(v) if k in _CLASS_KEYS and v.dtype.kind in "iu" else v for k, v in predictions.items()}
    if predictions.dtype.kind in "iu":
        return labels.decode(predictions)
    return predictions


def _per_example(batches: Iterator[Any]) -> Iterator[Any]:
    for batch in batches:
        if isinstance(batch, dict):
            n = len(next(iter(batch.values())))
            for i in range(n):
                yield {k: v[i] for k, v in batch.items()}
        else:
            yield from batch


def _metric_key(spec: Any) -> Any:
    metric = spec.metric
    ident = metric if isinstance(metric, str) else id(metric)
    return (ident, spec.prediction_key, spec.label_key)


def _qualname(fn: Any) -> str:
    target = getattr(fn, "func", fn)
    return f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', type(target).__name__)}"
