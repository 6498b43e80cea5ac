"""A pipeline whose fit is spread over N local worker processes: `skflow run CONFIG --workers N`.

`run_distributed(config, workers=N)` starts N processes with `estimators.launch_local_workers` (free
127.0.0.1 ports, one `TF_CONFIG` each, output prefixed `[worker i]`). Each process joins the cluster
first thing (`estimators.cluster_strategy()`, before any TensorFlow work), then runs `work`:

- **Worker 0, the chief, runs the ordinary `train_flow`**: ingest -> validate -> split -> fit ->
  evaluate -> log the model, in its Prefect flow run and its MLflow run: the only flow run and the
  only MLflow run of the launch. Its fit finds the cluster in `TF_CONFIG` and trains with the
  cluster's strategy; it alone writes checkpoints, summaries, exports and MLflow records.
- **The other workers only train.** They derive the same data deterministically from the same
  resolved config (the parent writes it once, `--set` overrides applied): the same ingest, column
  checks and seeded split, into a scratch directory of theirs that is removed afterwards. They
  build the same estimator and take part in every training step; the training loop keeps them in
  lockstep with the chief's monitors (`estimators.lockstep`: validation, early stopping, saves).
  No Prefect flow run, no MLflow record, nothing under `model_root`.
- The chief hands its `TrainResult` to the parent through a file; each other worker reports the
  fingerprint of the data it trained on, which must equal the one the chief's run recorded (a source
  that changed between their reads: a `WorkerDataMismatchError`, the run marked FAILED).

Why the chief owns the runs rather than the parent: the fitted estimator, the evaluation and the
model export live where the fit ran, so `train_flow` runs unchanged there, and the records are
the same as those of a one-process run.

Failures: a worker that dies or fails stops the group (`max_restarts=0`: a restarted chief would
start a second MLflow run, so the launch fails instead) and `WorkerFailedError` names the worker,
its exit code or signal and its last log lines. A chief killed mid-run cannot end its own runs, so
the parent ends them: the MLflow run FAILED (the error in the tag `skflow.error`) and the Prefect
flow run CRASHED. The fit task gets no Prefect retry in the chief (a retried fit in one process
cannot rejoin its peers): a failed fit fails the launch, and the checkpoints stay in the model_dir.

The same `work` entry point runs on several machines: give each process the cluster's `TF_CONFIG`
(infra/README.md); without the launcher the other workers' reports and the chief's result are not
collected.

Example::

    from flows import load_config
    from flows.workers import run_distributed
    result = run_distributed(load_config("configs/digits.yaml"), workers=2)
    print(result.run_id, result.metrics)
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict
from typing import IO, TYPE_CHECKING, Any

from estimators.monitors import BaseMonitor
from flows.config import PipelineConfig, load_config

if TYPE_CHECKING:  # the workers that only train never import Prefect or MLflow
    from flows.pipelines import TrainResult

__all__ = ["WorkerDataMismatchError", "run_distributed", "work"]

logger = logging.getLogger("skflow")

ENV_DIR = "SKFLOW_WORKERS_DIR"  # where the parent's spec is and the workers' results go
TARGET = "flows.workers:work"
_PEER_FAILED_WAIT_S = 30.0  # how long a worker whose chief failed waits to be stopped (the chief's error is the news)


class WorkerDataMismatchError(RuntimeError):
    """A worker trained on other data than the chief's run recorded (the source changed between reads)."""


