"""Faults in a two-worker fit, injected for real: a worker SIGKILLed mid-fit, a worker that never starts."""

from __future__ import annotations

import io
import json
import os
import sys
import textwrap
import time

import pytest
import tensorflow as tf

from estimators.launcher import ClusterStartupError, launch_local_workers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = {"TF_CPP_MIN_LOG_LEVEL": "3"}


@pytest.mark.slow
def test_a_worker_killed_mid_fit_restarts_the_group_which_resumes_from_the_chiefs_checkpoint_to_exactly_max_steps(
    tmp_path,
):
    model_dir = tmp_path / "model"
    spec = {"out": str(tmp_path), "model_dir": str(model_dir), "max_steps": 40, "kill_at": 14, "kill_task": 1}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    stream = io.StringIO()
    result = launch_local_workers(
        "tests.estimators.multiworker_jobs:resumable_fit",
        workers=2,
        args=[str(tmp_path / "spec.json")],
        env=ENV,
        cwd=ROOT,
        max_restarts=1,
        startup_timeout=90,
        timeout=300,
        grace_period=1,
        stream=stream,
    )
    first, second = result.attempts
    assert result.restarts == 1
    assert first.returncodes["worker 1"] == -9 and "Worker 1 failed (killed by SIGKILL)" in first.failure
    assert "[launcher] Worker 1 failed (killed by SIGKILL)" in stream.getvalue()
    assert second.returncodes == {"worker 0": 0, "worker 1": 0}
    # Checkpoints every 4 steps; worker 1 died at the chunk ending at 16, before its save: the chief's last
    # checkpoint was step 12, where both workers of the second attempt began.
    for task in (0, 1):
        resumed = json.loads((tmp_path / f"resume-1-worker-{task}.json").read_text())
        assert resumed["start"] == 12 and resumed["chunks"] == [16, 20, 24, 28, 32, 36, 40]
    latest = tf.train.latest_checkpoint(str(model_dir))
    assert latest.endswith("model.ckpt-40")
    assert tf.train.load_checkpoint(latest).get_tensor("global_step/.ATTRIBUTES/VARIABLE_VALUE") == 40


_NEVER_STARTS = textwrap.dedent(
    """
    import json, os, sys, time
    task = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    open(os.path.join({out!r}, f"pid-{{task}}"), "w").write(str(os.getpid()))
    if task == 1:
        time.sleep(600)  # never reaches the cluster
    sys.path.insert(0, {root!r})
    import estimators
    estimators.cluster_strategy()  # blocks, ignoring SIGTERM, while worker 1 is missing
    """
)


@pytest.mark.slow
def test_a_worker_that_never_starts_ends_in_a_clear_error_within_the_watchdog_bound(tmp_path):
    script = tmp_path / "never.py"
    script.write_text(_NEVER_STARTS.format(out=str(tmp_path), root=ROOT))
    started = time.monotonic()
    with pytest.raises(ClusterStartupError, match=r"within startup_timeout=10 s: worker 1 never started") as info:
        launch_local_workers(
            [sys.executable, str(script)], workers=2, env=ENV, startup_timeout=10, stream=io.StringIO()
        )
    assert time.monotonic() - started < 10 + 20  # the bound, plus starting the processes and killing them
    assert info.value.missing == ["worker 1"] and info.value.waiting == ["worker 0"]
    for task in (0, 1):
        with pytest.raises(ProcessLookupError):
            os.kill(int((tmp_path / f"pid-{task}").read_text()), 0)  # both SIGKILLed, none left behind
