"""A content fingerprint of training data: equal data, equal fingerprint, whatever object holds it.

Trackers record it as the run's dataset digest, and pipelines compare it to skip retraining on data
they have already seen. It hashes the values (and their dtypes, shapes or column names), never an
object's identity: a copy of an array has the fingerprint of the original.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["fingerprint"]

_CHUNK = 1 << 20


def fingerprint(x: Any, y: Any = None) -> str | None:
    """The SHA-256 (hex) of the content of `x` and `y`, or None for an input that cannot be hashed
    without consuming it (an iterator, a generator) or that lives elsewhere (a dask collection).

    Args:
        x: numpy arrays (or array-likes), dicts of them, pandas DataFrames/Series, scipy.sparse
            matrices, or a path to a file or a directory of files (their bytes are hashed, in
            name order; a directory's entries by relative path).
        y: the same kinds, or None; with a path `x`, a column name (hashed as text).

    Returns:
        64 hex characters, or None.

    Example:
        >>> fingerprint(np.arange(3)) == fingerprint(np.arange(3).copy())
        True
    """
    digest = hashlib.sha256()
    for part in (x, y):
        if not _update(digest, part):
            return None
    return digest.hexdigest()


def _update(digest: Any, value: Any) -> bool:
    """Feed `value` into `digest`; False when it cannot be hashed."""
    if value is None:
        digest.update(b"none;")
    elif isinstance(value, (str, os.PathLike)) and os.path.exists(value):
        _update_path(digest, os.fspath(value))
    elif isinstance(value, str):
        digest.update(b"str:" + value.encode() + b";")
    elif isinstance(value, (pd.DataFrame, pd.Series)):
        columns = value.columns if isinstance(value, pd.DataFrame) else [value.name]
        digest.update(b"pandas:" + repr([str(c) for c in columns]).encode())
        digest.update(repr([str(t) for t in np.atleast_1d(value.dtypes)]).encode())
        digest.update(pd.util.hash_pandas_object(value, index=False).to_numpy().tobytes())
    elif isinstance(value, Mapping):
        for key in sorted(value, key=str):
            digest.update(b"key:" + str(key).encode() + b";")
            if not _update(digest, value[key]):
                return False
    elif hasattr(value, "tocsr") and hasattr(value, "nnz"):
        csr = value.tocsr()
        digest.update(f"sparse:{csr.shape}:{csr.dtype};".encode())
        for part in (csr.indptr, csr.indices, csr.data):
            digest.update(np.ascontiguousarray(part).tobytes())
    elif isinstance(value, np.ndarray) or isinstance(value, (list, tuple)):
        array = np.ascontiguousarray(value)
        if array.dtype.kind == "O":
            digest.update(b"object:" + repr(array.tolist()).encode())
        else:
            digest.update(f"array:{array.dtype.str}:{array.shape};".encode())
            digest.update(memoryview(array).cast("B"))
    else:
        return False
    return True


def _update_path(digest: Any, path: str) -> None:
    files = (
        [path]
        if os.path.isfile(path)
        else sorted(
            os.path.join(root, name) for root, _, names in os.walk(path) for name in names if not name.startswith(".")
        )
    )
    for file in files:
        digest.update(b"file:" + os.path.relpath(file, path if os.path.isdir(path) else os.path.dirname(path)).encode())
        with open(file, "rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
