"""`CannedRegressor`: numeric targets of shape (n_samples,) or (n_samples, n_outputs) in, predictions out."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import RegressorMixin

from estimators.canned.base import CannedEstimator
from estimators.canned.data import column_statistics
from estimators.canned.export import regressor_outputs

__all__ = ["CannedRegressor"]


class CannedRegressor(RegressorMixin, CannedEstimator):
    """The regressor head of the canned estimators: `fit`, `partial_fit`, `predict`."""

    _head = "regressor"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _encode_targets(self, y: Any, classes: Any, reset: bool, sample_weight: Any = None) -> np.ndarray:
        return np.asarray(y, dtype=np.float64)

    def _head_params(self, y: np.ndarray, sample_weight: np.ndarray | None) -> dict[str, Any]:
        # The network learns standardised targets (like it learns from standardised features), so a
        # target around 150 does not take thousands of steps of bias updates. With sample_weight,
        # the weighted mean and standard deviation: a weight of 2 standardises like a repeated row.
        mean, scale = column_statistics(y.reshape(len(y), -1), sample_weight)
        return {"n_outputs": 1 if y.ndim == 1 else y.shape[1], "target_mean": mean, "target_scale": scale}

    def _outputs(self) -> Any:
        """The export's output: `predictions`, in the targets' units."""
        return regressor_outputs

    def fit(self, X: Any, y: Any, sample_weight: Any = None, **overrides: Any) -> Any:
        """Train from scratch on X (array-like or DataFrame) and targets y of shape (n_samples,) or
        (n_samples, n_outputs). `**overrides`: `steps`, `epochs`, `batch_size`, `monitors`.

        The network learns standardised targets, `(y - mean) / std` with the (weighted) statistics
        of this y, inside the model: the inner Estimator (`estimator_`) takes and predicts targets in
        their own units. A `ValidationMonitor` among `monitors` takes raw (x, y) like this fit: its
        "mse", "mae" and "rmse" are in the targets' units, and its `loss` is the training loss, the
        MSE on the standardised scale (the validation MSE divided by the variance of the training y,
        per output, averaged).
        """
        return self._fit(X, y, sample_weight, reset=True, **overrides)

    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None, **overrides: Any) -> Any:
        """Keep training the model on (X, y): one epoch, or the constructor's `steps` when set (a
        `steps=`/`epochs=` override wins over both). The first call standardises targets with its y."""
        return self._fit(X, y, sample_weight, reset=not hasattr(self, "estimator_"), partial=True, **overrides)

    def predict(self, X: Any) -> np.ndarray:
        """Predicted values, array of shape (n_samples,) or (n_samples, n_outputs): the model's
        "predictions" output (float32 values, in the targets' units)."""
        return self._predict_outputs(X, "predictions").astype(np.float64)
