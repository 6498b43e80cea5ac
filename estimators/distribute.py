"""The strategy of a `TF_CONFIG` cluster: one `MultiWorkerMirroredStrategy` per process, made at startup.

An Estimator whose `RunConfig` sees a `TF_CONFIG` cluster of several workers (chief, master and worker
tasks) trains with `MultiWorkerMirroredStrategy` unless `RunConfig(train_distribute=...)` names another
strategy. `cluster_strategy()` makes it once per process and every later fit reuses it.

TensorFlow accepts it only at program startup: with `TF_CONFIG` set and before the process runs its first
TensorFlow operation ("Collective ops must be configured at program startup"). A fit creates it for you
when it comes first; a program that runs TensorFlow work before fitting (a prediction, a dataset built
eagerly) calls `cluster_strategy()` first thing; `main` does that, then calls `module:function`: it is
how `launcher.launch_local_workers` runs a `"module:function"` target in each worker.

The constructor waits for every peer of the cluster and ignores SIGTERM meanwhile; it signals the
launcher before it starts waiting and once the cluster is up (`launcher.signal_startup`), so the
launcher's watchdog can tell a peer that never came up from a slow one, and SIGKILL the group.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

import tensorflow as tf

from estimators.launcher import signal_startup
from estimators.run_config import ClusterConfig, TaskType

__all__ = ["cluster_strategy", "joins_cluster", "spans_workers"]

logger = logging.getLogger("skflow")

_made: dict[str, Any] = {}  # "key": the cluster and task of the strategy this process made, "strategy": it
_told: set[str] = set()  # clusters a config named that this process is not part of (logged once each)


def spans_workers(strategy: tf.distribute.Strategy | None) -> bool:
    """Whether `strategy` trains across several processes (then every process must run the same
    collective operations in the same order: the training loop keeps its workers in lockstep)."""
    if strategy is None:
        return False
    try:
        devices = strategy.extended.worker_devices
    except (RuntimeError, NotImplementedError):  # the default strategy: this process only
        return False
    return strategy.num_replicas_in_sync > len(devices)


def joins_cluster(config: ClusterConfig) -> bool:
    """Whether a fit with `config` (and no `train_distribute`) trains in its multi-worker cluster: the
    config names several workers, and this process is that task of that cluster by its `TF_CONFIG` now.
    A config carried elsewhere (a pickled Estimator, TF_CONFIG unset since) trains in its process alone."""
    if config.num_worker_replicas <= 1:
        return False
    try:
        here = ClusterConfig()
    except ValueError:
        return False
    same = (here.cluster_spec.as_dict(), here.task_type, here.task_id) == (
        config.cluster_spec.as_dict(),
        config.task_type,
        config.task_id,
    )
    if not same and repr(config.cluster_spec.as_dict()) not in _told:
        _told.add(repr(config.cluster_spec.as_dict()))
        logger.info(
            "The RunConfig names TF_CONFIG task %s %d of cluster %s, which this process is not (its TF_CONFIG "
            "changed or is unset): training in this process alone.",
            config.task_type,
            config.task_id,
            config.cluster_spec.as_dict(),
        )
    return same


def cluster_strategy(config: ClusterConfig | None = None) -> tf.distribute.Strategy | None:
    """The `MultiWorkerMirroredStrategy` of this process's `TF_CONFIG` cluster (made on the first call,
    the same object afterwards), or None when the cluster has a single worker.

    Args:
        config: the cluster to join (a `RunConfig`). default: `ClusterConfig()`, parsed from `TF_CONFIG` now.

    Returns:
        the strategy, or None without a multi-worker cluster.

    Raises:
        ValueError: the cluster has parameter servers, this task is an evaluator, or this process
            already joined another cluster.
        RuntimeError: TensorFlow already ran an operation in this process, so it cannot join a cluster.

    Example:
        >>> # first thing in a worker's program (TF_CONFIG set by the launcher or the scheduler)
        >>> from estimators import cluster_strategy
        >>> strategy = cluster_strategy()
    """
    config = config if config is not None else ClusterConfig()
    if config.num_worker_replicas <= 1:
        return None
    cluster = config.cluster_spec.as_dict()
    if cluster.get(TaskType.PS):
        raise ValueError(
            f"TF_CONFIG names parameter servers ({cluster[TaskType.PS]}); skflow trains a cluster of "
            "chief/worker tasks with MultiWorkerMirroredStrategy. Remove the 'ps' job, or pass "
            "RunConfig(train_distribute=...) with a strategy of your own."
        )
    if config.task_type not in (TaskType.CHIEF, TaskType.MASTER, TaskType.WORKER):
        raise ValueError(
            f"This process is TF_CONFIG task {config.task_type!r} {config.task_id}, which does not train: only "
            "chief, master and worker tasks join the training cluster."
        )
    key = repr((sorted((job, list(tasks)) for job, tasks in cluster.items()), config.task_type, config.task_id))
    if _made:
        if _made["key"] != key:
            raise ValueError(
                f"This process already joined the cluster {_made['key']}; it cannot join {key} as well "
                "(one multi-worker strategy per process)."
            )
        return _made["strategy"]
    task = f"{config.task_type} {config.task_id}"
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        config.cluster_spec, task_type=config.task_type, task_id=config.task_id, rpc_layer="grpc"
    )
    logger.info("Task %s: joining the cluster %s (waits for every peer).", task, cluster)
    signal_startup("starting")
    try:
        strategy = tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
    except RuntimeError as exc:
        if "program startup" not in str(exc):
            raise
        raise RuntimeError(
            f"Task {task} cannot join its TF_CONFIG cluster: TensorFlow already ran an operation in this "
            "process, and a multi-worker strategy must be made before any. Call "
            "estimators.cluster_strategy() first thing in the program (or fit before any other TensorFlow "
            "work), or launch a module:function target with estimators.launcher.launch_local_workers."
        ) from None
    signal_startup("ready")
    logger.info("Task %s: the cluster is up (%d replicas).", task, strategy.num_replicas_in_sync)
    _made.update(key=key, strategy=strategy)
    return strategy


def run_target(target: str, args: list[str]) -> Any:
    """Join the TF_CONFIG cluster, then call `module:function` with `args` (strings)."""
    module_name, _, function_name = target.partition(":")
    if not module_name or not function_name:
        raise ValueError(f"A target is 'module:function'; received {target!r}.")
    cluster_strategy()
    function = getattr(importlib.import_module(module_name), function_name)
    return function(*args)


WORKER_MAIN = "import sys; from estimators.distribute import main; sys.exit(main())"


def main(argv: list[str] | None = None) -> int:
    """A worker process's entry point: `python -c WORKER_MAIN module:function [ARGS...]` (as the launcher
    runs a target; `python -m estimators.distribute` would load this module twice)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print(f"usage: python -c {WORKER_MAIN!r} module:function [ARGS...]", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("skflow").setLevel(logging.INFO)
    run_target(argv[0], argv[1:])
    return 0
