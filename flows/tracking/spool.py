"""The spool: a model's tracking operations on disk until they are delivered.

`model_dir/mlflow_spool.jsonl` holds one JSON operation per line (see `flows.tracking.ops`), in the
order they were made. The resilient logger writes each operation there when it is submitted (one
`write` of one line, so a process killed at any moment, SIGKILL included, leaves every operation it
made on disk), `fsync`s it when it closes with operations undelivered, and removes it once every
operation in it is delivered. Lines are only ever appended; a machine crash in the middle of an
append can leave a partial last line, which readers skip and the next append terminates first, so
it never corrupts a line before or after it. Delivering a line twice is harmless (every operation
is idempotent), which is why a spool is always delivered whole, from its first line.

Files an operation uploads (checkpoints, event files) are staged under `model_dir/mlflow_outbox/`
(hard links: no copy) and removed once sent.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["OUTBOX_DIR", "SPOOL_FILE", "append_ops", "encode", "open_for_append", "read_ops", "spool_path", "write_all"]

logger = logging.getLogger("skflow")

SPOOL_FILE = "mlflow_spool.jsonl"
OUTBOX_DIR = "mlflow_outbox"


def spool_path(model_dir: str | os.PathLike) -> str:
    """`model_dir/mlflow_spool.jsonl`."""
    return os.path.join(os.fspath(model_dir), SPOOL_FILE)


def open_for_append(path: str) -> int:
    """Open spool file `path` for appending (creating it), ending a line a crash cut short first."""
    created = not os.path.exists(path)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    size = os.fstat(fd).st_size
    if size and os.pread(fd, 1, size - 1) != b"\n":
        os.write(fd, b"\n")  # so the cut-short line cannot swallow the next one
    if created:
        _fsync_directory(os.path.dirname(path) or ".")
    return fd


def encode(ops: Iterable[Mapping[str, Any]]) -> bytes:
    """Operations as JSON lines."""
    return "".join(json.dumps(dict(o), separators=(",", ":"), allow_nan=True) + "\n" for o in ops).encode("utf-8")


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def append_ops(path: str, ops: Iterable[Mapping[str, Any]]) -> int:
    """Append `ops` to spool file `path` (created if needed) and `fsync` it; returns how many."""
    data = encode(ops)
    if not data:
        return 0
    fd = open_for_append(path)
    try:
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    return data.count(b"\n")


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
