"""`TrainingContext`: what the training loop hands every monitor, and all a monitor may use.

One object per `fit` call, passed to each monitor's `set_context` before `begin`. The built-in
monitors use nothing else, so a monitor written outside `estimators` (the MLflow monitor of `flows`)
can do all they do. See `estimators.monitors` for how to write one.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import tensorflow as tf

    from estimators.model_state import ModelState
    from estimators.run_config import RunConfig

__all__ = ["TrainingContext"]

logger = logging.getLogger("skflow")


class TrainingContext:
    """What a monitor may read and do while an Estimator trains (one object per `fit` call).

    The loop passes it to every monitor's `set_context` before `begin`. Everything a built-in
    monitor does goes through it, so a monitor written outside `estimators` (the MLflow monitor of
    `flows`) can do the same.

    Attributes:
        estimator: the estimator the user called `fit` on (its public API: `get_params()`): the
            `Estimator`, or the canned estimator (`DNNClassifier`, ...) that trains one.
        config: its `RunConfig`.
        model_dir: where its checkpoints and TensorBoard summaries go.
        is_chief: whether this process is the chief worker (only the chief writes files).
        start_step: the global step when this fit began.
        max_steps: the global step this fit ends at, or None (until the input ends).
        batch_size: rows per training batch, or None when an input_fn makes the batches.
        steps_per_epoch: training steps per pass over the data, when known.
    """

    def __init__(
        self,
        estimator: Any,
        state: ModelState,
        max_steps: int | None,
        batch_size: int | None,
        steps_per_epoch: int | None,
        prepare: Callable[[Any, Any], tuple[Any, Any]] | None = None,
        input_token: Any = None,
        data: tuple[Any, Any] | None = None,
        feeder: Any = None,
        owner: Any = None,
        fingerprint: str | None = None,
    ) -> None:
        self.estimator = owner if owner is not None else estimator
        self._trained = estimator  # the Estimator whose model is in memory (a canned owner's estimator_)
        self._state = state
        self.config: RunConfig = state.config
        self.model_dir: str = state.model_dir
        self.is_chief: bool = self.config.is_chief
        self.start_step = self.global_step
        self.max_steps = max_steps
        self.batch_size = batch_size
        self.steps_per_epoch = steps_per_epoch
        self._prepare = prepare
        self._input_token = input_token if input_token is not None else estimator
        self._last_loss: float | None = None
        self._data = data
        self._feeder = feeder
        self._fingerprint: str | None | bool = fingerprint or False  # False: not computed yet
        self._monitors: Any = None  # the fit's MonitorList (set by the loop): report_metrics fans out through it
        self.error: BaseException | None = None  # the exception that stopped training, if one did

    # ------------------------------------------------------------------ state
    @property
    def global_step(self) -> int:
        """The number of training steps taken so far (the model's global step)."""
        return self._state.runtime.step

    @property
    def last_loss(self) -> float | None:
        """The most recent training loss read from the device (at a monitor's step or the end), or None."""
        return self._last_loss

    @property
    def input_fingerprint(self) -> str | None:
        """A SHA-256 of the training data's content (`feeders.fingerprint` of this fit's x and y), or
        None for an input_fn or an iterator. Computed on first use."""
        if self._fingerprint is False:
            from feeders import fingerprint

            self._fingerprint = None if self._data is None else fingerprint(*self._data)
        return self._fingerprint

    @property
    def input_summary(self) -> dict[str, Any]:
        """How this fit is fed, for the record: the feeder's kind, rows, batch size, epochs, shuffling."""
        feeder = self._feeder
        if feeder is None:
            return {"feeder": "input_fn"}
        summary = {"feeder": type(feeder).__name__, "batch_size": getattr(feeder, "batch_size", None)}
        for name in ("n_samples", "epochs", "shuffle"):
            if getattr(feeder, name, None) is not None:
                summary[name] = getattr(feeder, name)
        state = getattr(feeder, "state", None) or {}
        if state.get("impute") or (state.get("frame") or {}).get("impute"):
            summary["impute"] = "mean"
        return summary

    @property
    def input_token(self) -> Any:
        """Equal for two fits whose `eval_input` encodes data the same way (a cached eval input stays valid)."""
        return self._input_token

    # ------------------------------------------------------------------ evaluation
    def eval_input(self, x: Any, y: Any = None, batch_size: int | None = None) -> Any:
        """A finite, ordered feeder of held-out `(x, y)`, validated and encoded once as this fit's
        model sees its input (for a canned estimator: raw labels become class ids). Reuse it across
        `evaluate` calls while `input_token` is unchanged."""
        if self._prepare is not None:
            x, y = self._prepare(x, y)
        return self._state.inputs.feeder(x, y, batch_size, training=False)

    def evaluate(
        self,
        x: Any = None,
        y: Any = None,
        input_fn: Callable[[], Any] | None = None,
        steps: int | None = None,
        metrics: Any = None,
        name: str | None = None,
    ) -> dict[str, Any]:
        """`Estimator.evaluate` on the weights in memory, now (x: raw data, or a feeder from `eval_input`)."""
        if x is not None and not _is_feeder(x):
            x, y = self.eval_input(x, y), None
        return self._trained.evaluate(x, y, input_fn=input_fn, steps=steps, metrics=metrics, name=name)

    def input_is_finite(self, input_fn: Callable[[], Any]) -> bool:
        """Whether the dataset `input_fn` returns ends (an endless one needs `steps` to evaluate)."""
        from estimators.inputs import call_input_fn

        return call_input_fn(input_fn, repeat=False)[1]

    # ------------------------------------------------------------------ checkpoints and exports
    def save_checkpoint(self, loss: Any = None) -> str | None:
        """Checkpoint the weights in memory now; returns its path, or None when this step is already
        saved or the loss is not finite (bad weights are never saved).

        Args:
            loss: the latest loss (a tensor or a float, as `after_run` gets it) to judge the weights
                by. default: `last_loss`.
        """
        return self._state.save_now(self._last_loss if loss is None else loss)

    def save_best(self, results: Mapping[str, Any]) -> str:
        """Keep the weights in memory as model_dir/best (one checkpoint, replaced by the next call),
        with `results` in model_dir/best/best.json; `evaluate/predict(checkpoint_path="best")` use it."""
        return self._state.save_best(self.global_step, results)

    def latest_checkpoint(self) -> str | None:
        """Path prefix of the newest checkpoint in model_dir, or None."""
        return self._trained.latest_checkpoint()

    def best_checkpoint(self) -> str | None:
        """Path prefix of the checkpoint `save_best` kept, or None."""
        import tensorflow as tf

        return tf.train.latest_checkpoint(os.path.join(self.model_dir, "best"))

    def export_saved_model(self, export_dir_base: str) -> str:
        """Export the weights in memory as a SavedModel under export_dir_base/<timestamp>; returns its path."""
        exporter = self.estimator if hasattr(self.estimator, "export_saved_model") else self._trained
        return exporter.export_saved_model(export_dir_base)

    # ------------------------------------------------------------------ variables and summaries
    def variable_names(self, trainable_only: bool = False) -> list[str]:
        """Names of the model's variables, then of its optimizer's (`optimizer_0/3`: its checkpoint
        name), which `variable_value` and `step_begin` accept; only the trainable model variables
        with `trainable_only`."""
        rt = self._state.runtime
        names = [n for n, v in rt.store.variables.items() if v.trainable or not trainable_only]
        return names if trainable_only else [*names, *rt.optimizer_vars]

    def variable_value(self, name: str) -> Any:
        """The current value of a variable, or of "loss", "global_step" or "learning_rate"."""
        if name == "loss":
            return self._last_loss
        return self._state.tensor_value(name)

    @property
    def optimizers(self) -> list[Any]:
        """The Keras optimizers the model_fn's `optimize_loss` calls made (with their learning rates)."""
        return [opt for opt in self._state.runtime.optimizers if opt is not None]

    def summary_writer(self, logdir: str | None = None) -> tf.summary.SummaryWriter:
        """The Estimator's TensorBoard writer for `logdir` (default model_dir): one per directory, so
        every monitor appends to the same event file."""
        return self._state.summary_writer(logdir or self.model_dir)

    def write_scalars(self, values: Mapping[str, float], step: int | None = None, logdir: str | None = None) -> None:
        """Write TensorBoard scalars at `step` (default: the global step) into `logdir` (default model_dir)."""
        from estimators.summaries import write_scalars

        write_scalars(self.summary_writer(logdir), values, self.global_step if step is None else step)

    def report_metrics(self, values: Mapping[str, float], step: int | None = None) -> None:
        """Hand metrics computed during training (a ValidationMonitor's `val_loss`, `val_accuracy`)
        to every monitor's `metrics_reported` hook, at `step` (default: the global step): how a
        tracking monitor records what other monitors measure."""
        if self._monitors is not None:
            self._monitors.metrics_reported(self.global_step if step is None else step, dict(values))

    def report(self, message: str) -> None:
        """Show `message` to the person running the fit (stderr, unless `RunConfig(verbose=0)`), and log it."""
        logger.info(message)
        if self.config.verbose:
            print(message, file=sys.stderr, flush=True)


def _is_feeder(x: Any) -> bool:
    from feeders import is_feeder

    return is_feeder(x)
