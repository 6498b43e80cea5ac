"""TensorBoard scalar summaries without depending on the tensorboard package.

`tf.summary.scalar` lives in tensorboard, which tensorflow-cpu does not install; `tf.summary.write`
with the scalars plugin's metadata writes the same event records.
"""

from __future__ import annotations

from collections.abc import Mapping

import tensorflow as tf
from tensorflow.core.framework import summary_pb2

SCALAR_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")
).SerializeToString()


def write_scalars(logdir: str, values: Mapping[str, float], step: int) -> None:
    """Append one event per value to the event file in `logdir` (TensorBoard shows them as scalars)."""
    writer = tf.summary.create_file_writer(logdir)
    with writer.as_default():
        for tag, value in values.items():
            tf.summary.write(tag, tf.constant(float(value), tf.float32), step=int(step), metadata=SCALAR_METADATA)
    writer.close()
