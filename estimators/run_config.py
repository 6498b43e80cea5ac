"""`RunConfig`: how an Estimator runs (checkpoints, logging, seeds, distribution), and TF_CONFIG."""

from __future__ import annotations

import copy
import json
import numbers
import os
import warnings
from typing import Any

import tensorflow as tf

from estimators._validation import (
    check_non_negative_int,
    check_positive_int,
    check_positive_number,
    invalid_argument,
)

__all__ = ["ClusterConfig", "RunConfig", "TaskType"]


class TaskType:
    MASTER = "master"
    CHIEF = "chief"
    PS = "ps"
    WORKER = "worker"
    EVALUATOR = "evaluator"


class ClusterConfig:
    """Cluster information parsed from the `TF_CONFIG` environment variable, as the original did.

    A cluster of several chief/master/worker tasks is a multi-worker fit (`estimators.distribute`); the
    chief (the "chief" or "master" task, else worker 0) alone writes model_dir.

    `TF_CONFIG` is JSON: `{"cluster": {"chief": [...], "worker": [...], "ps": [...]},
    "task": {"type": "worker", "index": 1}, "environment": "cloud"}`. Without it the process is a
    single local chief.

    Attributes:
        cluster_spec: `tf.train.ClusterSpec` (empty when local).
        task_type, task_id: this process's job name and index.
        is_chief: whether this process writes checkpoints and summaries.
        master: gRPC address of this task ("" when local).
        num_ps_replicas, num_worker_replicas: counts from the cluster (chief/master count as workers).
        environment: "local" unless TF_CONFIG says otherwise.
    """

    def __init__(self, master: str | None = None, evaluation_master: str | None = None) -> None:
        raw = os.environ.get("TF_CONFIG", "")
        try:
            config = json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError as exc:
            raise ValueError(f"TF_CONFIG is not valid JSON ({exc}); received {raw[:200]!r}.") from None
        cluster = config.get("cluster") or {}
        task = config.get("task") or {}
        self.environment = config.get("environment", "local")
        self.cluster_spec = tf.train.ClusterSpec(cluster)
        self.task_type = task.get("type") or (TaskType.WORKER if cluster else TaskType.CHIEF)
        self.task_id = int(task.get("index", 0))
        jobs = set(cluster)
        if cluster and self.task_type not in jobs and self.task_type != TaskType.EVALUATOR:
            raise ValueError(f"TF_CONFIG task type {self.task_type!r} is not a job of its cluster {sorted(jobs)}.")
        if cluster and self.task_type in jobs and self.task_id >= len(cluster[self.task_type]):
            raise ValueError(
                f"TF_CONFIG task index {self.task_id} is out of range for job {self.task_type!r} "
                f"with {len(cluster[self.task_type])} task(s)."
            )
        if self.task_type in (TaskType.CHIEF, TaskType.MASTER):
            self.is_chief = self.task_id == 0
        elif self.task_type == TaskType.WORKER:
            self.is_chief = self.task_id == 0 and not ({TaskType.CHIEF, TaskType.MASTER} & jobs)
        else:
            self.is_chief = False
        if master is not None:
            self.master = master
        elif cluster and self.task_type in jobs:
            self.master = "grpc://" + cluster[self.task_type][self.task_id]
        else:
            self.master = ""
        self.evaluation_master = evaluation_master or ""
        self.num_ps_replicas = len(cluster.get(TaskType.PS, []))
        self.num_worker_replicas = (
            sum(len(cluster.get(j, [])) for j in (TaskType.CHIEF, TaskType.MASTER, TaskType.WORKER)) or 1
        )


_USE_DEFAULT = object()
_CLUSTER_FIELDS = (
    "environment", "cluster_spec", "task_type", "task_id", "is_chief", "master", "evaluation_master",
    "num_ps_replicas", "num_worker_replicas",
)  # fmt: skip


