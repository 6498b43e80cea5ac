"""How what `fit`, `evaluate` and `predict` receive becomes the model's batches.

`x`/`y` go through the feeder their type calls for (`feeders.setup_train_data_feeder`), with the
encoding learned at the first fit; an `input_fn` returns its own dataset. Either way the batches'
signatures are checked against the model's (`ModelMetadata`) and cast to its dtypes. `fit` called
again with arrays of the same content reuses its feeder (no re-validation, copy or tracing).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np
import tensorflow as tf

from estimators.metadata import ModelMetadata, column_dtypes, split_element
from feeders import (
    DataFeeder,
    LabelEncoding,
    PandasFeeder,
    Signatures,
    fingerprint,
    n_rows,
    reraising_iterator,
    setup_predict_data_feeder,
    setup_train_data_feeder,
    signature_of,
    signatures_from_spec,
    slice_rows,
    validate_features,
    validate_targets,
)

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "Inputs",
    "TrainInput",
    "arrays_key",
    "call_input_fn",
    "dataset_signatures",
    "decode_labels",
    "per_example",
    "select_outputs",
]

DEFAULT_BATCH_SIZE = 32
# fit() reuses its feeder when called again with arrays of the same content (a SHA-1 of their bytes,
# ~15 ms per 22 MB) up to this size; the feeder's TF copy of them stays alive meanwhile.
_REUSE_MAX_BYTES = 256 * 2**20


class TrainInput(NamedTuple):
    """A training input: its dataset, whether it ends, its feeder (None for an input_fn), the
    steps per epoch when known, and the data's fingerprint when it was computed (arrays)."""

    dataset: tf.data.Dataset
    finite: bool
    feeder: Any
    steps_per_epoch: int | None
    fingerprint: str | None = None


