"""Feeding pandas DataFrames and Series: numeric columns as one float32 block, categories as ids.

The encoding (which columns are numeric, each categorical column's vocabulary, imputation values,
the class labels) is learned at fit time by `feeders.frame_encoding.FrameEncoding` and
`LabelEncoding`, saved with the model as JSON (`PandasFeeder.state`), and applied unchanged to
evaluation and prediction frames. Once encoded, the arrays are fed by a `DataFeeder`.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import tensorflow as tf

from feeders._validation import check_impute
from feeders.frame_encoding import FrameEncoding, LabelEncoding, as_frame, encodings_from_state
from feeders.numpy_feeder import DataFeeder
from feeders.signature import Signatures

__all__ = ["PandasFeeder", "is_pandas"]


def is_pandas(x: Any) -> bool:
    """Whether `x` is a pandas DataFrame or Series."""
    return isinstance(x, (pd.DataFrame, pd.Series))


class PandasFeeder:
    """Feeds a DataFrame (or Series) and optional labels as whole `tf.data` batches.

    Args:
        x: DataFrame or Series of features.
        y: labels or targets (Series, array-like) or None. String, categorical and boolean labels are
            encoded as ids; predictions can be decoded with `label_encoding.decode`.
        batch_size, shuffle, epochs, seed: as in `DataFeeder`.
        impute: False (default: a NaN is an error naming its column), or True (or "mean"): fill NaN
            (numeric: training mean; categorical: the out-of-vocabulary id), learned here and kept
            in `state`.
        state: an encoding learned earlier (`PandasFeeder.state` at fit time), applied instead of
            learning a new one; evaluation and prediction use this. A `FileDataFeeder` state selects
            its feature columns by name (see `encodings_from_state`).

    Example:
        >>> df = pd.DataFrame({"age": [31.0, 45.0, 27.0], "city": ["Paris", "Oslo", "Paris"]})
        >>> feeder = PandasFeeder(df, pd.Series(["yes", "no", "yes"]), batch_size=2)
        >>> feeder.encoding.vocabularies
        {'city': ['Oslo', 'Paris']}
    """

    def __init__(
        self,
        x: Any,
        y: Any = None,
        batch_size: int = 32,
        shuffle: bool = True,
        epochs: int | None = None,
        seed: int | None = None,
        impute: bool | str | None = False,
        state: dict[str, Any] | None = None,
    ) -> None:
        impute = check_impute(impute) is not None
        frame = as_frame(x)
        if state is not None:
            self.encoding, self.label_encoding = encodings_from_state(state)
            if impute:
                self.encoding.impute = True
        else:
            self.encoding = FrameEncoding.fit(frame, impute=impute)
            self.label_encoding = LabelEncoding.fit(y) if y is not None else LabelEncoding(None)
        features = self.encoding.transform(frame)
        targets = None
        if y is not None:
            if isinstance(y, pd.DataFrame):
                targets = y.to_numpy()
            else:
                targets = self.label_encoding.encode(y.to_numpy() if isinstance(y, pd.Series) else y)
        self._inner = DataFeeder(features, targets, batch_size=batch_size, shuffle=shuffle, epochs=epochs, seed=seed)
        self.batch_size = self._inner.batch_size
        self.n_samples = self._inner.n_samples

    @property
    def finite(self) -> bool:
        """Whether `dataset()` ends (a number of epochs) or repeats forever."""
        return self._inner.finite

    @property
    def state(self) -> dict[str, Any]:
        """The frame and label encodings (`{"type": "pandas", "frame": ..., "labels": ...}`), saved with the model."""
        return {"type": "pandas", "frame": self.encoding.to_json(), "labels": self.label_encoding.to_json()}

    @property
    def input_signature(self) -> Signatures:
        """The encoded features' signature: one float32 block, or a dict with one entry per categorical column."""
        return self._inner.input_signature

    @property
    def output_signature(self) -> Signatures:
        """The encoded targets' signature, or None."""
        return self._inner.output_signature

    @property
    def x(self) -> Any:
        """The encoded features."""
        return self._inner.x

    @property
    def y(self) -> Any:
        """The encoded targets, or None."""
        return self._inner.y

    def dataset(self) -> tf.data.Dataset:
        """Batches of the encoded frame, as `DataFeeder.dataset` gives them."""
        return self._inner.dataset()
