"""`MlflowMonitor`: record an Estimator fit in MLflow, through outages, resumes and kills.

What one fit records (one MLflow run per model_dir, its id kept in `model_dir/mlflow_run.json`):

- params (`flows.tracking.params`) and tags (`skflow.version`, `skflow.git_commit`, `skflow.model_fn`,
  `skflow.max_steps`, the caller's), before any training step; a fit continuing the run whose params
  differ is an error then. `max_steps` is the exception: the param keeps the run's first target, and
  a continuation may train further (`fit(steps=100)` twice, or a rerun after a crash), its target in
  the tag `skflow.max_steps`;
- metrics at step = global step: `loss`, `steps_per_sec` and `examples_per_sec` every
  `every_n_steps` steps and at the last step, and what other monitors report (a
  `ValidationMonitor`'s `val_loss`, `val_accuracy`, ...) at the steps they ran;
- the training data as a dataset input whose digest is its fingerprint;
- at the end: the run's status: FINISHED, FAILED (with the error in the tag `skflow.error`) or KILLED
  (KeyboardInterrupt, or SIGTERM while fitting in the main thread); then the latest and best
  checkpoints, the TensorBoard event files and `plots/loss_curve.png` (`flows.tracking.artifacts`).

Every call from the training thread only queues (`flows.tracking.logger`, which also writes it to
`model_dir/mlflow_spool.jsonl` at once); what a fit's start queues is sent while it trains. The end
of a fit waits at most `flush_timeout_s` for the delivery of everything up to the run's status;
what the store did not take by then stays in the spool and keeps being retried in the background,
and the next fit on that model_dir (in this process or another) or `sync_spool(model_dir)` delivers
it. The artifacts follow the status in the background; the loss curve is drawn at most once a
minute per run (many short fits in a row draw it when the logger closes). `MlflowMonitor.close()`
(or the interpreter's exit) waits for them.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
import traceback
from collections.abc import Mapping
from typing import Any

from estimators.monitors import EveryN
from flows.tracking.artifacts import artifacts_op, dataset_op
from flows.tracking.logger import ResilientLogger, now_ms, params_ops, shared_logger
from flows.tracking.ops import metrics_op, op
from flows.tracking.params import as_text, check_unchanged, training_params
from flows.tracking.runs import TrackedRun, create_run, default_tags, read_run_record, record_of, write_run_record
from flows.tracking.spool import spool_path
from flows.tracking.store import DEFAULT_EXPERIMENT, bounded_requests, get_client, resolve_store

__all__ = ["MlflowMonitor", "TrainingTerminated"]

logger = logging.getLogger("skflow")

_TAG_LIMIT = 8000  # MAX_TAG_VAL_LENGTH
PLOT_EVERY_S = 60.0  # the loss curve is drawn at most this often (a PNG costs ~60 ms of CPU), and at close


class TrainingTerminated(SystemExit):
    """SIGTERM arrived while a fit tracked by `MlflowMonitor` ran in the main thread. The fit saves
    its checkpoint and ends the run KILLED; left uncaught, the process exits with status 143."""

    def __init__(self) -> None:
        super().__init__(128 + signal.SIGTERM)


class MlflowMonitor(EveryN):
    """Record the fit in MLflow: params, tags, step metrics, the dataset, checkpoints, plots, status.

    Args:
        experiment_name: the experiment of a run this monitor creates. default="skflow".
        run: an existing run to record into (a `TrackedRun`, or a run id in `tracking_uri`): the
            flows create one per flow run. default=None: the run recorded in model_dir
            (`mlflow_run.json`), or a new one.
        tracking_uri: default: `MLFLOW_TRACKING_URI`, else the embedded SQLite store (read when
            the fit begins).
        run_name: the name of a run this monitor creates. default=None (MLflow draws one).
        tags: more tags for the run. default=None.
        every_n_steps: log the training loss and speed every this many steps. default=100.
        log_artifacts: upload checkpoints, event files and the loss curve at the end. default=True.
        dataset_name, dataset_source: name and source (a path or URI) of the dataset input.
            default: "training_data", and how the fit was fed.
        fingerprint: the data fingerprint to record (e.g. a hash of the files the data came
            from). default=None: `TrainingContext.input_fingerprint`.
        end_run: whether a fit that ends normally sets the run FINISHED. default=None: only a run
            this monitor created or continues from model_dir (a run passed as `run` is the caller's
            to end). FAILED and KILLED are always set.
        new_run: this monitor's first fit starts a new run even when model_dir records one (its
            later fits continue that run). default=False.
        flush_timeout_s: the most the end of a fit (and `close`) waits for MLflow. default=30.
        interval_s: how long metrics are gathered into one request. default=2.0.
        request_timeout_s: the most one request to a tracking server may take. default=5.

    Attributes:
        run: the `TrackedRun` of the latest fit (None before the first).
        undelivered: operations of the latest fit the store had not taken when it ended (they wait
            in the spool).

    Example:
        >>> monitor = MlflowMonitor(experiment_name="iris")
        >>> est.fit(x, y, steps=1000, monitors=[monitor])
        >>> monitor.close()  # optional: waits for the loss curve (the interpreter's exit does too)
        >>> MlflowClient().get_metric_history(monitor.run.run_id, "loss")
    """

    def __init__(
        self,
        experiment_name: str = DEFAULT_EXPERIMENT,
        run: TrackedRun | str | None = None,
        tracking_uri: str | None = None,
        run_name: str | None = None,
        tags: Mapping[str, Any] | None = None,
        every_n_steps: int = 100,
        log_artifacts: bool = True,
        dataset_name: str | None = None,
        dataset_source: str | None = None,
        fingerprint: str | None = None,
        end_run: bool | None = None,
        new_run: bool = False,
        flush_timeout_s: float = 30.0,
        interval_s: float = 2.0,
        request_timeout_s: int = 5,
    ) -> None:
        super().__init__(every_n_steps=every_n_steps, first_n_steps=0)
        self.experiment_name = experiment_name
        self.tracking_uri = tracking_uri
        self.run_name = run_name
        self.tags = dict(tags or {})
        self.log_artifacts = log_artifacts
        self.dataset_name = dataset_name
        self.dataset_source = dataset_source
        self.fingerprint = fingerprint
        self.end_run = end_run
        self.new_run = new_run
        self.flush_timeout_s = flush_timeout_s
        self.interval_s = interval_s
        self.request_timeout_s = request_timeout_s
        self._given_run = run
        self.run: TrackedRun | None = None
        self.undelivered = 0
        self._log: ResilientLogger | None = None  # this fit's (None outside a fit)
        self._logs: list[ResilientLogger] = []  # every logger this monitor used, for close()
        self._plotted_at: dict[str, float] = {}  # run id -> when its loss curve was last queued
        self._owns = False
        self._plot_keys: list[str] = ["loss"]
        self._mark: tuple[int, float] = (0, 0.0)
        self._previous_handler: Any = None
        self._finishing = False
        self._term_pending = False

    # ------------------------------------------------------------------ begin
    def begin(self, max_steps: int | None = None) -> None:
        super().begin(max_steps)
        ctx = self.context
        store = resolve_store(self.tracking_uri)
        params = training_params(ctx, self.fingerprint)
        record = read_run_record(ctx.model_dir)
        run, logged = self._choose_run(store, record)
        target = params["max_steps"]  # this fit's; the param keeps the run's first (a continuation may train further)
        if "max_steps" in logged:
            params["max_steps"] = logged["max_steps"]
        check_unchanged(logged, params, run.run_id)  # before any step, and before anything is sent
        self.run, self._plot_keys, self.undelivered = run, ["loss"], 0
        self._log = shared_logger(
            spool_path(ctx.model_dir), interval_s=self.interval_s, request_timeout_s=self.request_timeout_s
        )
        self._log.close_timeout_s = self.flush_timeout_s
        if self._log not in self._logs:
            self._logs.append(self._log)
        uri, run_id = run.tracking_uri, run.run_id
        resumed = record is not None and record["run_id"] == run_id
        if resumed:  # RUNNING again
            self._log.submit(op("status", uri, run_id, status="RUNNING", time=now_ms()))
        for params_op in params_ops(uri, run_id, {k: v for k, v in params.items() if logged.get(k) != v}):
            self._log.submit(params_op)
        tags = {**default_tags(_model_fn_name(ctx.estimator)), "skflow.max_steps": target}
        tags.update({k: as_text(v)[:_TAG_LIMIT] for k, v in self.tags.items()})
        sent = record.get("tags", {}) if resumed else {}
        changed = [[k, v] for k, v in tags.items() if sent.get(k) != v]
        if changed:
            self._log.submit(op("tags", uri, run_id, tags=changed))
        fingerprint = params.get("data.fingerprint")
        if fingerprint and fingerprint != "None" and logged.get("data.fingerprint") != fingerprint:
            summary = ctx.input_summary
            self._log.submit(dataset_op(uri, run_id, fingerprint, summary, self.dataset_name, self.dataset_source))
        self._log.kick()  # while training runs, not at its end
        if ctx.is_chief:
            record = {**record_of(run, {**logged, **params}), "tags": {**sent, **tags}, "global_step": ctx.global_step}
            write_run_record(ctx.model_dir, record)
        self._mark = (ctx.global_step, time.perf_counter())
        self._install_sigterm()

    def _choose_run(self, store: Any, record: dict[str, Any] | None) -> tuple[TrackedRun, dict[str, str]]:
        """The run this fit records into, and the params already logged to it."""
        given = self._given_run
        if given is not None:
            run = given if isinstance(given, TrackedRun) else _existing_run(str(given), store.tracking_uri)
            self._owns = bool(self.end_run)
            if record is not None and record["run_id"] == run.run_id:
                return run, dict(record["params"])
            return run, _logged_params(run)
        self._owns = self.end_run is not False
        fresh = self.new_run and (self.run is None or record is None or record["run_id"] != self.run.run_id)
        if record is not None and not fresh:
            if record["tracking_uri"] == store.tracking_uri:
                run = TrackedRun(record["run_id"], record.get("experiment_id", ""), record["tracking_uri"])
                logger.info("Continuing MLflow run %s recorded in %s.", run.run_id, self.context.model_dir)
                return run, dict(record["params"])
            logger.info(
                "model_dir's MLflow run %s is in %s, but this fit tracks to %s: starting a new run there.",
                record["run_id"],
                record["tracking_uri"],
                store.tracking_uri,
            )
        run = create_run(
            self.experiment_name, self.run_name, tracking_uri=store.tracking_uri, attempts_s=self.flush_timeout_s
        )
        return run, {}

    # ------------------------------------------------------------------ during training
    def every_n_step_end(self, step: int, outputs: Mapping[str, Any]) -> bool:
        self._log_loss(step, outputs.get("loss"))
        return False

    def after_run(self, step: int, loss: Any) -> None:
        """At the fit's last step, send its metrics at once: their request then overlaps the loop's
        final checkpoint instead of adding to the wait at the end."""
        if self._log is not None and step == self._max_steps and loss is not None:
            self._log_loss(step, loss)
            self._log.kick()

    def every_n_post_step(self, step: int) -> None:
        self._log_loss(step, self.context.last_loss)

    def _log_loss(self, step: int, loss: Any) -> None:
        if self._log is None or loss is None or step == self._mark[0]:
            return
        now = time.perf_counter()
        last_step, last_time = self._mark
        values = {"loss": float(loss)}
        if step > last_step and now > last_time:
            values["steps_per_sec"] = (step - last_step) / (now - last_time)
            if self.context.batch_size:
                values["examples_per_sec"] = values["steps_per_sec"] * self.context.batch_size
        self._mark = (step, now)
        self._log.submit(metrics_op(self.run.tracking_uri, self.run.run_id, values, step, now_ms()))

    def metrics_reported(self, step: int, values: Mapping[str, float]) -> None:
        if self._log is None:
            return
        self._plot_keys.extend(k for k in values if k.endswith("loss") and k not in self._plot_keys)
        self._log.submit(metrics_op(self.run.tracking_uri, self.run.run_id, values, step, now_ms()))

    # ------------------------------------------------------------------ end
    def end(self) -> None:
        super().end()
        self._finish(None)

    def abort(self, exception: BaseException) -> None:
        self._finish(exception)

    def _finish(self, error: BaseException | None) -> None:
        """Queue the last metrics and the status and wait at most flush_timeout_s for them; the
        artifacts and the loss curve follow in the background (`close` waits for them)."""
        log, ctx, run = self._log, self.context, self.run
        self._log = None
        if log is None or run is None:
            self._restore_sigterm()
            return
        self._finishing = True
        try:
            uri, run_id = run.tracking_uri, run.run_id
            status = _status_of(error)
            if error is not None and status == "FAILED":
                text = "".join(traceback.format_exception(error))[-_TAG_LIMIT:]
                log.submit(op("tags", uri, run_id, tags=[["skflow.error", text]]))
            if error is not None or self._owns:
                log.submit(op("status", uri, run_id, status=status, time=now_ms()))
            last = log.submitted - 1
            if self.log_artifacts and ctx.is_chief:
                self._queue_artifacts(log, ctx, run)
            if not log.flush(self.flush_timeout_s, through=last):
                self.undelivered = last + 1 - log.delivered
                (logger.warning if log.unreachable else logger.debug)(
                    "MLflow store unreachable (%s): %d operation(s) of run %s wait in %s; they are delivered in "
                    "the background, then by the next fit on this model_dir or flows.tracking.sync_spool.",
                    log.last_error or "timed out",
                    self.undelivered,
                    run_id,
                    log.spool_path,
                )
            else:
                self.undelivered = 0
            if ctx.is_chief and (record := read_run_record(ctx.model_dir)) and record["run_id"] == run_id:
                write_run_record(ctx.model_dir, {**record, "global_step": ctx.global_step})
        except Exception as exc:  # tracking never fails a fit that trained
            logger.error("MlflowMonitor could not finish recording run %s: %s", run.run_id, exc)
        finally:
            self._finishing = False
            self._restore_sigterm()

    def _queue_artifacts(self, log: ResilientLogger, ctx: Any, run: TrackedRun) -> None:
        """The checkpoints and event files (staged now), then the loss curve: at most once a minute
        per run (a PNG costs ~60 ms of CPU), else held until the logger closes."""
        uri, run_id = run.tracking_uri, run.run_id
        try:
            staged = artifacts_op(uri, run_id, ctx.model_dir, ctx.latest_checkpoint(), ctx.best_checkpoint())
            if staged is not None:
                log.submit(staged)
        except OSError as exc:
            logger.warning("Could not stage the run's artifacts: %s", exc)
        plot = op("plot", uri, run_id, keys=self._plot_keys, name="loss_curve.png")
        now = time.monotonic()
        if now - self._plotted_at.get(run_id, -PLOT_EVERY_S) >= PLOT_EVERY_S:
            log.submit_later(("plot", run_id), None)
            log.submit(plot)
            self._plotted_at[run_id] = now
        else:
            log.submit_later(("plot", run_id), plot)

    def close(self, timeout: float | None = None) -> int:
        """Deliver everything this monitor's fits queued (the last loss curve included), waiting at
        most `timeout` seconds (default: `flush_timeout_s`), and stop the background thread; what is
        undelivered stays in the spool. Fits after `close` start a new thread. Returns how many
        operations are undelivered."""
        logs, self._logs = self._logs, []
        return sum(len(log.close(self.flush_timeout_s if timeout is None else timeout)) for log in logs)

    # ------------------------------------------------------------------ SIGTERM -> KILLED
    def _install_sigterm(self) -> None:
        """In the main thread only: SIGTERM raises `TrainingTerminated` in the fit, so the loop saves
        a checkpoint and this monitor ends the run KILLED. Other threads (Prefect tasks) leave signals alone."""
        if threading.current_thread() is not threading.main_thread():
            return

        def on_sigterm(signum: int, frame: Any) -> None:
            if self._finishing:  # the run is being closed: terminate right after
                self._term_pending = True
                return
            raise TrainingTerminated()

        self._term_pending = False
        self._previous_handler = signal.signal(signal.SIGTERM, on_sigterm)

    def _restore_sigterm(self) -> None:
        if self._previous_handler is None:
            return
        previous, self._previous_handler = self._previous_handler, None
        signal.signal(signal.SIGTERM, previous)
        if self._term_pending:
            self._term_pending = False
            os.kill(os.getpid(), signal.SIGTERM)


def _status_of(error: BaseException | None) -> str:
    if error is None:
        return "FINISHED"
    if isinstance(error, (KeyboardInterrupt, TrainingTerminated)):
        return "KILLED"
    return "FAILED"


def _model_fn_name(estimator: Any) -> str | None:
    """The qualified name of the model_fn the estimator trains (a canned estimator's inner one)."""
    inner = getattr(estimator, "estimator_", None)
    model_fn = getattr(inner, "model_fn", None) or estimator.get_params(deep=False).get("model_fn")
    return as_text(model_fn) if model_fn is not None else None


def _existing_run(run_id: str, tracking_uri: str) -> TrackedRun:
    client = get_client(tracking_uri)
    try:
        with bounded_requests():
            experiment_id = client.get_run(run_id).info.experiment_id
    except Exception as exc:
        logger.warning("Could not read MLflow run %s (%s); recording into it anyway.", run_id, exc)
        experiment_id = ""
    return TrackedRun(run_id, experiment_id, tracking_uri)


def _logged_params(run: TrackedRun) -> dict[str, str]:
    """The params already logged to `run` (read from the store; {} when it cannot be reached)."""
    try:
        with bounded_requests():
            return dict(get_client(run.tracking_uri).get_run(run.run_id).data.params)
    except Exception as exc:
        logger.warning("Could not read the params of MLflow run %s (%s); not comparing them.", run.run_id, exc)
        return {}