def run_distributed(
    config: PipelineConfig | Mapping[str, Any] | str,
    workers: int = 2,
    *,
    startup_timeout: float = 120.0,
    timeout: float | None = None,
    stream: IO[str] | None = None,
    log_dir: str | os.PathLike | None = None,
) -> TrainResult:
    """Run the training pipeline with its fit spread over `workers` local processes (one TF_CONFIG cluster).

    Args:
        config: the pipeline (a `PipelineConfig`, a dict, or a YAML path).
        workers: how many worker processes; 1 runs `train_flow` in this process. default=2.
        startup_timeout: seconds for the cluster to come up once a worker started joining it. default=120.
        timeout: seconds for the whole launch; None: no limit. default=None.
        stream: where the workers' prefixed output goes. default=sys.stderr.
        log_dir: also keep each worker's whole log in `log_dir/worker-<i>.log`. default=None.

    Returns:
        the chief's `TrainResult` (its MLflow run, metrics, model URI, model_dir, Prefect flow run).

    Raises:
        ConfigError: the config is invalid or names columns its source lacks (nothing was started).
        WorkerFailedError: a worker died or failed (naming it, with its last log lines); the chief's runs
            are ended FAILED / CRASHED when it could not end them itself.
        ClusterStartupError: the cluster did not come up within `startup_timeout`.
        WorkerDataMismatchError: a worker trained on different data than the chief (the run is FAILED).

    Example:
        >>> result = run_distributed("configs/digits.yaml", workers=2)
        >>> result.status
        'FINISHED'
    """
    from flows.sources import check_columns

    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(
            f"Invalid value for argument `workers`. Received: workers={workers!r}. Expected a positive integer."
        )
    config = config if isinstance(config, PipelineConfig) else load_config(config)
    check_columns(config)
    if workers == 1:
        from flows.pipelines import train_flow

        return train_flow(config)
    from estimators.launcher import WorkerFailedError, launch_local_workers

    launch = uuid.uuid4().hex[:12]
    prefect_env, server = _prefect_api()
    directory = tempfile.mkdtemp(prefix="skflow-workers-")
    try:
        spec = os.path.join(directory, "spec.json")
        with open(spec, "w", encoding="utf-8") as f:
            json.dump({"config": config.model_dump(mode="json"), "workers": workers, "launch": launch}, f)
        try:
            launch_local_workers(
                TARGET,
                workers,
                args=[spec],
                env={ENV_DIR: directory, **prefect_env},
                startup_timeout=startup_timeout,
                timeout=timeout,
                stream=stream,
                log_dir=log_dir,
            )
        except (WorkerFailedError, TimeoutError, KeyboardInterrupt) as exc:
            ended = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
            for note in _end_abandoned_runs(launch, config, _first_line(exc), ended):
                exc.add_note(note)
            raise
        from flows.pipelines import TrainResult

        chief = _read(os.path.join(directory, "result.json"))
        result = TrainResult(**chief["result"])
        reports = [_read(os.path.join(directory, f"worker-{i}.json")) for i in range(1, workers)]
        _check_same_data(result, chief["fingerprint"], reports)
        return result
    finally:
        shutil.rmtree(directory, ignore_errors=True)
        if server is not None:
            server.stop()


def work(config: str, *overrides: str) -> None:
    """One worker process's part, called once the process joined its cluster: the chief (task 0) runs
    `train_flow`, the others train on the same data. Exits 0, or 1 with a one-line reason (and the
    flow's notes) instead of a traceback.

    Args:
        config: the spec `run_distributed` writes (a .json file holding the resolved config), or a
            pipeline YAML file (several machines: `python -m flows.workers CONFIG key=value ...`).
        overrides: `key.path=value` overrides of a YAML config, as `skflow run --set` takes them.
    """
    from estimators.run_config import ClusterConfig
    from flows.foreground import exit_now

    cluster = ClusterConfig()
    task = cluster.task_id
    try:
        if config.endswith(".json"):
            with open(config, encoding="utf-8") as f:
                spec = json.load(f)
            pipeline = load_config(spec["config"])
        else:
            pipeline = load_config(config, [o for o in overrides if o != "--set"])
            spec = {"workers": cluster.num_worker_replicas, "launch": None}
        if cluster.is_chief:
            _chief(pipeline, spec)
        else:
            _train_only(pipeline, task)
        exit_now(0)  # the exit handlers (Prefect's and MLflow's flushes), then no TensorFlow teardown
    except Exception as exc:  # noqa: BLE001 - reported as one line, the launcher names the worker
        from estimators.lockstep import PeerFailedError

        print(f"Run failed on {cluster.task_type} {task}: {type(exc).__name__}: {exc}", file=sys.stderr)
        for note in getattr(exc, "__notes__", []):
            print(note, file=sys.stderr)
        if isinstance(exc, PeerFailedError):  # the chief failed: let its own error be the one reported
            time.sleep(_PEER_FAILED_WAIT_S)
        exit_now(1)


