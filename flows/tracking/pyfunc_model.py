"""The MLflow pyfunc model skflow logs ("models from code"): a SavedModel served from DataFrames.

MLflow runs this file when it loads the model (`mlflow.pyfunc.load_model`), so it imports only
what the model's pip requirements install (TensorFlow, numpy, pandas, MLflow) and no skflow
module, and nothing pickled is needed to load it. It works from the SavedModel's own
`serving_default` signature:

- inputs: a DataFrame column feeds the input of its name, cast to that input's dtype (strings for
  string inputs). A column whose name is not a valid signature key (`"age (years)"`) feeds the
  sanitised key the export recorded for it (the SavedModel's `input_keys`/`input_columns`
  variables); a model with a single 2-D input (`features`, a model fitted on a numpy array) is
  fed the DataFrame's columns stacked in the order recorded at logging time (`model_config["columns"]`,
  `feature_0 .. feature_{n-1}` unless the caller named them);
- outputs: a DataFrame with one column per 1-D output (`class`, `classes`, `predictions`), and one
  column per class for a 2-D output (`probabilities_0`, `probabilities_1`, ...: plain scalar
  columns, which every MLflow signature, JSON and CSV payload handles); string outputs as `str`.
"""

from __future__ import annotations

from typing import Any

import mlflow
import numpy as np
import pandas as pd

__all__ = ["SavedModelPyfunc", "feeds_from_frame", "frame_from_outputs", "input_columns"]


def input_columns(loaded: Any) -> dict[str, str]:
    """Serving input key -> the DataFrame column it takes, as the export recorded them (a key is the
    column's own name unless the name had to be sanitised)."""
    keys, columns = getattr(loaded, "input_keys", None), getattr(loaded, "input_columns", None)
    if keys is None or columns is None:
        return {}
    decode = lambda values: [v.decode("utf-8") for v in values.numpy().tolist()]  # noqa: E731
    return dict(zip(decode(keys), decode(columns), strict=True))


def feeds_from_frame(
    frame: Any, inputs: dict[str, Any], columns: list[str] | None, names: dict[str, str] | None = None
) -> dict[str, Any]:
    """Keyword arguments for the serving function: numpy arrays by input name.

    Args:
        frame: a DataFrame (a 2-D array is taken as columns in order).
        inputs: the serving function's inputs, name -> `tf.TensorSpec`.
        columns: the column order of a single 2-D input, as recorded at logging time.
        names: input key -> the column it takes (`input_columns`); a key not in it takes the
            column of its own name.

    Raises:
        ValueError: a column the model needs is missing.
    """
    names = names or {}
    if not isinstance(frame, pd.DataFrame):
        frame = pd.DataFrame(np.asarray(frame), columns=columns)
    if len(inputs) == 1:
        name, spec = next(iter(inputs.items()))
        if name not in frame.columns and len(spec.shape) == 2 and spec.shape[-1] != 1:
            wanted = columns if columns is not None else list(frame.columns)
            missing = [c for c in wanted if c not in frame.columns]
            if missing:
                raise ValueError(f"The model needs columns {missing}; the input has {list(frame.columns)}.")
            return {name: frame[wanted].to_numpy(dtype=spec.dtype.as_numpy_dtype)}
    column_of = {key: names.get(key, key) for key in inputs}
    missing = [column for column in column_of.values() if column not in frame.columns]
    if missing:
        raise ValueError(f"The model needs columns {missing}; the input has {list(frame.columns)}.")
    return {key: _column(frame[column_of[key]], spec) for key, spec in inputs.items()}


def _column(series: pd.Series, spec: Any) -> np.ndarray:
    if spec.dtype.name == "string":
        values = series.astype(str).to_numpy(dtype=object)
    else:
        values = series.to_numpy(dtype=spec.dtype.as_numpy_dtype)
    if len(spec.shape) == 2:
        values = values.reshape(-1, 1)
    return values


def frame_from_outputs(outputs: dict[str, Any]) -> pd.DataFrame:
    """One column per 1-D output, `<name>_<i>` per column of a 2-D one, bytes decoded to `str`."""
    columns: dict[str, Any] = {}
    for name in sorted(outputs):
        value = np.asarray(outputs[name])
        if value.dtype.kind in "SO":
            value = np.vectorize(lambda v: v.decode("utf-8") if isinstance(v, bytes) else v, otypes=[object])(value)
        if value.ndim <= 1:
            columns[name] = value.reshape(-1)
        elif value.ndim == 2:
            columns.update({f"{name}_{i}": value[:, i] for i in range(value.shape[1])})
        else:
            columns[name] = list(value.reshape(value.shape[0], -1))
    return pd.DataFrame(columns)


class SavedModelPyfunc(mlflow.pyfunc.PythonModel):
    """Predict with the `serving_default` signature of the SavedModel in artifact "saved_model"."""

    def load_context(self, context: Any) -> None:
        import tensorflow as tf

        self._saved_model = tf.saved_model.load(context.artifacts["saved_model"])
        self._serve = self._saved_model.signatures["serving_default"]
        self._inputs = dict(self._serve.structured_input_signature[1])
        self._names = input_columns(self._saved_model)
        self._columns = (context.model_config or {}).get("columns")

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        import tensorflow as tf

        feeds = feeds_from_frame(model_input, self._inputs, self._columns, self._names)
        outputs = self._serve(**{k: tf.constant(v) for k, v in feeds.items()})
        return frame_from_outputs({k: v.numpy() for k, v in outputs.items()})


if __name__ != "flows.tracking.pyfunc_model":  # run by MLflow as the model's code, not imported by skflow
    mlflow.models.set_model(SavedModelPyfunc())
