"""The spool: tracking operations not yet delivered, kept in model_dir until they are.

`model_dir/mlflow_spool.jsonl` holds one JSON operation per line (see `flows.tracking.ops`), oldest
first. Lines are only ever appended, in one `write` and followed by `fsync`; a crash in the middle of
an append can leave a partial last line, which readers skip and the next append terminates first,
so it never corrupts a line before it or after it. The file is removed only once every line in it
has been delivered (`sync_spool`, or the next `MlflowMonitor` fit on that model_dir).

Files an operation uploads (checkpoints, event files) are staged under `model_dir/mlflow_outbox/`
(hard links: no copy) and removed once sent.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["OUTBOX_DIR", "SPOOL_FILE", "append_ops", "read_ops", "spool_path"]

logger = logging.getLogger("skflow")

SPOOL_FILE = "mlflow_spool.jsonl"
OUTBOX_DIR = "mlflow_outbox"


def spool_path(model_dir: str | os.PathLike) -> str:
    """`model_dir/mlflow_spool.jsonl`."""
    return os.path.join(os.fspath(model_dir), SPOOL_FILE)


def append_ops(path: str, ops: Iterable[Mapping[str, Any]]) -> int:
    """Append `ops` to the spool file `path` (created if needed), durably; returns how many."""
    lines = [json.dumps(dict(o), separators=(",", ":"), allow_nan=True) + "\n" for o in ops]
    if not lines:
        return 0
    data = "".join(lines).encode("utf-8")
    created = not os.path.exists(path)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data  # end a line a crash cut short, so it cannot swallow ours
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        _fsync_directory(os.path.dirname(path) or ".")
    return len(lines)


def read_ops(path: str) -> list[dict[str, Any]]:
    """The operations in spool file `path`, in order ([] when there is none); lines that are not
    complete JSON operations (the tail of an interrupted append) are skipped with a warning."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return []
    ops, bad = [], 0
    for line in text.split("\n"):
        if not line.strip():
            continue
        try:
            o = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if isinstance(o, dict) and {"op", "uri", "run_id"} <= o.keys():
            ops.append(o)
        else:
            bad += 1
    if bad:
        logger.warning("Skipped %d unreadable line(s) of %s (an append cut short by a crash).", bad, path)
    return ops


def _fsync_directory(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
