"""TensorBoard scalar summaries without depending on the tensorboard package.

`tf.summary.scalar` lives in tensorboard, which tensorflow-cpu does not install; `tf.summary.write`
with the scalars plugin's metadata writes the same event records.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import tensorflow as tf
from tensorflow.core.framework import summary_pb2

SCALAR_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")
).SerializeToString()


_writers: dict[str, Any] = {}


def write_scalars(logdir: str, values: Mapping[str, float], step: int) -> None:
    """Append one event per value to the event file in `logdir` (TensorBoard shows them as scalars).

    One writer per directory for the life of the process, so repeated evaluations append to one file.
    """
    writer = _writers.get(logdir)
    if writer is None:
        writer = _writers[logdir] = tf.summary.create_file_writer(logdir)
    with writer.as_default():
        for tag, value in values.items():
            tf.summary.write(tag, tf.constant(float(value), tf.float32), step=int(step), metadata=SCALAR_METADATA)
    writer.flush()
