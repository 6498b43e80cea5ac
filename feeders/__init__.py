"""skflow feeders: turn in-memory and out-of-core data into `tf.data` batches plus a signature.

`feeders` never imports `prefect` or `mlflow`.
"""

from feeders.numpy_feeder import DataFeeder, validate_features, validate_targets
from feeders.signature import (
    TensorSignature,
    check_signatures_compatible,
    signature_from_json,
    signature_to_json,
    signatures_from_spec,
)

__all__ = [
    "DataFeeder",
    "TensorSignature",
    "check_signatures_compatible",
    "signature_from_json",
    "signature_to_json",
    "signatures_from_spec",
    "validate_features",
    "validate_targets",
]
