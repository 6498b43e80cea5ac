"""What the worker processes of the multi-worker tests run (`module:function` targets of the launcher).

Each job reads a JSON spec, fits, and writes what it saw to `<out>/<job>-worker-<i>.json`.
"""

from __future__ import annotations

import json
import os
import signal

import numpy as np

from estimators import DNNClassifier, Estimator, RunConfig
from estimators.monitors import BaseMonitor, CheckpointSaver, ExportMonitor, ValidationMonitor
from tests.helpers import mlp_fn

PARAMS = {"n_classes": 3, "hidden": 8}


def data(n: int = 192, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A small deterministic 3-class problem (the same in every process)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int32) + (x[:, 2] > 1).astype(np.int32)
    return x, y


def config(**overrides) -> RunConfig:
    return RunConfig(tf_random_seed=0, log_step_count_steps=0, verbose=0, **overrides)


class LossRecorder(BaseMonitor):
    """Records the loss at every step (a chief-only monitor that cuts every compiled call to one step)."""

    def __init__(self) -> None:
        super().__init__()
        self.losses: dict[int, float] = {}

    def step_end(self, step, outputs):
        self.losses[step] = outputs["loss"]
        return False


class OddSteps(BaseMonitor):
    """A chief-only monitor that wants its hooks at odd steps only (the workers know nothing of it)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[int] = []

    def next_step(self, step):
        return step + 1 if step % 2 == 0 else step + 2

    def step_end(self, step, outputs):
        self.seen.append(step)
        return False


class StepLog(BaseMonitor):
    """On every worker: the global step of every chunk end, and where the fit began."""

    run_on_all_workers = True

    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[int] = []
        self.start = None

    def begin(self, max_steps=None):
        super().begin(max_steps)
        self.start = self.context.global_step

    def next_step(self, step):
        return None

    def after_run(self, step, loss):
        self.chunks.append(step)


class KillAt(BaseMonitor):
    """SIGKILLs worker `task` once the global step reaches `step`, on the launch's first attempt only."""

    run_on_all_workers = True

    def __init__(self, step: int, task: int) -> None:
        super().__init__()
        self.step, self.task = step, task

    def next_step(self, step):
        return None

    def after_run(self, step, loss):
        if step >= self.step and _task() == self.task and os.environ.get("SKFLOW_LAUNCH_ATTEMPT") == "0":
            os.kill(os.getpid(), signal.SIGKILL)


def _task() -> int:
    return json.loads(os.environ["TF_CONFIG"])["task"]["index"]


def _write(out: str, job: str, record: dict) -> None:
    with open(os.path.join(out, f"{job}-worker-{_task()}.json"), "w") as f:
        json.dump(record, f)


def _strategy_name(estimator) -> str:
    return type(estimator._state.runtime.strategy).__name__


def lockstep_fits(spec_path: str) -> None:
    """Four fits in one pair of processes: loss parity, chief-only monitors, a finite input, a canned estimator.

    Each worker gets model_dirs of its own (`<dir>-<task>`): a fresh fit restores nothing, and what the
    non-chief leaves in its directories shows what it writes."""
    with open(spec_path) as f:
        spec = json.load(f)
    out, task = spec["out"], _task()
    spec = {k: f"{v}-{task}" if k.endswith("_dir") else v for k, v in spec.items()}
    x, y = data()

    recorder, steps = LossRecorder(), StepLog()
    est = Estimator(mlp_fn, model_dir=spec["parity_dir"], params=PARAMS, config=config(steps_per_execution=8))
    est.fit(x, y, max_steps=spec["parity_steps"], batch_size=32, monitors=[recorder, steps])
    _write(out, "parity", {"losses": recorder.losses, "chunks": steps.chunks, "strategy": _strategy_name(est)})

    odd, steps = OddSteps(), StepLog()
    saver = CheckpointSaver(save_steps=5)
    # Maximising the loss: the first validation (step 3) is the best and early stopping ends the fit at 6.
    validation = ValidationMonitor(
        x[:64], y[:64], every_n_steps=3, early_stopping_rounds=3, early_stopping_metric_minimize=False, keep_best=True
    )
    export = ExportMonitor(every_n_steps=1000, export_dir=os.path.join(spec["monitors_dir"], "export"))  # at the end
    est = Estimator(mlp_fn, model_dir=spec["monitors_dir"], params=PARAMS, config=config(steps_per_execution=4))
    est.fit(x, y, max_steps=40, batch_size=32, monitors=[odd, saver, validation, export, steps])
    _write(
        out,
        "monitors",
        {
            "odd": odd.seen,
            "chunks": steps.chunks,
            "final_step": est._state.runtime.step,
            "early_stopped": validation.early_stopped,
            "saved": saver.saved,
        },
    )

    steps = StepLog()
    est = Estimator(mlp_fn, model_dir=spec["epochs_dir"], params=PARAMS, config=config(steps_per_execution=4))
    est.fit(x, y, epochs=2, batch_size=32, monitors=[steps])  # a finite input: 2 x 6 batches
    _write(out, "epochs", {"chunks": steps.chunks, "final_step": est._state.runtime.step})

    canned = DNNClassifier(hidden_units=[4], steps=12, batch_size=32, random_state=0, model_dir=spec["canned_dir"])
    canned.fit(x, y)
    _write(
        out,
        "canned",
        {
            "strategy": _strategy_name(canned.estimator_),
            "final_step": canned.estimator_._state.runtime.step,
            "tmpdir": os.environ.get("TMPDIR"),
            "tmpdir_left": sorted(os.listdir(os.environ["TMPDIR"])) if task else None,
        },
    )


def resumable_fit(spec_path: str) -> None:
    """`fit(max_steps=N)` with frequent checkpoints; worker 1 SIGKILLs itself mid-fit on the first attempt."""
    with open(spec_path) as f:
        spec = json.load(f)
    x, y = data()
    steps = StepLog()
    est = Estimator(
        mlp_fn,
        model_dir=spec["model_dir"],
        params=PARAMS,
        config=config(steps_per_execution=4, save_checkpoints_steps=4),
    )
    est.fit(
        x, y, max_steps=spec["max_steps"], batch_size=32, monitors=[steps, KillAt(spec["kill_at"], spec["kill_task"])]
    )
    _write(
        spec["out"], f"resume-{os.environ.get('SKFLOW_LAUNCH_ATTEMPT')}", {"start": steps.start, "chunks": steps.chunks}
    )
