"""The local launcher, with plain Python workers (no TensorFlow): TF_CONFIG, prefixed logs, failures, restarts."""

from __future__ import annotations

import io
import json
import os
import sys
import textwrap
import time

import pytest

from estimators.launcher import ClusterStartupError, WorkerFailedError, launch_local_workers, local_tf_config


def _script(tmp_path, body: str) -> list[str]:
    path = tmp_path / "worker.py"
    path.write_text(
        "import json, os, sys, time\n"
        "task = json.loads(os.environ['TF_CONFIG'])['task']['index']\n"
        "attempt = int(os.environ['SKFLOW_LAUNCH_ATTEMPT'])\n" + textwrap.dedent(body)
    )
    return [sys.executable, str(path)]


def test_each_worker_gets_its_tf_config_on_loopback_ports_and_its_output_is_prefixed(tmp_path):
    command = _script(tmp_path, "print('cluster', os.environ['TF_CONFIG'])\nprint('bye from', task)\n")
    stream = io.StringIO()
    result = launch_local_workers(command, workers=2, stream=stream, log_dir=tmp_path / "logs")
    lines = stream.getvalue().splitlines()
    assert "[worker 0] bye from 0" in lines and "[worker 1] bye from 1" in lines
    configs = [json.loads(line.split("cluster ", 1)[1]) for line in lines if " cluster " in line]
    assert sorted(c["task"]["index"] for c in configs) == [0, 1]
    hosts = configs[0]["cluster"]["worker"]
    assert all(c["cluster"] == {"worker": hosts} for c in configs)
    assert [h.split(":")[0] for h in hosts] == ["127.0.0.1"] * 2 and hosts == [
        f"127.0.0.1:{p}" for p in result.attempts[0].ports
    ]
    assert result.restarts == 0 and result.attempts[0].returncodes == {"worker 0": 0, "worker 1": 0}
    assert "bye from 1" in (tmp_path / "logs" / "worker-1.log").read_text()


def test_a_dead_worker_is_named_with_its_exit_code_and_the_tail_of_its_log_and_the_others_are_stopped(tmp_path):
    command = _script(
        tmp_path,
        f"""
        if task == 1:
            print('loading the data'); print('something broke', flush=True); sys.exit(3)
        open({str(tmp_path / "pid")!r}, 'w').write(str(os.getpid()))
        time.sleep(120)
        """,
    )
    started = time.monotonic()
    with pytest.raises(WorkerFailedError, match=r"Worker 1 failed \(exit code 3\)") as info:
        launch_local_workers(command, workers=2, stream=io.StringIO(), grace_period=1)
    assert time.monotonic() - started < 30
    assert info.value.task == "worker 1" and info.value.returncode == 3 and info.value.attempt == 0
    assert "something broke" in info.value.log_tail and "something broke" in str(info.value)
    with pytest.raises(ProcessLookupError):
        os.kill(int((tmp_path / "pid").read_text()), 0)  # worker 0 was stopped with the group


def test_a_worker_killed_by_a_signal_is_reported_by_the_signal_name(tmp_path):
    command = _script(tmp_path, "import signal\nif task == 0: os.kill(os.getpid(), signal.SIGKILL)\ntime.sleep(120)\n")
    with pytest.raises(WorkerFailedError, match="Worker 0 failed \\(killed by SIGKILL\\)") as info:
        launch_local_workers(command, workers=2, stream=io.StringIO(), grace_period=1)
    assert info.value.returncode == -9


def test_the_whole_group_restarts_after_a_failure_up_to_max_restarts(tmp_path):
    command = _script(tmp_path, "if task == 1 and attempt == 0: sys.exit(5)\nprint('attempt', attempt)\n")
    stream = io.StringIO()
    result = launch_local_workers(command, workers=2, max_restarts=2, stream=stream, grace_period=1)
    assert result.restarts == 1
    assert result.attempts[0].returncodes["worker 1"] == 5 and "Worker 1 failed" in result.attempts[0].failure
    assert result.attempts[1].returncodes == {"worker 0": 0, "worker 1": 0}
    assert "[launcher] Worker 1 failed (exit code 5)" in stream.getvalue()
    assert "Restarting the group (restart 1 of 2)" in stream.getvalue()


def test_past_max_restarts_the_last_failure_is_raised(tmp_path):
    command = _script(tmp_path, "sys.exit(7 if task == 0 else 0)\n")
    with pytest.raises(WorkerFailedError, match="Worker 0 failed \\(exit code 7\\).*attempt 1") as info:
        launch_local_workers(command, workers=2, max_restarts=1, stream=io.StringIO(), grace_period=1)
    assert info.value.attempt == 1


def test_the_startup_watchdog_names_the_task_that_never_joined(tmp_path):
    signals = "open(os.path.join(os.environ['SKFLOW_LAUNCH_DIR'], os.environ['SKFLOW_LAUNCH_TASK'] + '.starting'), 'w')"
    command = _script(
        tmp_path, f"if task == 0: {signals}; print('waiting for my peers', flush=True)\ntime.sleep(120)\n"
    )
    started = time.monotonic()
    with pytest.raises(ClusterStartupError, match="worker 1 never started joining it.*worker 0 waited") as info:
        launch_local_workers(command, workers=2, startup_timeout=1, stream=io.StringIO(), grace_period=1)
    assert time.monotonic() - started < 20
    assert info.value.missing == ["worker 1"] and info.value.waiting == ["worker 0"]


def test_non_chief_workers_get_a_private_tmpdir_that_is_removed_afterwards(tmp_path):
    command = _script(tmp_path, "print('tmp', os.environ.get('TMPDIR', ''), flush=True)\n")
    stream = io.StringIO()
    launch_local_workers(command, workers=2, stream=stream)
    tmpdirs = dict(line.split(" tmp ") for line in stream.getvalue().splitlines() if " tmp " in line)
    assert tmpdirs["[worker 0]"] == os.environ.get("TMPDIR", "")
    assert "skflow-launch-" in tmpdirs["[worker 1]"] and not os.path.exists(tmpdirs["[worker 1]"])


@pytest.mark.parametrize(
    "target, message",
    [("train.py", "Expected 'module:function'"), ("my module:main", "Expected 'module:function'"), ([], "non-empty")],
)
def test_a_target_that_is_neither_a_command_nor_module_function_is_refused(target, message):
    with pytest.raises(ValueError, match=message):
        launch_local_workers(target)


def test_workers_must_be_a_positive_integer():
    with pytest.raises(ValueError, match="Received: workers=0"):
        launch_local_workers(["true"], workers=0)


def test_local_tf_config_makes_worker_0_the_chief():
    config = json.loads(local_tf_config([1234, 5678], 1))
    assert config == {
        "cluster": {"worker": ["127.0.0.1:1234", "127.0.0.1:5678"]},
        "task": {"type": "worker", "index": 1},
    }
