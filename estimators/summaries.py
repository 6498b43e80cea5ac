"""TensorBoard scalar summaries without depending on the tensorboard package.

`tf.summary.scalar` lives in tensorboard, which tensorflow-cpu does not install; `tf.summary.write`
with the scalars plugin's metadata writes the same event records. Writers belong to the Estimator
that made them (one per directory, so every monitor and every evaluation of one model appends to
one event file); see `Estimator`'s `_summary_writer`.
"""

from __future__ import annotations

from collections.abc import Mapping

import tensorflow as tf
from tensorflow.core.framework import summary_pb2

__all__ = ["SCALAR_METADATA", "write_scalars"]

SCALAR_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")
).SerializeToString()


def write_scalars(writer: tf.summary.SummaryWriter, values: Mapping[str, float], step: int) -> None:
    """Append one scalar event per value to `writer`'s event file (TensorBoard shows them as scalars)."""
    with writer.as_default():
        for tag, value in values.items():
            tf.summary.write(tag, tf.constant(float(value), tf.float32), step=int(step), metadata=SCALAR_METADATA)
    writer.flush()
