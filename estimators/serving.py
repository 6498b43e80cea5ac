"""What a SavedModel export takes and returns: raw columns in, original labels out, all in the graph.

The `serving_default` signature of an export carries the preprocessing that `predict()` does in
Python, so TF Serving or any process with TensorFlow alone (no skflow) gets the same answers:

- A model fitted on a DataFrame (pandas or dask) takes one 1-D input per training column, named by
  the column. Its dtype is the column's own: for numeric columns `tf.float32` (float32 columns),
  `tf.int64` (integer columns; `tf.float64` when the model was fitted with `impute`, so the input
  can hold the NaN it fills) or `tf.float64` (other numbers, and every numeric column of a model
  whose skflow.json predates the record of dtypes); for categorical columns, by their vocabulary:
  `tf.string` (strings, and mixed vocabularies as text), `tf.bool` (booleans: a missing boolean
  cannot be served), `tf.int64` (integers) or `tf.float64` (other numbers). Inside the graph the
  numeric columns are stacked in the fitted order as float32 (through float64, as the pandas
  feeder does); NaN is filled with the saved training means when the model was fitted with
  `impute` and is an error naming the column otherwise, as infinity always is. Each categorical
  column is looked up in its vocabulary (a `tf.lookup.StaticHashTable`): a value not seen at fit
  gets the out-of-vocabulary id `len(vocabulary)`, and so does a missing category (a string input
  holds it as text such as "nan"). Every fitted column is required; other columns are not inputs.
- A model fitted on Parquet/CSV files takes one `tf.float32` input per feature column, stacked in
  the fitted order.
- A model fitted on arrays keeps its single `features` input (the fitted dtype and shape; NaN
  filled with the saved means when fitted with `impute`); a dict of arrays keeps its keys.

Input names: a column name that is not a valid signature key (ASCII letters, digits and `_`,
starting with a letter, not a Python keyword) is sanitised: every other character becomes `_`, a
name that does not start with a letter gets the prefix `col_`, a keyword gets the suffix `_`, and
a name already taken gets `_2`, `_3`... The export records the mapping as two string variables of
the same length, `input_keys` (signature keys) and `input_columns` (the columns they carry):
`tf.saved_model.load(path).input_columns.numpy()`.

Outputs: the model_fn's predictions (a single tensor as `predictions`). When the feeder encoded the
class labels (string, boolean or categorical labels of a DataFrame fit), the class-id outputs
(`class`, `classes`, `class_ids` of an integer dtype; a single integer `predictions` tensor) are
decoded in the graph to the original labels (`tf.string` for strings, `tf.int64`, `tf.bool` or
`tf.float64` for other labels) under the same names, exactly as `predict()` returns them; an id
outside the classes decodes to itself (as text for string labels).
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from estimators.metadata import ModelMetadata
from feeders import FrameEncoding, LabelEncoding

__all__ = [
    "CLASS_KEYS",
    "ServingInputs",
    "column_inputs",
    "decode_ids",
    "label_decoder",
    "label_tensor",
    "serving_inputs",
    "signature_keys",
]

CLASS_KEYS = ("class", "classes", "class_ids")
NUMERIC_KEY = "numeric"  # the pandas feeder's float32 block (feeders.frame_encoding)
_VALID_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def signature_keys(names: Sequence[str]) -> list[str]:
    """The serving signature's key for each of `names`, in order (see the module docstring).

    Example:
        >>> signature_keys(["city", "zip code", "2nd", "class", "zip_code"])
        ['city', 'zip_code_2', 'col_2nd', 'class_', 'zip_code']
    """
    keys: list[str] = []
    taken = {n for n in names if _VALID_KEY.fullmatch(n) and not keyword.iskeyword(n)}
    for name in names:
        if name in taken and name not in keys:
            keys.append(name)
            continue
        key = re.sub(r"[^A-Za-z0-9_]", "_", name)
        if not key[:1].isalpha() or not key[:1].isascii():
            key = f"col_{key}"
        if keyword.iskeyword(key):
            key = f"{key}_"
        base, i = key, 2
        while key in taken or key in keys:
            key, i = f"{base}_{i}", i + 1
        taken.add(key)
        keys.append(key)
    return keys


class ServingInputs:
    """The serving signature's inputs and the graph that turns them into the model's features.

    Args:
        columns: what each input carries (a column name, a dict key, or "features"), in order.
        specs: the input specs (shape, dtype), in the same order.
        features: `features(inputs)`: the model's features from the inputs by column, in the graph.
        resources: lookup tables the graph uses, kept by the exported module.
    """

    def __init__(
        self,
        columns: Sequence[str],
        specs: Sequence[tf.TensorSpec],
        features: Callable[[dict[str, tf.Tensor]], Any],
        resources: Sequence[Any] = (),
    ) -> None:
        self.columns = list(columns)
        self.keys = signature_keys(self.columns)
        self._specs = list(specs)
        self._features = features
        self.resources = list(resources)

    def specs(self) -> dict[str, tf.TensorSpec]:
        """The signature's inputs: key -> `tf.TensorSpec` named by the key."""
        return {k: tf.TensorSpec(s.shape, s.dtype, name=k) for k, s in zip(self.keys, self._specs, strict=True)}

    def features(self, inputs: Mapping[str, tf.Tensor]) -> Any:
        """The model's features (what the feeder feeds it) from the signature's `inputs` by key."""
        return self._features({c: inputs[k] for c, k in zip(self.columns, self.keys, strict=True)})


