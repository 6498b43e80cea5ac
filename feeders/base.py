"""The Feeder protocol: what every feeder gives the Estimator.

A feeder turns one kind of data into a `tf.data.Dataset` of *whole batches* (never rows: a
pipeline that batches single rows pays tf.data's per-element cost once per row), prefetched, plus
the `TensorSignature`s of features and targets. A feeder that runs Python code inside `tf.data`
also has an `errors` attribute (a `feeders.errors.FeederErrors`), read by
`reraise_feeder_errors(feeder)`.
Feeders whose encoding is learned from the training data (pandas vocabularies, say) expose it as
`state`, a JSON-serialisable dict that the Estimator saves with the model and hands back (through
`setup_train_data_feeder(..., state=...)` / `setup_predict_data_feeder(..., state=...)`) when it
feeds evaluation and prediction data, so the same encoding is applied.

Every state names the kind of input it was learned from in its `"type"` entry: `"pandas"`
(`PandasFeeder`, and `DaskDataFeeder` on dask DataFrames: the same encoding), `"file"`
(`FileDataFeeder`: the feature and target columns) or `"numpy"` (`DataFeeder` with `impute`: the
imputation values). A feeder given a state of another kind applies what carries over (a file-fitted
model takes a DataFrame with those columns) and otherwise raises a `ValueError` that says what the
model was fitted on. States saved before the tag existed are recognised by their keys.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import tensorflow as tf

from feeders.signature import Signatures

__all__ = ["Feeder", "describe_state", "prefetched", "state_kind"]


@runtime_checkable
class Feeder(Protocol):
    """What `Estimator.fit/evaluate/predict` need from a feeder.

    Attributes:
        batch_size: rows per batch (the last batch of a finite pass may be smaller).
        finite: whether `dataset()` ends (a fixed number of epochs) or repeats forever.

    A feeder whose dataset runs Python code (a generator) also has `errors`, a
    `feeders.errors.FeederErrors`; it is not part of the protocol, and `reraise_feeder_errors`
    treats a feeder without it as one that records nothing.
    """

    batch_size: int

    @property
    def finite(self) -> bool:
        """Whether `dataset()` ends (a number of epochs) or repeats forever."""

    @property
    def input_signature(self) -> Signatures:
        """Signature of one batch of features, without the batch dimension."""

    @property
    def output_signature(self) -> Signatures:
        """Signature of one batch of targets, or None when there are no targets."""

    @property
    def state(self) -> dict[str, Any] | None:
        """JSON-serialisable encoding learned from the data (None when there is nothing to learn)."""

    def dataset(self) -> tf.data.Dataset:
        """`(features, targets)` batches, or features alone when there are no targets; prefetched."""


def state_kind(state: dict[str, Any] | None) -> str | None:
    """The kind of input a feeder `state` was learned from: "pandas", "file", "numpy", or None without one.

    States written before they carried a `"type"` are recognised by their keys ("frame": pandas,
    "feature_columns": file); anything else is "unknown".
    """
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


def describe_state(state: dict[str, Any] | None) -> str:
    """What a model with this feeder `state` was fitted on, for error messages."""
    kind = state_kind(state)
    if kind == "pandas":
        return f"a pandas (or dask) DataFrame with columns {list(state['frame'].get('columns', []))}"
    if kind == "file":
        return f"Parquet/CSV files with feature columns {list(state.get('feature_columns') or [])}"
    if kind == "numpy":
        return "numpy arrays (with imputation of NaN)"
    return f"input whose saved encoding this version does not know (type {state.get('type')!r})"


def prefetched(dataset: tf.data.Dataset, buffer_size: int | None = None) -> tf.data.Dataset:
    """The last stage of every feeder's pipeline: prefetch (`buffer_size` batches; None: tf.data's
    default), with tf.data's autotuning off.

    The autotuning thread delays destroying an iterator: measured on 200k x 28 floats, a `fit`
    returned ~150 ms after its last step in 5 of 12 fits (up to seconds on a loaded machine) while
    tf.data stopped it; without it, ~1 ms every time. Fixed parallelism (one thread per core for
    `num_parallel_calls=AUTOTUNE`) keeps up with training on these whole-batch pipelines
    (docs/benchmarks.md).
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.prefetch(tf.data.AUTOTUNE if buffer_size is None else buffer_size).with_options(options)