class Inputs:
    """The Estimator's input side: feeders chosen by type, the fit batch size, feeder reuse, and
    the signature checks of `ModelMetadata`."""

    def __init__(self, meta: ModelMetadata) -> None:
        self.meta = meta
        self.fit_batch_size: int | None = None
        self._train_feeder: tuple[Any, Any] | None = None  # (content key, DataFeeder) of the last fit on arrays

    def batch_size(self, batch_size: int | None) -> int:
        """The given batch size, else the one of the first fit, else the default."""
        return batch_size if batch_size is not None else (self.fit_batch_size or DEFAULT_BATCH_SIZE)

    def feeder(
        self,
        x: Any,
        y: Any,
        batch_size: int | None,
        training: bool,
        seed: int | None = None,
        impute: Any = None,
        epochs: int | None = None,
    ) -> Any:
        """The feeder for x/y (chosen by type), applying the encoding learned at the first fit.
        Training feeders shuffle and repeat `epochs` times (None: forever); others make one ordered pass."""
        self.meta.load()
        return setup_train_data_feeder(
            x,
            y,
            batch_size=self.batch_size(batch_size),
            shuffle=training,
            epochs=epochs if training else 1,
            seed=seed if training else None,
            state=self.meta.feeder_state,
            impute=impute,
        )

    def train(
        self,
        x: Any,
        y: Any,
        input_fn: Callable[[], Any] | None,
        batch_size: int | None,
        impute: Any,
        seed: Callable[[], int],
        epochs: int | None = None,
    ) -> TrainInput:
        """The training input for `fit`/`partial_fit`, its signatures recorded or checked."""
        _exactly_one_input(x, input_fn)
        if input_fn is not None:
            if y is not None or batch_size is not None or impute or epochs is not None:
                raise ValueError(
                    "y, batch_size, impute and epochs go with x; an input_fn yields its own batches and "
                    "decides its own epochs."
                )
            dataset, finite = call_input_fn(input_fn, repeat=True)
            feeder, steps_per_epoch, content = None, None, None
        else:
            content = arrays_key(x, y)
            feeder = self._reusable_feeder(x, y, content, batch_size, impute, seed, epochs)
            if batch_size is not None or self.fit_batch_size is None:
                self.fit_batch_size = feeder.batch_size
            self.meta.learn_feeder_state(feeder.state, column_dtypes(x))
            dataset, finite = feeder.dataset(), feeder.finite
            n = getattr(feeder, "n_samples", None)
            steps_per_epoch = max(n // min(feeder.batch_size, n), 1) if n else None
        features_sig, targets_sig = dataset_signatures(dataset)
        self.meta.record(features_sig, targets_sig, "fit")
        dataset = self.meta.cast_dataset(dataset, features_sig, targets_sig)
        return TrainInput(dataset, finite, feeder, steps_per_epoch, content)

    def _reusable_feeder(
        self,
        x: Any,
        y: Any,
        content: str | None,
        batch_size: int | None,
        impute: Any,
        seed: Callable[[], int],
        epochs: int | None,
    ) -> Any:
        """The training feeder; the previous fit's when x and y are the same, unchanged arrays.

        Building a feeder validates and copies the arrays and traces its dataset's functions: about
        0.1 s at 200k x 28 floats, paid on every `fit` call otherwise (fit(steps=100) in a loop)."""
        key = None if content is None else (content, self.batch_size(batch_size), str(impute), epochs)
        if key is not None:
            cached = self._train_feeder
            if cached is not None and cached[0] == key:
                cached[1].reseed(seed())
                return cached[1]
        self._train_feeder = None  # release the previous copy before making a new one
        feeder = self.feeder(x, y, batch_size, training=True, seed=seed(), impute=impute, epochs=epochs)
        if key is not None and isinstance(feeder, DataFeeder):
            self._train_feeder = (key, feeder)
        return feeder

    def evaluation(
        self, x: Any, y: Any, input_fn: Callable[[], Any] | None, batch_size: int | None, steps: int | None
    ) -> tuple[tf.data.Dataset, Any]:
        """One pass of evaluation batches (or `steps` of them) and their feeder (None for an input_fn)."""
        _exactly_one_input(x, input_fn)
        if input_fn is not None:
            if y is not None or batch_size is not None:
                raise ValueError("y and batch_size go with x; an input_fn yields its own batches.")
            dataset, finite = call_input_fn(input_fn, repeat=False)
            feeder = None
        else:
            feeder = self.feeder(x, y, batch_size, training=False)
            dataset, finite = feeder.dataset(), feeder.finite
        if not finite and steps is None:
            raise ValueError(
                "The evaluation input is endless (it repeats forever) and steps=None would never end; "
                "pass steps= or make the input finite."
            )
        features_sig, targets_sig = dataset_signatures(dataset)
        self.meta.check(features_sig, targets_sig, "evaluate")
        return self.meta.cast_dataset(dataset, features_sig, targets_sig), feeder

    def prediction(self, x: Any, input_fn: Callable[[], Any] | None, batch_size: int | None) -> Iterator[Any]:
        """Feature batches to predict on, checked and cast (in-memory arrays are sliced, not fed)."""
        self.meta.load()
        feeder = None
        if input_fn is not None:
            dataset, finite = call_input_fn(input_fn, repeat=False)
        else:
            batch = batch_size if batch_size is not None else max(self.fit_batch_size or 0, 1024)
            feeder = setup_predict_data_feeder(x, batch_size=batch, state=self.meta.feeder_state)
            if isinstance(feeder, (DataFeeder, PandasFeeder)):
                # In-memory arrays: slice them and call the compiled model directly (no tf.data per call).
                features = feeder.x
                self.meta.check(signature_of(features), self.meta.targets, "predict", check_targets=False)
                features = self.meta.cast_features(features)
                n = n_rows(features)
                return (slice_rows(features, i, i + batch) for i in range(0, n, batch))
            dataset, finite = feeder.dataset(), feeder.finite
        if not finite:
            raise ValueError("The prediction input is endless; predict needs finite data.")
        features_sig, _ = dataset_signatures(dataset)
        self.meta.check(features_sig, self.meta.targets, "predict", check_targets=False)
        return (self.meta.cast_features(split_element(e)[0]) for e in reraising_iterator(dataset, feeder))

    def in_memory_batch(self, x: Any, y: Any, batch_size: int | None) -> tuple[Any, Any] | None:
        """`(features, targets)` of one whole-array batch for partial_fit's fast path, or None when x
        needs a feeder (an encoding was learned) or batches smaller than x."""
        if self.meta.load().feeder_state is not None:
            return None
        features = validate_features(x)
        if batch_size is not None and batch_size < n_rows(features):
            return None
        targets = None if y is None else validate_targets(y, n_samples=n_rows(features))
        self.meta.record(signature_of(features), signature_of(targets), "fit")
        return self.meta.cast_inputs(features, targets)

    def labels(self) -> LabelEncoding:
        """The class labels the feeder encoded (predictions of class ids are decoded with them)."""
        return LabelEncoding.from_json((self.meta.feeder_state or {}).get("labels"))


def _exactly_one_input(x: Any, input_fn: Any) -> None:
    if x is not None and input_fn is not None:
        raise ValueError("Either x or input_fn must be provided, not both.")
    if x is None and input_fn is None:
        raise ValueError("Either x or input_fn must be provided.")


def call_input_fn(input_fn: Callable[[], Any], repeat: bool) -> tuple[tf.data.Dataset, bool]:
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


def dataset_signatures(dataset: tf.data.Dataset) -> tuple[Signatures, Signatures]:
    """The signatures of a dataset's `(features, targets)` (or features-only) batches."""
    features_spec, targets_spec = split_element(dataset.element_spec)
    try:
        return signatures_from_spec(features_spec), signatures_from_spec(targets_spec)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"The input's elements must be (features, targets) batches of tensors or dicts of tensors; got "
            f"{dataset.element_spec} ({exc})."
        ) from None


