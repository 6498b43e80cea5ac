"""`CannedClassifier`: class labels in, class probabilities and labels out.

Labels of any kind (integers, strings, booleans) become class ids `0 .. n_classes - 1` in the order
of `classes_`; the model's "probabilities" output has one column per class in that order.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets

from estimators._validation import check_positive_int
from estimators.canned.base import CannedEstimator
from estimators.canned.export import classifier_outputs

__all__ = ["CannedClassifier"]


class CannedClassifier(ClassifierMixin, CannedEstimator):
    """The classifier head of the canned estimators: `fit`, `partial_fit`, `predict_proba`, `predict`."""

    _head = "classifier"

    def _encode_targets(self, y: Any, classes: Any, reset: bool, sample_weight: Any = None) -> np.ndarray:
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y.ravel()
        _check_no_missing_labels(y)
        check_classification_targets(y)
        if reset or not hasattr(self, "classes_"):
            self.classes_ = self._classes(np.unique(y), classes)
        unknown = np.setdiff1d(np.unique(y), self.classes_)
        if unknown.size:
            raise ValueError(f"y contains previously unseen labels: {unknown.tolist()}.")
        return np.searchsorted(self.classes_, y).astype(np.int64)

    def _classes(self, found: np.ndarray, classes: Any) -> np.ndarray:
        """`classes_`: `classes` (partial_fit), else the labels found in y, else with `n_classes` set
        and integer labels, the class ids `0 .. n_classes - 1` (the seed's convention, so a class
        missing from this y still gets its column in predict_proba)."""
        result = np.unique(np.asarray(classes)) if classes is not None else found
        missing = np.setdiff1d(found, result)
        if missing.size:
            raise ValueError(f"y contains classes {missing.tolist()} that are not in `classes` {result.tolist()}.")
        n_classes = self.n_classes
        if n_classes is None or n_classes == len(result):
            return result
        check_positive_int("n_classes", n_classes)
        if n_classes < len(result):
            raise ValueError(
                f"n_classes={n_classes}, but y has {len(result)} classes {result.tolist()}. Pass "
                f"n_classes={len(result)} or n_classes=None (inferred from y)."
            )
        ids = np.arange(n_classes)
        is_int = np.issubdtype(result.dtype, np.integer) and not np.issubdtype(result.dtype, np.bool_)
        if classes is not None or not is_int or np.setdiff1d(result, ids).size:
            raise ValueError(
                f"n_classes={n_classes}, but y has {len(result)} classes {result.tolist()}. A larger n_classes "
                f"needs integer class ids in [0, {n_classes}); otherwise leave n_classes=None"
                + (" (the classes are given by `classes`)." if classes is not None else ".")
            )
        return ids

    def _head_params(self, y: np.ndarray, sample_weight: np.ndarray | None) -> dict[str, Any]:
        return {"n_classes": max(len(self.classes_), 1)}

    def _outputs(self) -> Any:
        """The export's outputs: `classes` (labels of `classes_`), `class_ids`, `probabilities`."""
        return classifier_outputs(self.classes_)

    def fit(self, X: Any, y: Any, sample_weight: Any = None, **overrides: Any) -> Any:
        """Train from scratch.

        Args:
            X: array-like of shape (n_samples, n_features), or a DataFrame (categorical and string
                columns are encoded with vocabularies learned here).
            y: class labels of shape (n_samples,): integers, strings, booleans.
            sample_weight: array-like of shape (n_samples,), default=None.
            **overrides: `steps`, `epochs`, `batch_size`, `monitors` for this fit only. A
                `ValidationMonitor` among `monitors` takes raw (x, y) like this fit: they are
                encoded as the model sees them (its loss is on class ids).

        Returns:
            self.
        """
        return self._fit(X, y, sample_weight, reset=True, **overrides)

    def partial_fit(self, X: Any, y: Any, classes: Any = None, sample_weight: Any = None, **overrides: Any) -> Any:
        """Keep training the model on (X, y): one epoch, or the constructor's `steps` when set (a
        `steps=`/`epochs=` override wins over both). `classes` is required on the first call."""
        first = not hasattr(self, "estimator_")
        if first and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        if first:
            return self._fit(X, y, sample_weight, reset=True, classes=classes, partial=True, **overrides)
        return self._fit(X, y, sample_weight, reset=False, partial=True, **overrides)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, array of shape (n_samples, n_classes), columns in `classes_` order."""
        return self._predict_outputs(X, "probabilities")

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """The log of `predict_proba` (probabilities below 1e-30 count as 1e-30)."""
        return np.log(np.clip(self.predict_proba(X), 1e-30, None))

    def predict(self, X: Any) -> np.ndarray:
        """Predicted class labels, array of shape (n_samples,)."""
        ids = np.argmax(self.predict_proba(X), axis=1)
        return self.classes_[ids]


def _check_no_missing_labels(y: np.ndarray) -> None:
    """Labels of dtype object (strings, mixed) may hold None or NaN, which scikit-learn's checks let
    through to a sort that fails with "'<' not supported between instances of 'float' and 'str'"."""
    if y.dtype != object:
        return  # float NaN is scikit-learn's "Input y contains NaN."
    import pandas as pd

    missing = np.flatnonzero(pd.isna(y))
    if missing.size:
        raise ValueError(
            f"Input y contains NaN or None: {missing.size} of {y.size} labels are missing (the first at row "
            f"{int(missing[0])}). Drop those rows, or give them a label."
        )
