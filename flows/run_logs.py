"""The "skflow" logger's records (loss, steps/s, validation, early stopping) in the Prefect run's logs.

Prefect sends only its own loggers' records to its API (the flow and task run logs the UI shows);
`PREFECT_LOGGING_EXTRA_LOGGERS=skflow` would add ours, but only when set before Prefect configures
logging at import, which a flow cannot rely on. Instead a flow attaches `PrefectRunHandler` to the
"skflow" logger while it runs (`skflow_logs_in_prefect`). The handler sends a record only from a
thread that is inside a Prefect flow or task run; the MLflow delivery thread and other threads
without a run context are skipped (Prefect's own handler would warn about each).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["skflow_logs_in_prefect"]

SKFLOW_LOGGER = "skflow"


def _handler_class() -> type[logging.Handler]:
    from prefect.context import FlowRunContext, TaskRunContext
    from prefect.logging.handlers import APILogHandler

    class PrefectRunHandler(APILogHandler):
        """Prefect's API log handler, for records of threads inside a flow or task run only."""

        def emit(self, record: logging.LogRecord) -> None:
            if TaskRunContext.get() is None and FlowRunContext.get() is None:
                return
            super().emit(record)

    return PrefectRunHandler


@contextmanager
def skflow_logs_in_prefect(level: int = logging.INFO) -> Iterator[None]:
    """While the block runs, INFO records of the "skflow" logger also go to the current Prefect
    flow or task run's logs (and the logger's level is at most `level`)."""
    log = logging.getLogger(SKFLOW_LOGGER)
    if any(type(h).__name__ == "PrefectRunHandler" for h in log.handlers):
        yield  # a flow inside a flow: the outer one's handler serves both
        return
    handler = _handler_class()(level=level)
    handler.setFormatter(logging.Formatter("%(message)s"))
    previous = log.level
    if previous == logging.NOTSET or previous > level:
        log.setLevel(level)
    log.addHandler(handler)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(previous)
