"""Runs killed for real: SIGTERM ends the run KILLED; a run a SIGKILL left RUNNING is continued by the resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from estimators import Estimator, RunConfig
from flows.tracking import MlflowMonitor, read_run_record
from tests.helpers import mlp_fn

ROOT = Path(__file__).resolve().parents[2]
MAX_STEPS = 300
CHILD = textwrap.dedent(
    """
    import sys, time
    from sklearn.datasets import load_iris
    from estimators import Estimator, RunConfig
    from estimators.monitors import BaseMonitor
    from flows.tracking import MlflowMonitor
    from tests.helpers import mlp_fn

    model_dir, flag, max_steps, interval = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])

    class Pace(BaseMonitor):  # 20 ms a step, and a flag file once step 30 is done
        def step_end(self, step, outputs):
            if step == 30:
                open(flag, "w").close()
            time.sleep(0.02)

    x, y = load_iris(return_X_y=True)
    config = RunConfig(tf_random_seed=0, verbose=0, log_step_count_steps=0, save_checkpoints_steps=10)
    est = Estimator(mlp_fn, model_dir=model_dir, config=config, params={"n_classes": 3})
    est.fit(x.astype("float32"), y.astype("int32"), max_steps=max_steps, monitors=[MlflowMonitor(every_n_steps=10, interval_s=interval), Pace()])
    """
)


def _start_child(tmp_path, model_dir, interval_s):
    script, flag = tmp_path / "child.py", tmp_path / "flag"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    child = subprocess.Popen(
        [sys.executable, str(script), model_dir, str(flag), str(MAX_STEPS), str(interval_s)],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while not flag.exists():
        if child.poll() is not None:
            pytest.fail(f"the child exited early ({child.returncode}): {child.stderr.read().decode()[-3000:]}")
        if time.monotonic() > deadline:
            child.kill()
            pytest.fail("the child did not reach step 30 in 120 s")
        time.sleep(0.05)
    time.sleep(0.5)  # let the logger deliver a few metrics
    return child


@pytest.mark.slow
def test_sigterm_during_a_fit_saves_a_checkpoint_ends_the_run_killed_and_exits_143(tracking_uri, model_dir, tmp_path):
    child = _start_child(tmp_path, model_dir, interval_s=0.2)
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=60) == 128 + signal.SIGTERM
    run = MlflowClient().get_run(read_run_record(model_dir)["run_id"])
    assert run.info.status == "KILLED"
    step = int(Estimator(mlp_fn, model_dir=model_dir, params={"n_classes": 3}).latest_checkpoint().rsplit("-", 1)[1])
    assert 30 <= step < MAX_STEPS


@pytest.mark.slow
def test_a_run_left_running_by_sigkill_is_continued_by_the_resume_which_delivers_what_was_lost(
    tracking_uri, model_dir, tmp_path, iris
):
    child = _start_child(tmp_path, model_dir, interval_s=600)  # nothing is sent before the kill
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    client, run_id = MlflowClient(), read_run_record(model_dir)["run_id"]
    assert client.get_run(run_id).info.status == "RUNNING"
    assert client.get_metric_history(run_id, "loss") == []
    killed_at = int(
        Estimator(mlp_fn, model_dir=model_dir, params={"n_classes": 3}).latest_checkpoint().rsplit("-", 1)[1]
    )

    config = RunConfig(tf_random_seed=0, verbose=0, log_step_count_steps=0, save_checkpoints_steps=10)
    est = Estimator(mlp_fn, model_dir=model_dir, config=config, params={"n_classes": 3})
    resumed = MlflowMonitor(every_n_steps=10)
    est.fit(*iris, max_steps=MAX_STEPS, monitors=[resumed])
    assert resumed.close() == 0
    assert read_run_record(model_dir)["run_id"] == run_id
    steps = [m.step for m in client.get_metric_history(run_id, "loss")]
    assert set(steps) == set(range(10, MAX_STEPS + 1, 10)), f"killed at step {killed_at}"
    assert client.get_run(run_id).data.params["max_steps"] == str(MAX_STEPS)  # the child's params, from its spool
    assert client.get_run(run_id).info.status == "FINISHED"
    assert not os.path.exists(os.path.join(model_dir, "mlflow_spool.jsonl"))