def _chief(config: PipelineConfig, spec: Mapping[str, Any]) -> None:
    from prefect import tags

    from flows.foreground import without_heartbeats
    from flows.pipelines import train_flow

    # A retried fit in one process cannot rejoin its peers: a failed fit fails the launch.
    config = config.model_copy(update={"retries": config.retries.model_copy(update={"fit": 0})})
    labels = [f"skflow-workers:{spec['workers']}", *([_launch_tag(spec["launch"])] if spec["launch"] else [])]
    with tags(*labels), without_heartbeats():
        result = train_flow(config)
    from flows.tracking.store import get_client

    fingerprint = get_client(result.tracking_uri).get_run(result.run_id).data.params.get("data.fingerprint")
    _write("result.json", {"result": asdict(result), "fingerprint": fingerprint})


def _train_only(config: PipelineConfig, task: int) -> None:
    """What a non-chief worker does: the chief's data steps into scratch, then the same fit."""
    from flows import data as data_steps
    from flows import training

    scratch = tempfile.mkdtemp(prefix=f"skflow-worker-{task}-")
    try:
        dataset = data_steps.ingest(config.source, scratch, config.fit.memory_budget_mb)
        features = data_steps.validate(dataset, config)
        splits = data_steps.split(dataset, config, features, scratch)
        data = training.load_training_data(splits, config)
        target = training.total_steps(config.fit, data.train_rows)
        # A fresh model_dir, as the chief's run has: both restore nothing (the fit checks they agree).
        estimator = training.build_estimator(config, os.path.join(scratch, "model"), target)
        last = _LastStep()
        training.train_to_step(estimator, data, target, [last], config.fit.batch_size, config.fit.impute)
        logger.info(
            "Worker %d trained to step %d on %d rows (data %s); the chief evaluates and logs the model.",
            task, last.step, data.train_rows, dataset.fingerprint[:12],
        )  # fmt: skip
        record = {"task": task, "fingerprint": dataset.fingerprint, "train_rows": data.train_rows, "step": last.step}
        _write(f"worker-{task}.json", record)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    _wait_for_chief()


class _LastStep(BaseMonitor):
    """The global step at the end of every compiled call, on every worker (it asks for no cut)."""

    run_on_all_workers = True

    def __init__(self) -> None:
        super().__init__()
        self.step = 0

    def next_step(self, step: int) -> None:
        return None

    def after_run(self, step: int, loss: Any) -> None:
        self.step = step


def _wait_for_chief() -> None:
    """Stay in the cluster until the chief is done (its result is written): a worker that leaves
    first makes TensorFlow's coordination service log on the chief that a task "crashed". The
    launcher stops this process if the chief fails instead."""
    directory = os.environ.get(ENV_DIR)
    while directory and not os.path.exists(os.path.join(directory, "result.json")):
        time.sleep(0.2)


def _write(name: str, record: Mapping[str, Any]) -> None:
    directory = os.environ.get(ENV_DIR)
    if not directory:
        return  # not started by run_distributed (several machines): nobody collects it
    path = os.path.join(directory, name)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(record, f)
    os.replace(path + ".tmp", path)