class RunConfig(ClusterConfig):
    """How an Estimator runs. Every argument has a sensible default.

    Args:
        tf_random_seed: seed for variable initialisation and data shuffling; None draws one. default=None.
        save_checkpoints_steps: save every this many steps. default=None.
        save_checkpoints_secs: save every this many seconds; default=600 unless `save_checkpoints_steps`
            is set. Every `fit` also saves when it ends.
        keep_checkpoint_max: most recent checkpoints kept. default=5.
        keep_checkpoint_every_n_hours: also keep one checkpoint per this many hours. default=10000.
        save_summary_steps: write TensorBoard scalars every this many steps. default=100.
        log_step_count_steps: log loss and steps/s every this many steps. default=100.
        steps_per_execution: training steps run per compiled call; the main speed lever on CPU
            (one step per call costs about twice as much: docs/benchmarks.md). Monitors still see every
            step they ask for. default=32.
        train_distribute: a `tf.distribute.Strategy` for training, or None. default=None: in a process whose
            `TF_CONFIG` names a cluster of several chief/worker tasks, fits train with the cluster's
            `MultiWorkerMirroredStrategy` (`estimators.cluster_strategy()`; see infra/README.md), else in
            this process alone.
        eval_distribute: accepted for tf.estimator compatibility. Evaluation and prediction run
            under the strategy the variables were created in (`train_distribute`, or the default
            strategy), so a different `eval_distribute` is ignored with a warning. default=None.
        verbose: progress shown on stderr while training, as Keras' `verbose`: "auto" (or 1) a bar
            on a terminal and a line every `log_step_count_steps` steps otherwise, 2 lines always,
            0 nothing. default="auto".
        master, evaluation_master: overrides for the addresses parsed from TF_CONFIG.

    Example:
        >>> config = RunConfig(tf_random_seed=42, save_checkpoints_steps=500)
        >>> config.replace(keep_checkpoint_max=2).keep_checkpoint_max
        2
    """

    def __init__(
        self,
        tf_random_seed: int | None = None,
        save_checkpoints_steps: int | None = None,
        save_checkpoints_secs: Any = _USE_DEFAULT,
        keep_checkpoint_max: int = 5,
        keep_checkpoint_every_n_hours: float = 10000,
        save_summary_steps: int = 100,
        log_step_count_steps: int = 100,
        steps_per_execution: int = 32,
        train_distribute: tf.distribute.Strategy | None = None,
        eval_distribute: tf.distribute.Strategy | None = None,
        verbose: int | str = "auto",
        master: str | None = None,
        evaluation_master: str | None = None,
    ) -> None:
        super().__init__(master=master, evaluation_master=evaluation_master)
        if save_checkpoints_secs is _USE_DEFAULT:
            save_checkpoints_secs = None if save_checkpoints_steps is not None else 600
        if save_checkpoints_steps is not None and save_checkpoints_secs is not None:
            raise ValueError(
                "Set at most one of save_checkpoints_steps and save_checkpoints_secs; received "
                f"save_checkpoints_steps={save_checkpoints_steps}, save_checkpoints_secs={save_checkpoints_secs}."
            )
        check_positive_int("save_checkpoints_steps", save_checkpoints_steps, allow_none=True)
        check_positive_number("save_checkpoints_secs", save_checkpoints_secs, allow_none=True)
        check_non_negative_int("keep_checkpoint_max", keep_checkpoint_max)
        check_non_negative_int("save_summary_steps", save_summary_steps)
        check_non_negative_int("log_step_count_steps", log_step_count_steps)
        check_positive_int("steps_per_execution", steps_per_execution)
        if verbose not in (0, 1, 2, "auto") or isinstance(verbose, bool):
            raise invalid_argument("verbose", verbose, '0, 1, 2 or "auto"')
        for name, strategy in (("train_distribute", train_distribute), ("eval_distribute", eval_distribute)):
            if strategy is not None and not isinstance(strategy, tf.distribute.Strategy):
                raise ValueError(f"`{name}` must be a tf.distribute.Strategy; received {type(strategy).__name__}.")
        if tf_random_seed is not None and not isinstance(tf_random_seed, numbers.Integral):
            raise ValueError(
                f"Invalid value for argument `tf_random_seed`. Received: tf_random_seed={tf_random_seed!r}. Expected an integer or None."
            )
        if eval_distribute is not None and eval_distribute is not train_distribute:
            warnings.warn(
                "RunConfig(eval_distribute=...) is ignored: skflow evaluates and predicts under the strategy its "
                "variables live in (train_distribute). Pass the same strategy as train_distribute, or None.",
                UserWarning,
                stacklevel=2,
            )
        self.tf_random_seed = tf_random_seed
        self.save_checkpoints_steps = save_checkpoints_steps
        self.save_checkpoints_secs = save_checkpoints_secs
        self.keep_checkpoint_max = keep_checkpoint_max
        self.keep_checkpoint_every_n_hours = keep_checkpoint_every_n_hours
        self.save_summary_steps = save_summary_steps
        self.log_step_count_steps = log_step_count_steps
        self.steps_per_execution = int(steps_per_execution)
        self.train_distribute = train_distribute
        self.eval_distribute = eval_distribute
        self.verbose = verbose

    _REPLACEABLE = (
        "tf_random_seed", "save_checkpoints_steps", "save_checkpoints_secs", "keep_checkpoint_max",
        "keep_checkpoint_every_n_hours", "save_summary_steps", "log_step_count_steps", "steps_per_execution",
        "train_distribute", "eval_distribute", "verbose",
    )  # fmt: skip

    def replace(self, **kwargs: Any) -> RunConfig:
        """A new RunConfig with some fields changed (those in `RunConfig._REPLACEABLE`)."""
        unknown = sorted(set(kwargs) - set(self._REPLACEABLE))
        if unknown:
            raise ValueError(f"RunConfig.replace() cannot change {unknown}; it can change {list(self._REPLACEABLE)}.")
        values = {k: getattr(self, k) for k in self._REPLACEABLE}
        if "save_checkpoints_steps" in kwargs and "save_checkpoints_secs" not in kwargs:
            values["save_checkpoints_secs"] = None if kwargs["save_checkpoints_steps"] is not None else 600
        values.update(kwargs)
        new = RunConfig(**values)
        # The cluster was parsed from TF_CONFIG when this config was made; keep it, whatever the
        # environment says now (a pickled Estimator rebuilds its config in another process).
        for name in _CLUSTER_FIELDS:
            setattr(new, name, getattr(self, name))
        return new

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._REPLACEABLE)
        return f"RunConfig({fields}, task_type={self.task_type!r}, task_id={self.task_id}, is_chief={self.is_chief})"

    def __getstate__(self) -> dict[str, Any]:
        # The cluster as a plain dict: a ClusterSpec is a TF object. (A tf.distribute strategy cannot be
        # pickled at all; Estimator.__getstate__ drops it.)
        state = dict(self.__dict__)
        state["cluster_spec"] = self.cluster_spec.as_dict()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        state["cluster_spec"] = tf.train.ClusterSpec(state.get("cluster_spec") or {})
        self.__dict__.update(state)

    def __deepcopy__(self, memo: dict) -> RunConfig:
        # Strategies are not copyable; everything else is plain data.
        new = copy.copy(self)
        memo[id(self)] = new
        return new
