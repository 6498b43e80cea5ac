"""skflow feeders: turn in-memory and out-of-core data into `tf.data` batches plus a signature.

`feeders` never imports `prefect` or `mlflow`.
"""

from feeders.base import Feeder
from feeders.errors import FeederErrors, reraise_feeder_errors, reraising_iterator
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
    "FeederErrors",
    "FrameEncoding",
    "LabelEncoding",
    "PandasFeeder",
    "SparseDataFeeder",
    "StreamingDataFeeder",
    "TensorSignature",
    "check_signatures_compatible",
    "is_feeder",
    "reraise_feeder_errors",
    "reraising_iterator",
    "setup_predict_data_feeder",
    "setup_train_data_feeder",
    "signature_from_json",
    "signature_to_json",
    "signatures_from_spec",
    "validate_features",
    "validate_sparse_features",
    "validate_targets",
]