# ---------------------------------------------------------------------- choosing the inputs
def serving_inputs(meta: ModelMetadata) -> ServingInputs:
    """The inputs of a model, from what it was fitted on (its feeder state in `meta`).

    Raises:
        ValueError: a feeder state of a kind this version does not know (named in the message).
    """
    state = meta.feeder_state
    kind = _state_kind(state)
    if kind is None or kind == "numpy":
        fills = state.get("fill_values") if state is not None else None
        return _tensor_inputs(meta.features, fills)
    if kind == "pandas":
        return _frame_inputs(FrameEncoding.from_json(state["frame"]), meta.column_dtypes or {}, meta.features)
    if kind == "file":
        columns = [str(c) for c in state["feature_columns"]]
        return _stacked_inputs(columns, [tf.float32] * len(columns), None, check=False)
    raise ValueError(
        f"Cannot export this model: it was fitted through a feeder whose saved state is of kind {kind!r}, which "
        "this version of skflow does not know how to serve (known: 'pandas', 'file', 'numpy'). Export it with "
        "the skflow version that fitted it, or refit it."
    )


def column_inputs(meta: ModelMetadata, columns: Sequence[str], dtypes: Mapping[str, str] | None) -> ServingInputs:
    """One input per column of a model fitted on a 2-D array whose columns had these names (a
    canned estimator fitted on a numeric DataFrame), stacked as its `features` in this order."""
    state = meta.feeder_state
    fills = state.get("fill_values") if _state_kind(state) == "numpy" else None
    dtypes = dtypes or {}
    kinds = [_numeric_dtype(dtypes.get(c), fills is not None) for c in columns]
    return _stacked_inputs(list(columns), kinds, fills, check=True, dtype=meta.features.dtype)


def _state_kind(state: Mapping[str, Any] | None) -> str | None:
    """The kind of input a feeder `state` was learned from ("pandas", "file", "numpy"...), as the feeders tag it."""
    if state is None:
        return None
    kind = state.get("type")
    if isinstance(kind, str):
        return kind
    if "frame" in state:
        return "pandas"
    if "feature_columns" in state:
        return "file"
    return "unknown"


# ---------------------------------------------------------------------- arrays
def _tensor_inputs(signature: Any, fill_values: Any) -> ServingInputs:
    """The fitted features as they are (`features`, or one input per dict key), NaN filled when imputing."""
    if isinstance(signature, Mapping):
        names = list(signature)
        fills = fill_values if isinstance(fill_values, Mapping) else {}

        def features(inputs: dict[str, tf.Tensor]) -> Any:
            return {k: _fill_nan(inputs[k], fills.get(k)) for k in names}

        return ServingInputs(names, [_spec(signature[k]) for k in names], features)

    def matrix(inputs: dict[str, tf.Tensor]) -> Any:
        return _fill_nan(inputs["features"], fill_values)

    return ServingInputs(["features"], [_spec(signature)], matrix)


