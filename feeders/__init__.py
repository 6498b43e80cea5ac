"""skflow feeders: turn in-memory and out-of-core data into `tf.data` batches plus a signature.

The public API is `feeders.__all__`; `estimators` imports nothing else from this package.

- Choosing a feeder: `setup_train_data_feeder`, `setup_predict_data_feeder`, `is_feeder`, and the
  `Feeder` protocol every feeder follows (`DataFeeder`, `PandasFeeder`, `SparseDataFeeder`,
  `StreamingDataFeeder`, `FileDataFeeder`, `DaskDataFeeder`).
- Checking data: `validate_features`, `validate_targets`, `validate_sparse_features`.
- Signatures: `TensorSignature`, `Signatures`, `signature_of`, `signatures_from_spec`,
  `check_signatures_compatible`, `cast_to_signature`, `signature_to_json`, `signature_from_json`.
- Rows of an array or dict of arrays: `n_rows`, `slice_rows`; a content hash of data: `fingerprint`.
- Encodings learned at fit time and saved with the model: `FrameEncoding`, `LabelEncoding`.
- Errors from a feeder's Python code inside `tf.data`: `FeederErrors`, `reraise_feeder_errors`,
  `reraising_iterator`.

`feeders` never imports `prefect` or `mlflow`.
"""

from feeders.base import Feeder
from feeders.dask_feeder import DaskDataFeeder
from feeders.errors import FeederErrors, reraise_feeder_errors, reraising_iterator
from feeders.file_feeder import FileDataFeeder
from feeders.fingerprint import fingerprint
from feeders.frame_encoding import FrameEncoding, LabelEncoding
from feeders.numpy_feeder import DataFeeder, validate_features, validate_targets
from feeders.pandas_feeder import PandasFeeder
from feeders.rows import n_rows, slice_rows
from feeders.setup import is_feeder, setup_predict_data_feeder, setup_train_data_feeder
from feeders.signature import (
    Signatures,
    TensorSignature,
    cast_to_signature,
    check_signatures_compatible,
    signature_from_json,
    signature_of,
    signature_to_json,
    signatures_from_spec,
)
from feeders.sparse_feeder import SparseDataFeeder, validate_sparse_features
from feeders.streaming_feeder import StreamingDataFeeder

__all__ = [
    "DaskDataFeeder",
    "DataFeeder",
    "Feeder",
    "FeederErrors",
    "FileDataFeeder",
    "FrameEncoding",
    "LabelEncoding",
    "PandasFeeder",
    "Signatures",
    "SparseDataFeeder",
    "StreamingDataFeeder",
    "TensorSignature",
    "cast_to_signature",
    "check_signatures_compatible",
    "fingerprint",
    "is_feeder",
    "n_rows",
    "reraise_feeder_errors",
    "reraising_iterator",
    "setup_predict_data_feeder",
    "setup_train_data_feeder",
    "signature_from_json",
    "signature_of",
    "signature_to_json",
    "signatures_from_spec",
    "slice_rows",
    "validate_features",
    "validate_sparse_features",
    "validate_targets",
]
