"""skflow feeders: turn in-memory and out-of-core data into `tf.data` batches plus a signature.

`feeders` never imports `prefect` or `mlflow`.
"""

from feeders.base import Feeder
from feeders.file_feeder import FileDataFeeder
from feeders.numpy_feeder import DataFeeder, validate_features, validate_targets
from feeders.pandas_feeder import FrameEncoding, LabelEncoding, PandasFeeder
from feeders.setup import is_feeder, setup_predict_data_feeder, setup_train_data_feeder
from feeders.signature import (
    TensorSignature,
    check_signatures_compatible,
    signature_from_json,
    signature_to_json,
    signatures_from_spec,
)
from feeders.sparse_feeder import SparseDataFeeder, validate_sparse_features
from feeders.streaming_feeder import StreamingDataFeeder

__all__ = [
    "DataFeeder",
    "FileDataFeeder",
    "Feeder",
    "FrameEncoding",
    "LabelEncoding",
    "PandasFeeder",
    "SparseDataFeeder",
    "StreamingDataFeeder",
    "TensorSignature",
    "check_signatures_compatible",
    "is_feeder",
    "setup_predict_data_feeder",
    "setup_train_data_feeder",
    "signature_from_json",
    "signature_to_json",
    "signatures_from_spec",
    "validate_features",
    "validate_sparse_features",
    "validate_targets",
]

# TEMPORARY (main checkout only, replaced by the feeders-api branch at merge)
import contextlib as _contextlib  # noqa: E402

import tensorflow as _tf  # noqa: E402

from feeders.base import pop_feeder_error as _pop  # noqa: E402
from feeders.numpy_feeder import _signature as signature_of  # noqa: E402, F401
from feeders.numpy_feeder import _slice as slice_rows  # noqa: E402, F401
from feeders.signature import Signatures, cast_to_signature  # noqa: E402, F401


def n_rows(value):
    leaf = next(iter(value.values())) if isinstance(value, dict) else value
    return int(leaf.shape[0])


@_contextlib.contextmanager
def reraise_feeder_errors(feeder):
    try:
        yield
    except _tf.errors.OpError:
        original = _pop()
        if original is not None:
            raise original.with_traceback(None) from None
        raise


def reraising_iterator(dataset, feeder):
    iterator = iter(dataset)
    while True:
        with reraise_feeder_errors(feeder):
            try:
                element = next(iterator)
            except StopIteration:
                return
        yield element
