"""The live state of one Estimator's model: where it lives on disk and what it holds in memory.

`ModelState` ties together the model_dir (`checkpoints.CheckpointStore`, `skflow.json` through
`ModelMetadata`), the input side (`inputs.Inputs`), where weights come from (`restore.WeightSource`)
and the in-memory runtime (variables, optimizers, compiled functions). The Estimator creates one at
first use; the training loop's `TrainingContext` acts on it for the monitors.
"""

from __future__ import annotations

import copy
import logging
import os
import shutil
import tempfile
import warnings
import weakref
from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf
from sklearn.exceptions import NotFittedError

from estimators import checkpoints as ckpt
from estimators._context import clean_errors
from estimators._runtime import Runtime
from estimators.distribute import cluster_strategy, joins_cluster
from estimators.inputs import Inputs, qualname
from estimators.metadata import ModelMetadata
from estimators.model_fn import ModelFunction, validate_model_fn
from estimators.restore import BEST, WeightSource, checkpoint_weights
from estimators.run_config import RunConfig

__all__ = ["ModelState", "bind_model"]

logger = logging.getLogger("skflow")


class ModelState:
    """One model's directory, metadata, inputs and runtime.

    Args:
        model: the bound model_fn.
        config: the RunConfig.
        model_dir: the (resolved) model directory.
        warm_start_from: a model_dir or checkpoint path to warm-start a new model from, or None.
        owner: the estimator's class name, for messages.
        model_fn_name: recorded in skflow.json.
    """

    def __init__(
        self,
        model: ModelFunction,
        config: RunConfig,
        model_dir: str,
        warm_start_from: str | None,
        owner: str,
        model_fn_name: str,
    ) -> None:
        self.model = model
        self.config = config
        self.owner = owner
        self.model_dir = model_dir
        self.checkpoints = self._store(model_dir)
        self.weights = WeightSource(self.checkpoints, warm_start_from)
        self.meta = ModelMetadata(model_dir, owner, model_fn_name, write=config.is_chief)
        self.inputs = Inputs(self.meta)
        self.runtime: Runtime | None = None
        self.initialized = False  # the variables in memory hold a restored or trained state
        self.last_saved_step: int | None = None
        self.best_checkpoints: ckpt.CheckpointStore | None = None
        self.writers: dict[str, Any] = {}
        # Set while a multi-worker fit runs monitor hooks: their saves wait for the workers' decision
        # (`lockstep.Lockstep`), which every worker takes together.
        self.save_requests: Any = None

    @classmethod
    def create(cls, estimator: Any, arguments: Mapping[str, Any], warn: bool = True) -> ModelState:
        """The state of an Estimator at its first use: its constructor `arguments` checked, config
        and model_dir resolved (a temporary model_dir, with a warning unless `warn=False`, goes
        when `estimator` is garbage-collected).

        Raises:
            TypeError: config not a RunConfig, feature_engineering_fn or model_fn not callable.
            ValueError: params given to a model_fn without a `params` argument.
        """
        config = arguments["config"]
        if config is not None and not isinstance(config, RunConfig):
            raise TypeError(f"config must be a RunConfig; received {type(config).__name__}.")
        fe_fn = arguments["feature_engineering_fn"]
        if fe_fn is not None and not callable(fe_fn):
            raise TypeError("feature_engineering_fn must be callable(features, targets) -> (features, targets).")
        config = config if config is not None else RunConfig()
        model = bind_model(arguments, config)
        model_dir = arguments["model_dir"]
        if model_dir is None:
            model_dir = tempfile.mkdtemp(prefix="skflow_estimator_")
            weakref.finalize(estimator, shutil.rmtree, model_dir, True)
            if warn:
                warnings.warn(f"Using temporary folder as model directory: {model_dir}", UserWarning, stacklevel=4)
        warm = arguments["warm_start_from"]
        warm = os.fspath(warm) if warm is not None else None
        owner = type(estimator).__name__
        return cls(model, config, os.fspath(model_dir), warm, owner, qualname(arguments["model_fn"]))

    def _store(self, model_dir: str) -> ckpt.CheckpointStore:
        c = self.config
        return ckpt.CheckpointStore(model_dir, c.keep_checkpoint_max, c.keep_checkpoint_every_n_hours, c.is_chief)

    # ------------------------------------------------------------------ runtime
    @property
    def trains_distributed(self) -> bool:
        """Whether fits train under a tf.distribute strategy (`train_distribute`, or a TF_CONFIG cluster)."""
        return self.config.train_distribute is not None or joins_cluster(self.config)

    def ensure_runtime(self, training: bool = False) -> Runtime:
        """The runtime, made on first use with the stored global step (checkpoint or pickle).

        With `training` in a process of a multi-worker TF_CONFIG cluster (and no `train_distribute`), its
        variables live in the cluster's `MultiWorkerMirroredStrategy` (`distribute.cluster_strategy`);
        a runtime made earlier for evaluate/predict is made again for it."""
        rt = self.runtime
        if training and rt is not None and not rt.distributed and self.trains_distributed:
            self.runtime, self.initialized = None, False  # it holds nothing unsaved: it never trained
        if self.runtime is None:
            strategy = self.config.train_distribute
            if strategy is None and training and joins_cluster(self.config):
                strategy = cluster_strategy(self.config)  # first: before this process runs any TF op
            if self.config.tf_random_seed is not None:
                tf.random.set_seed(self.config.tf_random_seed)
            self.runtime = rt = Runtime(self.model, strategy)
            stored_step = self.weights.global_step()
            if stored_step is not None:
                rt.global_step.assign(stored_step)
                rt.step = stored_step
                self.last_saved_step = stored_step if self.weights.checkpoint() else None
                self.initialized = True
        return self.runtime

    def ready_runtime(self, method: str) -> Runtime:
        """The runtime of a model that has been fitted (restored or trained in memory)."""
        rt = self.ensure_runtime()
        if not self.initialized:
            raise NotFittedError(
                f"This {self.owner} instance is not fitted yet: there is no checkpoint in model_dir "
                f"{self.model_dir!r}. Call 'fit' with appropriate arguments before using '{method}'."
            )
        return rt

    def rebind(self, model: ModelFunction) -> None:
        """Use another bound model_fn (new params): the compiled functions go, the model_dir stays."""
        self.model = model
        self.runtime, self.initialized = None, False

    def trace(self, fn: Any, where: str, *args: Any) -> None:
        """Trace a compiled function once; its new variables get their values (checkpoint, warm start...)."""
        rt = self.runtime
        if fn in rt.traced:
            return
        with clean_errors():
            fn.get_concrete_function(*args)
        self.initialized = self.weights.restore(rt.pop_new_variables(), self.initialized, where)
        rt.traced.add(fn)

    def concrete(self, fn: Any, where: str) -> Any:
        """The traced concrete function of a fixed-signature `tf.function`, called directly: that
        skips the polymorphic dispatch (~1 ms per call), what keeps partial_fit and 1-row predict cheap."""
        rt = self.runtime
        concrete = rt.concrete.get(fn)
        if concrete is None:
            with clean_errors():
                concrete = fn.get_concrete_function()
            self.initialized = self.weights.restore(rt.pop_new_variables(), self.initialized, where)
            rt.concrete[fn] = concrete
        return concrete

    def shuffle_seed(self) -> int:
        """The shuffling seed of the next fit: drawn, or derived from tf_random_seed and the global step."""
        base = self.config.tf_random_seed
        if base is None:
            return int(np.random.randint(0, 2**31 - 1))
        step = self.runtime.step if self.runtime is not None else 0
        return (int(base) * 1_000_003 + step) % (2**31 - 1)

    def tensor_value(self, name: str) -> Any:
        """A value a monitor asked for: global_step, learning_rate, or a variable by name."""
        rt = self.runtime
        if name == "global_step":
            return rt.step
        if name == "learning_rate" and rt.optimizers:
            lr = rt.optimizers[0].learning_rate
            return float(lr.numpy() if hasattr(lr, "numpy") else lr)
        var = rt.store.variables.get(name, rt.optimizer_vars.get(name))
        if var is None:
            raise ValueError(
                f"A monitor asked for {name!r}, which is not 'loss', 'global_step', 'learning_rate' or a variable "
                f"of the model ({sorted(rt.store.variables)}) or of its optimizer (optimizer_0/0, ...)."
            )
        return var.numpy()

    # ------------------------------------------------------------------ checkpoints
    def latest_or_raise(self, method: str) -> str:
        """The latest checkpoint, or NotFittedError saying why there is none."""
        path = self.checkpoints.latest()
        if path is not None:
            return path
        if self.initialized:
            raise NotFittedError(
                f"'{method}' reads the latest checkpoint, and model_dir {self.model_dir!r} has none yet: the model "
                "was trained in memory (partial_fit). Call save_checkpoint() first."
            )
        self.ready_runtime(method)
        raise NotFittedError(f"model_dir {self.model_dir!r} has no checkpoint.")

    def save(self, force: bool = False) -> str | None:
        """Checkpoint the variables in memory (once per step unless `force`)."""
        rt = self.runtime
        if not force and self.last_saved_step == rt.step:
            return None
        path = self.checkpoints.save(rt.global_step, rt.store.variables, rt.optimizer_vars, rt.step)
        self.last_saved_step = rt.step
        if self.meta.unsaved:  # the first checkpoint: now skflow.json describes a model
            self.meta.save()
        return path

    def save_now(self, loss: Any = None) -> str | None:
        """Checkpoint the in-memory state, unless the last loss shows the weights went bad (NaN/inf)."""
        if self.save_requests is not None:
            return self.save_requests.checkpoint(self, loss)
        if loss is not None and not np.isfinite(float(loss)):
            logger.warning("Not saving a checkpoint at step %d: the last loss is %s.", self.runtime.step, float(loss))
            return None
        return self.save()

    def save_best(self, step: int, results: Mapping[str, Any]) -> str:
        """Save the in-memory weights as model_dir/best (one checkpoint, replaced when a better one comes)."""
        if self.save_requests is not None:
            return self.save_requests.best(self, step, results)
        rt = self.runtime
        if self.best_checkpoints is None:
            self.best_checkpoints = ckpt.CheckpointStore(
                os.path.join(self.model_dir, BEST), 1, 10000, self.config.is_chief
            )
        path = self.best_checkpoints.save(rt.global_step, rt.store.variables, rt.optimizer_vars, step)
        if self.config.is_chief:
            ckpt.write_json(os.path.join(self.model_dir, BEST, "best.json"), {"step": step, "results": dict(results)})
        return path

    def to_pickle(self) -> dict[str, Any]:
        """What a pickle of the Estimator carries: signatures and feeder state, the fit batch size
        and every variable's value (no TF object)."""
        return {"meta": self.meta.to_json(), "fit_batch_size": self.inputs.fit_batch_size, "weights": self._weights()}

    def from_pickle(self, payload: dict[str, Any]) -> None:
        """Take over what `to_pickle` wrote (into this state's own, new model_dir)."""
        self.meta.restore_json(payload["meta"])
        self.meta.save()
        self.inputs.fit_batch_size = payload["fit_batch_size"]
        self.weights.pickled = payload["weights"]

    def _weights(self) -> dict[str, np.ndarray] | None:
        """Every variable's value (model, optimizer, global_step): in memory, pickled, or on disk."""
        rt = self.runtime
        if rt is not None and self.initialized:
            weights = {n: v.numpy() for n, v in {**rt.store.variables, **rt.optimizer_vars}.items()}
            weights["global_step"] = np.int64(rt.step)
            return weights
        if self.weights.pickled is not None:
            return self.weights.pickled
        path = self.weights.checkpoint()
        return None if path is None else checkpoint_weights(path)

    # ------------------------------------------------------------------ summaries
    def summary_writer(self, logdir: str) -> Any:
        """This model's TensorBoard writer for `logdir` (one per directory: one event file)."""
        writer = self.writers.get(logdir)
        if writer is None:
            writer = self.writers[logdir] = tf.summary.create_file_writer(logdir)
        return writer

    def close_writers(self) -> None:
        for writer in self.writers.values():
            writer.close()
        self.writers.clear()

    # ------------------------------------------------------------------ copies and restarts
    def pinned(self, checkpoint_path: str) -> ModelState:
        """A copy that restores from one checkpoint (its own runtime) and leaves this one untouched."""
        other = copy.copy(self)
        other.runtime, other.initialized, other.last_saved_step = None, False, None
        other.weights = copy.copy(self.weights)
        other.weights.pinned = checkpoint_path
        return other

    def restart(self, model_dir: str) -> None:
        """Start over in a new, empty model_dir, keeping the compiled functions (the canned estimators'
        refit: scikit-learn's fit trains from scratch, and tracing costs more than tiny fits)."""
        self.close_writers()
        self.model_dir = model_dir
        self.checkpoints = self._store(model_dir)
        self.weights = WeightSource(self.checkpoints, self.weights.warm_start_from)
        self.best_checkpoints = None
        self.last_saved_step = None
        self.meta.model_dir = model_dir
        self.meta.save()
        if self.runtime is not None:
            self.runtime.reinitialize()
            self.initialized = False


def bind_model(arguments: Mapping[str, Any], config: RunConfig) -> ModelFunction:
    """The model_fn of an Estimator's constructor `arguments`, bound to its params and config."""
    args = validate_model_fn(arguments["model_fn"], arguments["params"])
    return ModelFunction(arguments["model_fn"], args, arguments["params"], config, arguments["feature_engineering_fn"])
