"""A real tracking server killed mid-fit: training does not wait, and every metric arrives, in order."""

from __future__ import annotations

import os
import threading
import time

import pytest
from mlflow import MlflowClient

from estimators import Estimator, RunConfig
from estimators.monitors import BaseMonitor
from flows.tracking import MlflowMonitor, read_run_record, sync_spool
from tests.helpers import mlp_fn

CONFIG = RunConfig(tf_random_seed=0, verbose=0, log_step_count_steps=0)


class Paced(BaseMonitor):
    """Sleeps `pause` s after every step (a slow model), records when each step ended, and runs
    `action(step)` at `at_step`."""

    def __init__(self, pause, at_step, action):
        super().__init__()
        self.pause, self.at_step, self.action = pause, at_step, action
        self.times: list[float] = []

    def step_end(self, step, outputs):
        self.times.append(time.monotonic())
        if step == self.at_step:
            self.action(step)
        time.sleep(self.pause)
        return False


def _est(model_dir):
    return Estimator(mlp_fn, model_dir=model_dir, config=CONFIG, params={"n_classes": 3})


@pytest.mark.slow
def test_a_server_killed_for_20_s_mid_fit_and_restarted_gets_every_metric_in_order(mlflow_server, model_dir, iris):
    outage: dict[str, float] = {}

    def kill_then_restart(step):
        mlflow_server.kill()
        outage["killed"] = time.monotonic()

        def restart():
            time.sleep(20)
            outage["restarting"] = time.monotonic()
            mlflow_server.start()
            outage["back"] = time.monotonic()

        outage["thread"] = threading.Thread(target=restart, daemon=True)
        outage["thread"].start()

    max_steps, every = 2500, 20
    paced = Paced(0.01, 100, kill_then_restart)
    monitor = MlflowMonitor(every_n_steps=every, interval_s=0.5, flush_timeout_s=120)
    started = time.monotonic()
    _est(model_dir).fit(*iris, max_steps=max_steps, monitors=[monitor, paced])
    ended = time.monotonic()
    outage["thread"].join(timeout=120)
    assert monitor.close(timeout=60) == 0

    run_id = monitor.run.run_id
    client = MlflowClient()
    history = client.get_metric_history(run_id, "loss")
    assert [m.step for m in history] == list(range(every, max_steps + 1, every))  # all there, once, in order
    assert [m.step for m in sorted(history, key=lambda m: m.timestamp)] == [m.step for m in history]
    assert client.get_run(run_id).info.status == "FINISHED"
    assert monitor.undelivered == 0 and not os.path.exists(os.path.join(model_dir, "mlflow_spool.jsonl"))
    gaps = [b - a for a, b in zip(paced.times, paced.times[1:])]
    training = paced.times[-1] - paced.times[0]
    print(
        f"\noutage: server down {outage['back'] - outage['killed']:.1f} s (restart took "
        f"{outage['back'] - outage['restarting']:.1f} s); fit {ended - started:.1f} s, of which training "
        f"{training:.1f} s ({max_steps} steps) and the end-of-fit flush {ended - paced.times[-1]:.1f} s; "
        f"longest step {max(gaps) * 1000:.0f} ms"
    )
    assert max(gaps) < 1.0, "a training step waited on the tracking server"
    if outage["back"] < paced.times[-1]:  # the server was back before training ended: nothing left to wait for
        assert ended - paced.times[-1] < 10


@pytest.mark.slow
def test_a_server_that_stays_away_leaves_a_spool_that_the_next_run_delivers(mlflow_server, model_dir, iris):
    monitor = MlflowMonitor(every_n_steps=10, interval_s=0.2, flush_timeout_s=2)
    killed = Paced(0.0, 50, lambda step: mlflow_server.kill())
    started = time.monotonic()
    _est(model_dir).fit(*iris, max_steps=200, monitors=[monitor, killed])
    assert time.monotonic() - started < 30  # the flush waited its 2 s, then spooled
    spool = os.path.join(model_dir, "mlflow_spool.jsonl")
    assert monitor.undelivered > 0 and os.path.exists(spool)

    mlflow_server.start()
    run_id = read_run_record(model_dir)["run_id"]
    client = MlflowClient()
    assert client.get_run(run_id).info.status == "RUNNING"  # its end could not reach the server
    again = MlflowMonitor(every_n_steps=10)
    _est(model_dir).fit(*iris, max_steps=300, monitors=[again])  # the next run
    assert again.close() == 0
    assert [m.step for m in client.get_metric_history(run_id, "loss")] == list(range(10, 301, 10))
    assert client.get_run(run_id).info.status == "FINISHED"
    assert not os.path.exists(spool)


@pytest.mark.slow
def test_sync_spool_delivers_a_spool_left_while_the_server_was_away(mlflow_server, model_dir, iris):
    monitor = MlflowMonitor(every_n_steps=10, interval_s=0.2, flush_timeout_s=1)
    _est(model_dir).fit(*iris, max_steps=60, monitors=[monitor, Paced(0.0, 20, lambda step: mlflow_server.kill())])
    assert monitor.undelivered > 0
    mlflow_server.start()
    result = sync_spool(model_dir)
    assert result.remaining == 0 and result.delivered >= monitor.undelivered
    client = MlflowClient()
    assert [m.step for m in client.get_metric_history(monitor.run.run_id, "loss")] == [10, 20, 30, 40, 50, 60]
    assert client.get_run(monitor.run.run_id).info.status == "FINISHED"
    assert client.list_artifacts(monitor.run.run_id, "checkpoints/latest")
