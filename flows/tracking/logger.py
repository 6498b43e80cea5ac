"""The resilient logger: training never waits for MLflow, and nothing is lost while it is away.

The training thread only *submits* operations (`flows.tracking.ops`): an append to an in-memory
queue and one line written to the spool file (`flows.tracking.spool`), which never blocks on the
network and never raises. One background thread drains the queue in order: it waits up to
`interval_s` to gather metrics into one `log_batch` request (<= 1,000 metrics, the server's
limit), sends it with a bounded time per attempt (`store.bounded_requests`), and while the store is
unreachable retries the *same* front operation with exponential backoff, so order is kept. MLflow
refusing data itself (a changed param, a deleted run) is logged and that operation dropped;
nothing else is.

`flush(timeout, through=i)` waits at most `timeout` seconds for operation `i` (and all before it).
`close(timeout)` flushes, stops the thread, and removes the spool if everything was delivered;
otherwise it `fsync`s it and leaves it for `sync_spool(model_dir)` or the next logger on that spool,
which deliver it first, whole and in order (operations are idempotent), before anything new.
Because every operation is on disk from the moment it is made, a process killed outright (SIGKILL)
loses nothing either: the next fit on that model_dir delivers it. In one process, one logger works on
a spool (`shared_logger`): fits on the same model_dir share it, and loggers still open at
interpreter exit are closed then, each flushing for a bounded time.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flows.tracking.ops import deliver, is_transient, mergeable
from flows.tracking.spool import append_ops, encode, open_for_append, read_ops, spool_path, write_all
from flows.tracking.store import REQUEST_TIMEOUT_S, bounded_requests

__all__ = ["ResilientLogger", "SyncResult", "close_loggers", "shared_logger", "sync_spool"]

logger = logging.getLogger("skflow")

_READY = 500  # operations queued that make the thread send without waiting out the interval


class ResilientLogger:
    """Deliver tracking operations from a background thread, in order, through outages.

    Args:
        spool_path: the spool file every operation is written to until delivered; an existing one
            is adopted (delivered first) by `start`. default=None: operations live in memory only.
        interval_s: how long the thread gathers operations before sending. default=2.0.
        request_timeout_s: the most one request may take (an integer, MLflow's unit). default=5.
        max_backoff_s: the longest pause between attempts while the store is unreachable. default=8.0.

    Example:
        >>> log = ResilientLogger(spool_path="model/mlflow_spool.jsonl")
        >>> log.start()
        >>> log.submit(metrics_op(uri, run_id, {"loss": 0.3}, step=100, timestamp_ms=now_ms()))
        >>> undelivered = log.close(timeout=30)  # left in the spool file when not empty
    """

    def __init__(
        self,
        spool_path: str | None = None,
        interval_s: float = 2.0,
        request_timeout_s: int = REQUEST_TIMEOUT_S,
        max_backoff_s: float = 8.0,
    ) -> None:
        self.spool_path = spool_path
        self.interval_s = float(interval_s)
        self.request_timeout_s = int(request_timeout_s)
        self.max_backoff_s = float(max_backoff_s)
        self.delivered = 0  # operations delivered (or refused by MLflow and dropped), in order
        self.submitted = 0  # operations queued (adopted from the spool included); the next one gets this index
        self.close_timeout_s = 30.0  # how long closing at interpreter exit flushes
        self.dropped: list[tuple[dict[str, Any], str]] = []  # (operation, why) that MLflow refused
        self.last_error: str | None = None
        self._queue: deque[dict[str, Any]] = deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stop = self._closed = self._urgent = False
        self._oldest: float | None = None  # when the oldest queued operation was submitted
        self._in_flight = 0
        self._failures = 0
        self._retry_at = 0.0
        self._outage_since: float | None = None
        self._spool_fd: int | None = None
        self._spool_error: str | None = None
        self._later: dict[Any, dict[str, Any]] = {}  # operations held until close, by key
        self._kick_through = 0  # operations before this index are sent without waiting out the interval

    # ------------------------------------------------------------------ the training thread's side
    def start(self) -> ResilientLogger:
        """Adopt the spool file (its operations go first) and start the background thread."""
        if self._thread is not None:
            return self
        if self.spool_path:
            ops = read_ops(self.spool_path)
            if ops:
                logger.info("Delivering %d MLflow operation(s) spooled in %s.", len(ops), self.spool_path)
                with self._cond:
                    self._queue.extendleft(reversed(ops))
                    self.submitted += len(ops)
                    self._oldest = time.monotonic() - self.interval_s
            try:
                self._spool_fd = open_for_append(self.spool_path)
            except OSError as exc:
                self._spool_error = str(exc)
                logger.warning(
                    "Cannot write the MLflow spool %s (%s): operations stay in memory.", self.spool_path, exc
                )
        self._thread = threading.Thread(target=self._run, name="skflow-mlflow-logger", daemon=True)
        self._thread.start()
        return self

    def submit(self, operation: dict[str, Any]) -> int:
        """Queue one operation (see `flows.tracking.ops`) and write it to the spool; never blocks on
        the network, never raises. Returns its index (for `flush(through=...)`)."""
        with self._cond:
            if self._closed:  # too late for this logger: straight to the spool, for the next one
                if self.spool_path:
                    try:
                        append_ops(self.spool_path, [operation])
                    except OSError as exc:
                        logger.warning("Cannot write the MLflow spool %s (%s).", self.spool_path, exc)
                return self.submitted
            self._queue.append(operation)
            index = self.submitted
            self.submitted += 1
            if self._spool_fd is not None:
                try:
                    write_all(self._spool_fd, encode([operation]))
                except (OSError, TypeError, ValueError) as exc:
                    if self._spool_error is None:
                        logger.warning("Cannot write the MLflow spool %s (%s).", self.spool_path, exc)
                    self._spool_error = str(exc)
            if self._oldest is None:
                self._oldest = time.monotonic()
            if len(self._queue) in (1, _READY):  # the thread waits without a timeout on an empty queue
                self._cond.notify_all()
            return index

    def submit_later(self, key: Any, operation: dict[str, Any] | None) -> None:
        """Hold `operation` until `close` (which submits it first), replacing one held under `key`;
        None drops what is held. For derived artifacts worth making once, not after every fit (a
        loss curve): they are not in the spool until submitted."""
        with self._cond:
            self._later.pop(key, None)
            if operation is not None:
                self._later[key] = operation

    def kick(self) -> None:
        """Send what is queued now instead of gathering for `interval_s` (without waiting for it)."""
        with self._cond:
            self._kick_through = self.submitted
            self._cond.notify_all()

    @property
    def pending(self) -> int:
        """Operations not delivered yet."""
        return len(self._queue)

    def flush(self, timeout: float, through: int | None = None) -> bool:
        """Send what is queued now, waiting at most `timeout` seconds until operation `through`
        (an index `submit` returned; default: the last one) is delivered. Returns whether it was."""
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._cond:
            target = self.submitted if through is None else through + 1
            self._urgent = True
            self._retry_at = min(self._retry_at, time.monotonic() + 1.0)
            self._cond.notify_all()
            while self.delivered < target and self._thread is not None and self._thread.is_alive():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            self._urgent = False
            return self.delivered >= target

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def unreachable(self) -> bool:
        """Whether the last attempt to deliver failed (the store is away)."""
        return self._outage_since is not None

    def close(self, timeout: float) -> list[dict[str, Any]]:
        """Flush for at most `timeout` seconds and stop the thread; remove the spool if everything
        was delivered, else `fsync` it and leave it for the next logger or `sync_spool`.

        Returns:
            the undelivered operations.
        """
        with self._cond:
            if self._closed:
                return list(self._queue)
            later, self._later = list(self._later.values()), {}
        for operation in later:
            self.submit(operation)
        if self._thread is not None:
            self.flush(timeout)
        with self._cond:
            self._stop = self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(self.request_timeout_s + 2.0)  # one request in flight at most
        with self._cond:
            pending = list(self._queue)
        with _live_lock:
            if self.spool_path and _live.get(self.spool_path) is self:
                del _live[self.spool_path]
        fd, self._spool_fd = self._spool_fd, None
        if fd is not None:
            try:
                if pending:
                    os.fsync(fd)
            finally:
                os.close(fd)
            if not pending and self._spool_error is None:
                _remove(self.spool_path)
        if pending:
            where = (
                f"spooled in {self.spool_path}" if fd is not None and self._spool_error is None else "LOST: no spool"
            )
            logger.warning(
                "MLflow store unreachable (%s): %d operation(s) undelivered, %s; the next fit on this model_dir "
                "(or flows.tracking.sync_spool) delivers them.",
                self.last_error or "timed out",
                len(pending),
                where,
            )
        return pending

    # ------------------------------------------------------------------ the background thread
    def _run(self) -> None:
        while True:
            with self._cond:
                batch = self._next_batch()
                if batch is None:
                    return
                self._in_flight = len(batch)
            try:
                with bounded_requests(self.request_timeout_s):
                    deliver(batch)
                error: BaseException | None = None
            except Exception as exc:
                error = exc
            with self._cond:
                self._in_flight = 0
                self._after_attempt(batch, error)
                self._cond.notify_all()

    def _next_batch(self) -> list[dict[str, Any]] | None:
        """Wait until the front of the queue should be sent (holding the lock); None: stop."""
        while True:
            if self._stop:
                return None
            now = time.monotonic()
            if self._queue:
                now_please = self._urgent or len(self._queue) >= _READY or self.delivered < self._kick_through
                due = (self._oldest or now) + (0 if now_please else self.interval_s)
                start = max(due, self._retry_at)
                if start <= now:
                    break
                self._cond.wait(start - now)
            else:
                self._cond.wait()
        first = self._queue[0]
        batch, size = [first], len(first.get("metrics", ()))
        for other in list(self._queue)[1:]:
            if not mergeable(first, other, size):
                break
            batch.append(other)
            size += len(other["metrics"])
        return batch

    def _after_attempt(self, batch: list[dict[str, Any]], error: BaseException | None) -> None:
        """Holding the lock: drop the batch from the queue when delivered (or refused for good)."""
        now = time.monotonic()
        if error is not None and is_transient(error):
            self._failures += 1
            self.last_error = f"{type(error).__name__}: {str(error)[:200]}"
            cap = 1.0 if self._urgent else self.max_backoff_s
            self._retry_at = now + min(cap, 0.25 * 2**self._failures)
            if self._outage_since is None:
                self._outage_since = now
                logger.warning(
                    "MLflow store unreachable (%s); keeping %d operation(s) and retrying.",
                    self.last_error,
                    len(self._queue),
                )
            return
        if error is not None:
            reason = f"{type(error).__name__}: {str(error)[:500]}"
            self.dropped.extend((o, reason) for o in batch)
            logger.error(
                "MLflow refused a %s operation on run %s; dropped: %s", batch[0]["op"], batch[0]["run_id"], reason
            )
        if self._outage_since is not None:
            logger.info("MLflow store reachable again after %.1f s; delivering.", now - self._outage_since)
            self._outage_since = None
        self._failures, self._retry_at = 0, 0.0
        for _ in batch:
            self._queue.popleft()
        self.delivered += len(batch)
        self._oldest = now if self._queue else None


@dataclass(frozen=True)
class SyncResult:
    """What `sync_spool` did: operations delivered, and operations still spooled."""

    delivered: int
    remaining: int


def sync_spool(model_dir: str | os.PathLike, timeout: float = 60.0) -> SyncResult:
    """Deliver the operations spooled in `model_dir` (in order), removing the spool once all are.

    A logger of this process still working on that spool (an `MlflowMonitor`'s, after a fit) is
    closed instead: it holds the same operations.

    Args:
        model_dir: the model directory whose `mlflow_spool.jsonl` to deliver.
        timeout: give up after this many seconds, leaving what is undelivered in the spool. default=60.

    Returns:
        a `SyncResult`; `remaining == 0` means the spool is gone (or there was none).
    """
    path = spool_path(model_dir)
    with _live_lock:
        log = _live.get(path)
    if log is None:
        log = ResilientLogger(spool_path=path, interval_s=0.0).start()
    before = log.delivered
    pending = log.close(timeout)
    return SyncResult(log.delivered - before, len(pending))


_live: dict[str, ResilientLogger] = {}  # spool path -> the logger of this process that writes it
_live_lock = threading.Lock()
_atexit_registered = False


def shared_logger(path: str, **options: Any) -> ResilientLogger:
    """The started logger of this process for spool file `path`: the one already working on it
    (two loggers on one spool would deliver and remove it behind each other's back), or a new one
    made with `options`. Loggers still open when the interpreter exits are closed then, each
    flushing for at most its `close_timeout_s`."""
    global _atexit_registered
    with _live_lock:
        log = _live.get(path)
        if log is None or log.closed:
            if not _atexit_registered:
                atexit.register(_close_live)
                _atexit_registered = True
            log = _live[path] = ResilientLogger(spool_path=path, **options).start()
        return log


def close_loggers(timeout: float | None = None) -> int:
    """Close every logger of this process (each flushing at most `timeout` seconds, default its
    `close_timeout_s`); returns how many operations stay undelivered in their spools."""
    with _live_lock:
        logs = list(_live.values())
    return sum(len(log.close(log.close_timeout_s if timeout is None else timeout)) for log in logs)


def _close_live() -> None:
    close_loggers()


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def now_ms() -> int:
    """The current time in milliseconds, MLflow's timestamp unit."""
    return int(time.time() * 1000)


def params_ops(uri: str, run_id: str, params: Mapping[str, str]) -> list[dict[str, Any]]:
    """`params` as operations of at most 100 params each."""
    from flows.tracking.ops import MAX_PARAMS, op

    items = [[k, v] for k, v in params.items()]
    return [op("params", uri, run_id, params=items[i : i + MAX_PARAMS]) for i in range(0, len(items), MAX_PARAMS)]
