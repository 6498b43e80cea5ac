"""What a model_dir records about its model besides the weights: `skflow.json`.

The first fit records the signatures (dtype, shape, sparse) of features and targets, the encoding the
feeder learned (pandas vocabularies, imputation values, class labels), the dtypes of a DataFrame's
columns (so an export takes each column with its own dtype) and the model_fn's name;
every later input is checked against the signatures and cast to their dtypes, and evaluation and
prediction data are encoded with the saved feeder state. A new Estimator on the same model_dir reads
it back, so a restored model checks and encodes its input exactly as the one that trained it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from estimators import checkpoints as ckpt
from feeders import (
    Signatures,
    cast_to_signature,
    check_signatures_compatible,
    signature_from_json,
    signature_to_json,
)

__all__ = ["ModelMetadata", "column_dtypes", "describe_signature", "split_element"]

META_FORMAT = 1


def split_element(element: Any) -> tuple[Any, Any]:
    """A dataset element is `(features, targets)` or features alone."""
    if isinstance(element, tuple) and len(element) == 2:
        return element
    return element, None


def column_dtypes(x: Any) -> dict[str, str] | None:
    """The dtype (as text: "float32", "int64", "object", "category", "bool"...) of each column of a
    pandas or dask DataFrame or Series, by column name as the pandas feeder names them (`str`, a
    nameless Series "0"); None for any other input."""
    dtypes = getattr(x, "dtypes", None)
    if dtypes is None or isinstance(x, np.ndarray):
        return None
    if not hasattr(dtypes, "items"):  # a Series: one dtype
        return {str(x.name if getattr(x, "name", None) is not None else 0): str(dtypes)}
    return {str(name): str(dtype) for name, dtype in dtypes.items()}


def describe_signature(sig: Signatures) -> str:
    if isinstance(sig, Mapping):
        return ", ".join(f"{k}: {v}" for k, v in sig.items())
    return str(sig)


class ModelMetadata:
    """Signatures, feeder state and model_fn name of the model in `model_dir` (`skflow.json`).

    Args:
        model_dir: the model's directory.
        owner: the estimator's class name, for error messages.
        model_fn_name: the model_fn's qualified name, recorded for people reading the file.
        write: whether this process writes the file (the chief does; other workers only read).
    """

    def __init__(self, model_dir: str, owner: str, model_fn_name: str, write: bool = True) -> None:
        self.model_dir = model_dir
        self.owner = owner
        self.model_fn_name = model_fn_name
        self.write_enabled = write
        self.features: Signatures = None
        self.targets: Signatures = None
        self.feeder_state: dict[str, Any] | None = None
        self.column_dtypes: dict[str, str] | None = None
        self._loaded = False
        self.unsaved = False  # recorded, waiting for the model_dir's first checkpoint to be written

    # ------------------------------------------------------------------ persistence
    def load(self) -> ModelMetadata:
        """Read skflow.json once, if the model_dir has one with a checkpoint and nothing is known yet."""
        if self._loaded or self.features is not None:
            return self
        self._loaded = True
        meta = ckpt.read_meta(self.model_dir)
        if meta and tf.train.latest_checkpoint(self.model_dir) is None:
            # Written by a first fit that failed before its first checkpoint (a model_fn bug, bad
            # data): no model was trained, so nothing binds the next fit to that fit's inputs.
            meta = None
        if meta:
            self.features = signature_from_json(meta.get("features"))
            self.targets = signature_from_json(meta.get("targets"))
            if self.feeder_state is None:
                self.feeder_state = meta.get("feeder")
            if self.column_dtypes is None:
                self.column_dtypes = meta.get("column_dtypes")
        return self

    def _save_with_a_model(self) -> None:
        """Save now if the model_dir holds a checkpoint, else when its first one is written
        (`ModelState.save`): a first fit that fails before it leaves the directory as it was."""
        if tf.train.latest_checkpoint(self.model_dir) is None:
            self.unsaved = True
            if self.write_enabled:  # the directory exists from here on, as monitors expect (their files go there)
                os.makedirs(self.model_dir, exist_ok=True)
        else:
            self.save()

    def save(self) -> None:
        """Write skflow.json atomically (chief only)."""
        if not self.write_enabled or self.features is None:
            return
        self.unsaved = False
        ckpt.write_meta(
            self.model_dir,
            {
                "format": META_FORMAT,
                "features": signature_to_json(self.features),
                "targets": signature_to_json(self.targets),
                "feeder": self.feeder_state,
                "column_dtypes": self.column_dtypes,
                "model_fn": self.model_fn_name,
            },
        )

    def to_json(self) -> dict[str, Any]:
        """A picklable copy (signatures as JSON: no TF object)."""
        return {
            "features": signature_to_json(self.features),
            "targets": signature_to_json(self.targets),
            "feeder": self.feeder_state,
            "column_dtypes": self.column_dtypes,
        }

    def restore_json(self, data: Mapping[str, Any]) -> None:
        self.features = signature_from_json(data.get("features"))
        self.targets = signature_from_json(data.get("targets"))
        self.feeder_state = data.get("feeder")
        self.column_dtypes = data.get("column_dtypes")

    # ------------------------------------------------------------------ recording and checking
    def learn_feeder_state(self, state: dict[str, Any] | None, dtypes: dict[str, str] | None = None) -> None:
        """Keep the first fit's learned encoding, and the dtypes of its DataFrame's columns
        (`column_dtypes`); later fits apply the encoding instead of learning another."""
        if self.feeder_state is None and state is not None:
            self.feeder_state = state
            self.column_dtypes = dtypes
            self._save_with_a_model()

    def record(self, features: Signatures, targets: Signatures, where: str) -> None:
        """The first fit records the signatures; every later call checks against them."""
        self.load()
        if self.features is None:
            self.features, self.targets = features, targets
            self._save_with_a_model()
            return
        self.check(features, targets, where)

    def check(self, features: Signatures, targets: Signatures, where: str, check_targets: bool = True) -> None:
        """Raise a ValueError naming the feature (or target), the expected and the received dtype/shape."""
        self.load()
        if self.features is None:
            if where != "fit":  # a model restored without skflow.json: learn them here
                self.features, self.targets = features, targets
            return
        check_signatures_compatible(self.features, features, "X", self.owner)
        if check_targets and targets is None and self.targets is not None:
            raise ValueError(
                f"y is required: this {self.owner} was fitted with targets ({describe_signature(self.targets)}), "
                f"but {where}() received none. Pass y (or an input whose elements are (features, targets))."
            )
        if check_targets and targets is not None:
            check_signatures_compatible(self.targets, targets, "y", self.owner)

    # ------------------------------------------------------------------ casting to the recorded dtypes
    def cast_features(self, features: Any) -> Any:
        sig = self.features
        if isinstance(features, Mapping):
            return {k: _cast(v, sig[k]) for k, v in features.items()}
        return _cast(features, sig)

    def cast_inputs(self, features: Any, targets: Any) -> tuple[Any, Any]:
        features = self.cast_features(features)
        if targets is not None and self.targets is not None:
            sig = self.targets
            targets = (
                {k: _cast(v, sig[k]) for k, v in targets.items()}
                if isinstance(targets, Mapping)
                else _cast(targets, sig)
            )
        return features, targets

    def cast_dataset(self, dataset: tf.data.Dataset, features: Signatures, targets: Signatures) -> tf.data.Dataset:
        """`dataset` with its elements cast to the recorded dtypes (itself when they already match)."""
        if features == self.features and (targets is None or targets == self.targets):
            return dataset
        return dataset.map(lambda *e: self.cast_inputs(*split_element(e if len(e) > 1 else e[0])))


def _cast(value: Any, sig: Any) -> Any:
    if sig is None:
        return value
    if isinstance(value, tf.Tensor):
        return tf.cast(value, sig.dtype) if value.dtype != sig.dtype else value
    if isinstance(value, np.ndarray):
        return cast_to_signature(value, sig)
    return value