def arrays_key(x: Any, y: Any) -> str | None:
    """The content fingerprint (`feeders.fingerprint`) of x and y when both are plain numeric numpy
    arrays (or dicts of them) of at most `_REUSE_MAX_BYTES` together; None otherwise. It keys the
    feeder reuse, and is the fit's data fingerprint that trackers record (hashed once per fit)."""
    leaves = [
        v for part in (x, y) if part is not None for v in (part.values() if isinstance(part, Mapping) else [part])
    ]
    if not leaves or any(
        type(a) is not np.ndarray or a.dtype.kind not in "biuf" or not a.flags.c_contiguous or a.size == 0
        for a in leaves
    ):
        return None
    if sum(a.nbytes for a in leaves) > _REUSE_MAX_BYTES:
        return None
    return fingerprint(x, y)


def select_outputs(predictions: Any, outputs: list[str] | None) -> Any:
    """The predictions `outputs` names (all when None)."""
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


_CLASS_KEYS = ("class", "classes", "class_ids")


def decode_labels(predictions: Any, labels: LabelEncoding) -> Any:
    """Map predicted class ids back to the original labels when the feeder encoded them."""
    if labels.classes is None:
        return predictions
    if isinstance(predictions, dict):
        return {k: labels.decode(v) if k in _CLASS_KEYS and v.dtype.kind in "iu" else v for k, v in predictions.items()}
    if predictions.dtype.kind in "iu":
        return labels.decode(predictions)
    return predictions


def per_example(batches: Iterator[Any]) -> Iterator[Any]:
    """Batches of predictions, one example at a time (`predict(as_iterable=True)`)."""
    for batch in batches:
        if isinstance(batch, dict):
            n = len(next(iter(batch.values())))
            for i in range(n):
                yield {k: v[i] for k, v in batch.items()}
        else:
            yield from batch


def qualname(fn: Any) -> str:
    """`module.qualname` of a function, a `functools.partial`'s function, or a callable's class."""
    target = getattr(fn, "func", fn)
    return f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', type(target).__name__)}"