def _spec(signature: Any) -> tf.TensorSpec:
    return tf.TensorSpec(signature.to_spec().shape, signature.dtype)


def _fill_nan(x: tf.Tensor, fill: Any) -> tf.Tensor:
    if fill is None or not x.dtype.is_floating:
        return x
    return tf.where(tf.math.is_nan(x), tf.constant(fill, x.dtype), x)


# ---------------------------------------------------------------------- columns stacked in a matrix
def _stacked_inputs(
    columns: list[str], dtypes: list[tf.DType], fills: Any, check: bool, dtype: tf.DType = tf.float32
) -> ServingInputs:
    """One 1-D input per column, stacked (as float64, then `dtype`) into the model's feature matrix."""
    fill_of = dict(zip(columns, fills, strict=True)) if fills is not None else {}

    def features(inputs: dict[str, tf.Tensor]) -> tf.Tensor:
        values = [_numeric(c, inputs[c], c in fill_of, fill_of.get(c), check) for c in columns]
        return tf.cast(tf.stack(values, axis=1), dtype)

    return ServingInputs(columns, [tf.TensorSpec([None], d) for d in dtypes], features)


def _numeric(name: str, x: tf.Tensor, impute: bool, fill: Any, check: bool) -> tf.Tensor:
    """A numeric column as float64: NaN filled with `fill` when imputing; with `check`, NaN (when
    not imputing) and infinity are errors naming the column, as they are for `predict`."""
    x = tf.cast(x, tf.float64)
    if impute:
        x = tf.where(tf.math.is_nan(x), tf.constant(fill if fill is not None else 0.0, tf.float64), x)
        if check:
            x = tf.debugging.assert_all_finite(x, f"Input X contains infinity in column {name!r}.")
    elif check:
        x = tf.debugging.assert_all_finite(
            x, f"Input X contains NaN or infinity in column {name!r}; the model was fitted without impute."
        )
    return x


def _numeric_dtype(recorded: str | None, impute: bool) -> tf.DType:
    """The input dtype of a numeric column whose pandas dtype at fit was `recorded` (None: unknown).
    Integers are int64, unless the model imputes: then float64, which can hold the NaN it fills."""
    name = (recorded or "").lower()
    if name == "float32":
        return tf.float32
    if name.startswith(("int", "uint")) and not impute:
        return tf.int64
    return tf.float64


# ---------------------------------------------------------------------- DataFrames
def _frame_inputs(encoding: FrameEncoding, dtypes: Mapping[str, str], signature: Any) -> ServingInputs:
    """One input per training column of a DataFrame, encoded as `FrameEncoding.transform` does."""
    lookups = {name: _Vocabulary(vocab, dtypes.get(name)) for name, vocab in encoding.vocabularies.items()}
    specs = [
        tf.TensorSpec([None], lookups[c].dtype if c in lookups else _numeric_dtype(dtypes.get(c), encoding.impute))
        for c in encoding.columns
    ]
    numeric, fills, impute = list(encoding.numeric), encoding.fill_values, encoding.impute
    block_dtype = signature[NUMERIC_KEY].dtype if isinstance(signature, Mapping) else tf.float32

    def features(inputs: dict[str, tf.Tensor]) -> Any:
        out: dict[str, tf.Tensor] = {}
        if numeric:
            values = [_numeric(c, inputs[c], impute, fills.get(c), check=True) for c in numeric]
            out[NUMERIC_KEY] = tf.cast(tf.cast(tf.stack(values, axis=1), tf.float32), block_dtype)
        for name, lookup in lookups.items():
            out[name] = lookup.ids(inputs[name])
        return out if lookups else out[NUMERIC_KEY]

    tables = [lookup.table for lookup in lookups.values() if lookup.table is not None]
    return ServingInputs(encoding.columns, specs, features, tables)