def _read(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise RuntimeError(f"Every worker exited 0 but {os.path.basename(path)} is missing from {path}.") from None


def _launch_tag(launch: str) -> str:
    return f"skflow-launch:{launch}"


def _first_line(exc: BaseException) -> str:
    text = getattr(exc, "summary", None) or str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


def _prefect_api() -> tuple[dict[str, str], Any]:
    """The Prefect API for the chief: this process's (a test harness or a profile sets it without the
    environment), else a local server started here (`flows.foreground.LocalPrefectServer`, what
    `skflow run` starts), which the caller stops. Returns the environment to add, and that server."""
    from prefect.settings import PREFECT_API_URL

    from flows.foreground import LocalPrefectServer

    url = PREFECT_API_URL.value()
    if url:
        return {"PREFECT_API_URL": url}, None
    server = LocalPrefectServer()
    try:
        server.wait()
    except BaseException:
        server.stop()
        raise
    return {"PREFECT_API_URL": server.api_url}, server


def _check_same_data(result: TrainResult, recorded: str | None, reports: list[dict[str, Any]]) -> None:
    behind = [r for r in reports if r["step"] != result.global_step]
    if behind:  # lockstep makes this impossible: say so loudly if it ever happens
        raise WorkerDataMismatchError(
            f"Worker {behind[0]['task']} ended its fit at step {behind[0]['step']}, the chief at "
            f"{result.global_step} (MLflow run {result.run_id}): the workers did not train in step."
        )
    differing = [r for r in reports if recorded and r["fingerprint"] != recorded]
    if not differing:
        return
    message = (
        f"Worker(s) {', '.join(str(r['task']) for r in differing)} trained on other data than the chief "
        f"(fingerprint {differing[0]['fingerprint'][:12]} vs {recorded[:12]}): the source changed between their "
        "reads. Run again on a source that does not change (a snapshot: Parquet files, a table version)."
    )
    from flows.tracking.store import get_client

    client = get_client(result.tracking_uri)
    client.set_tag(result.run_id, "skflow.error", message)
    client.set_terminated(result.run_id, "FAILED")
    raise WorkerDataMismatchError(f"{message} MLflow run {result.run_id} is marked FAILED.")


def _end_abandoned_runs(launch: str, config: PipelineConfig, reason: str, ended: str = "FAILED") -> list[str]:
    """After a failed launch: end the chief's flow run CRASHED and its MLflow run `ended` if it could
    not (killed mid-run); returns what became of them, for the error's notes. Never raises: the
    workers' failure is the error to report."""
    notes = []
    try:
        from prefect import get_client
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
        from prefect.states import Crashed

        from flows.tracking.store import bounded_requests, resolve_store
        from flows.tracking.store import get_client as mlflow_client

        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[_launch_tag(launch)]))
            )
            for flow_run in runs:
                state = flow_run.state.name if flow_run.state is not None else "none"
                if flow_run.state is None or not flow_run.state.is_final():
                    client.set_flow_run_state(flow_run.id, Crashed(message=reason), force=True)
                    state = "Crashed"
                run_ids = [t.partition(":")[2] for t in flow_run.tags or [] if t.startswith("mlflow.run_id:")]
                for run_id in run_ids:
                    store = mlflow_client(resolve_store(config.tracking.uri).tracking_uri)
                    with bounded_requests():
                        status = store.get_run(run_id).info.status
                        if status == "RUNNING":
                            store.set_tag(run_id, "skflow.error", reason)
                            store.set_terminated(run_id, ended)
                            status = ended
                    notes.append(f"MLflow run {run_id} ({config.experiment}) ended {status}")
                notes.append(f"Prefect flow run {flow_run.name} ({flow_run.id}) ended {state}")
    except Exception as exc:  # noqa: BLE001
        logger.warning("Could not end the chief's runs after the failed launch: %s", exc)
    return notes


def main(argv: list[str] | None = None) -> int:
    """`python -m flows.workers CONFIG [key.path=value ...]`: this process's part of the pipeline in the
    cluster its `TF_CONFIG` names (one such process per machine; worker 0 is the chief). It joins the
    cluster before anything else, as TensorFlow requires."""
    from estimators import cluster_strategy

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m flows.workers CONFIG [key.path=value ...]  (with TF_CONFIG set)", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("skflow").setLevel(logging.INFO)
    from estimators.run_config import ClusterConfig
    from flows.foreground import start_local_server

    # the chief's flow run: the configured Prefect API, else a local server (as `skflow run` starts)
    server = start_local_server() if ClusterConfig().is_chief else None
    cluster_strategy()
    if server is not None:
        server.wait()
    work(argv[0], *argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