class _Vocabulary:
    """A categorical column's input dtype and its lookup table: value -> id (its position), unseen
    values -> the out-of-vocabulary id `len(vocabulary)`."""

    def __init__(self, vocabulary: list[Any], recorded: str | None) -> None:
        self.size = len(vocabulary)
        self.dtype = _category_dtype(vocabulary, recorded)
        if self.dtype == tf.string:
            keys = tf.constant([str(v) for v in vocabulary], tf.string)
        elif self.dtype == tf.float64:
            keys = tf.bitcast(tf.constant([float(v) for v in vocabulary], tf.float64) + 0.0, tf.int64)
        else:
            keys = tf.constant([int(v) for v in vocabulary], tf.int64)
        self.table = None
        if vocabulary:
            values = tf.range(self.size, dtype=tf.int64)
            self.table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(keys, values), self.size)

    def ids(self, x: tf.Tensor) -> tf.Tensor:
        if self.table is None:
            return tf.zeros_like(x, tf.int64)  # an empty vocabulary: everything is out of vocabulary (id 0)
        if self.dtype == tf.float64:
            x = tf.bitcast(x + 0.0, tf.int64)  # exact values as keys; + 0.0 makes -0.0 equal to 0.0
        elif self.dtype == tf.bool:
            x = tf.cast(x, tf.int64)
        return self.table.lookup(x)


def _category_dtype(vocabulary: list[Any], recorded: str | None) -> tf.DType:
    """The input dtype of a categorical column: its vocabulary's kind (booleans, integers, other
    numbers; strings, and anything mixed, as text), or from its dtype when the vocabulary is empty."""
    if not vocabulary:
        return tf.bool if (recorded or "").lower() in ("bool", "boolean") else tf.string
    if all(isinstance(v, bool) for v in vocabulary):
        return tf.bool
    if all(isinstance(v, str) for v in vocabulary):
        return tf.string
    if all(isinstance(v, int) and not isinstance(v, bool) for v in vocabulary):
        return tf.int64
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vocabulary):
        return tf.float64
    return tf.string


# ---------------------------------------------------------------------- labels
def label_tensor(labels: Any) -> tf.Tensor:
    """The class labels as a constant: `tf.string` for strings (and mixed labels, as text),
    `tf.bool`, `tf.int64` or `tf.float64` for other labels."""
    values = np.asarray(np.asarray(labels, dtype=object).tolist()) if len(labels) else np.asarray([], np.str_)
    kind = values.dtype.kind
    if kind == "b":
        return tf.constant(values, tf.bool)
    if kind in "iu":
        return tf.constant(values, tf.int64)
    if kind == "f":
        return tf.constant(values, tf.float64)
    return tf.constant([str(v) for v in values.tolist()], tf.string)


def decode_ids(ids: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """`labels[ids]`; an id outside the labels decodes to itself (as text for string labels)."""
    ids = tf.cast(ids, tf.int64)
    n = tf.shape(labels, out_type=tf.int64)[0]
    inside = (ids >= 0) & (ids < n)
    decoded = tf.gather(labels, tf.clip_by_value(ids, 0, tf.maximum(n - 1, 0)))
    if labels.dtype == tf.string:
        itself = tf.strings.as_string(ids)
    elif labels.dtype == tf.bool:
        itself = ids != 0
    else:
        itself = tf.cast(ids, labels.dtype)
    return tf.where(inside, decoded, itself)


def label_decoder(meta: ModelMetadata) -> Callable[[Any], dict[str, tf.Tensor]]:
    """`outputs(predictions)`: the model_fn's predictions as the signature's outputs dict, class
    ids decoded to the labels the feeder encoded, as `predict()` decodes them (see the module docstring)."""
    state = meta.feeder_state or {}
    classes = LabelEncoding.from_json(state.get("labels")).classes if _state_kind(state) == "pandas" else None

    def outputs(predictions: Any) -> dict[str, tf.Tensor]:
        if not classes:
            return dict(predictions) if isinstance(predictions, Mapping) else {"predictions": predictions}
        labels = label_tensor(classes)
        if isinstance(predictions, Mapping):
            return {
                k: decode_ids(v, labels) if k in CLASS_KEYS and v.dtype.is_integer else v
                for k, v in predictions.items()
            }
        return {"predictions": decode_ids(predictions, labels) if predictions.dtype.is_integer else predictions}

    return outputs
