"""Multi-worker training from TF_CONFIG: two real worker processes on 127.0.0.1, and the lockstep rules
checked in this process with a scripted peer.

The two-process tests share one launch (`two_workers`): four fits in one pair of processes (each TF
process costs seconds of imports), each worker with model_dirs of its own.
"""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from estimators import Estimator, cluster_strategy
from estimators import training as training_module
from estimators._runtime import Runtime
from estimators.distribute import spans_workers
from estimators.launcher import launch_local_workers
from estimators.lockstep import NEVER, PeerFailedError
from estimators.monitors import BaseMonitor
from tests.estimators.multiworker_jobs import PARAMS, LossRecorder, StepLog, config, data
from tests.helpers import mlp_fn

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PARITY_STEPS = 12


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    base = tmp_path_factory.mktemp("two_workers")
    spec = {
        "out": str(base),
        "parity_dir": str(base / "parity"),
        "parity_steps": PARITY_STEPS,
        "monitors_dir": str(base / "monitors"),
        "epochs_dir": str(base / "epochs"),
        "canned_dir": str(base / "canned"),
    }
    (base / "spec.json").write_text(json.dumps(spec))
    stream = io.StringIO()
    result = launch_local_workers(
        "tests.estimators.multiworker_jobs:lockstep_fits",
        workers=2,
        args=[str(base / "spec.json")],
        env={"TF_CPP_MIN_LOG_LEVEL": "3"},
        cwd=ROOT,
        startup_timeout=90,
        timeout=240,
        grace_period=1,
        stream=stream,
    )

    def read(job, task):
        return json.loads((base / f"{job}-worker-{task}.json").read_text())

    return base, result, read, stream.getvalue()


@pytest.mark.slow
def test_an_estimator_under_a_multi_worker_tf_config_trains_with_multiworker_mirrored_strategy(two_workers):
    _, result, read, log = two_workers
    assert result.attempts[0].returncodes == {"worker 0": 0, "worker 1": 0}
    for task in (0, 1):
        assert read("parity", task)["strategy"] == "CollectiveAllReduceStrategy"  # MultiWorkerMirroredStrategy
    assert "[worker 1] INFO skflow: Task worker 1: the cluster is up (2 replicas)." in log


@pytest.mark.slow
def test_two_workers_follow_the_loss_trajectory_of_one_worker_at_the_same_global_batch(two_workers, tmp_path):
    _, _, read, _ = two_workers
    x, y = data()
    recorder = LossRecorder()
    one = Estimator(mlp_fn, model_dir=str(tmp_path / "one"), params=PARAMS, config=config(steps_per_execution=8))
    one.fit(x, y, max_steps=PARITY_STEPS, batch_size=32, monitors=[recorder])
    two = {int(k): v for k, v in read("parity", 0)["losses"].items()}
    assert sorted(two) == list(range(1, PARITY_STEPS + 1))
    np.testing.assert_allclose([two[s] for s in sorted(two)], [recorder.losses[s] for s in sorted(two)], rtol=1e-5)
    assert two[PARITY_STEPS] < two[1]  # it learns


@pytest.mark.slow
def test_chief_only_monitors_cut_the_compiled_calls_of_every_worker_at_the_same_steps(two_workers):
    _, _, read, _ = two_workers
    chief, worker = read("monitors", 0), read("monitors", 1)
    assert chief["odd"] == [1, 3, 5] and worker["odd"] == []  # the OddSteps monitor runs on the chief only
    assert chief["chunks"] == worker["chunks"] == [1, 3, 5, 6]
    assert read("parity", 0)["chunks"] == read("parity", 1)["chunks"] == list(range(1, PARITY_STEPS + 1))


@pytest.mark.slow
def test_early_stopping_on_the_chief_ends_the_fit_on_both_workers_at_the_same_step(two_workers):
    _, _, read, _ = two_workers
    chief, worker = read("monitors", 0), read("monitors", 1)
    assert chief["early_stopped"] and not worker["early_stopped"]
    assert chief["final_step"] == worker["final_step"] == 6


@pytest.mark.slow
def test_checkpoints_and_exports_asked_for_by_chief_only_monitors_are_written_by_the_chief(two_workers):
    base, _, read, _ = two_workers
    chief_dir = base / "monitors-0"
    assert read("monitors", 0)["saved"] == [str(chief_dir / "model.ckpt-5")]  # CheckpointSaver(save_steps=5)
    assert tf.train.get_checkpoint_state(str(chief_dir)).all_model_checkpoint_paths[:] == [
        str(chief_dir / "model.ckpt-5"),
        str(chief_dir / "model.ckpt-6"),
    ]
    assert tf.train.latest_checkpoint(str(chief_dir / "best")).endswith("model.ckpt-3")  # keep_best, at step 3
    assert json.loads((chief_dir / "best" / "best.json").read_text())["step"] == 3
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(chief_dir))
    assert len(os.listdir(chief_dir / "export")) == 1  # ExportMonitor: the final weights, by the chief alone


@pytest.mark.slow
def test_the_non_chief_writes_nothing_into_its_model_dirs_and_removes_its_scratch(two_workers):
    base, _, read, _ = two_workers
    for job in ("parity", "monitors", "epochs", "canned"):
        directory = base / f"{job}-1"
        assert not directory.exists() or os.listdir(directory) == [], (job, os.listdir(directory))
        assert os.listdir(base / f"{job}-0")  # the chief's
    canned = read("canned", 1)
    # Scratch checkpoints are deleted after each save (TF's AutoGraph leaves its own files there)...
    assert [name for name in canned["tmpdir_left"] if name.startswith("skflow-worker-")] == []
    assert not os.path.exists(canned["tmpdir"])  # ...and the launcher removes the scratch TMPDIR


@pytest.mark.slow
def test_a_finite_input_ends_on_both_workers_at_the_same_step(two_workers):
    _, _, read, _ = two_workers
    for task in (0, 1):
        # Step 1: the chief's SummarySaver; then calls of 4, the last one finding the end after 3 steps.
        assert read("epochs", task) == {"chunks": [1, 5, 9, 12], "final_step": 12}


@pytest.mark.slow
def test_a_canned_estimator_fit_under_tf_config_trains_distributed(two_workers):
    _, _, read, _ = two_workers
    for task in (0, 1):
        assert read("canned", task) == {
            **read("canned", task),
            "strategy": "CollectiveAllReduceStrategy",
            "final_step": 12,
        }


# ---------------------------------------------------------------- the lockstep rules, with a scripted peer


class _ScriptedPeer:
    """Stands in for a second worker: answers each agreement with this worker's row and the next scripted
    row of the peer (cut, stop, save, best, failed); its start row carries step 0 and seed 99."""

    def __init__(self, rows):
        self.rows = list(rows)
        self.proposals = []

    def __call__(self, values):
        values = np.asarray(values)
        if len(values) == 3:  # start: step, seed, is_chief
            return np.stack([values, np.array([0, 99, 0])])
        self.proposals.append(values.tolist())
        peer = self.rows.pop(0) if self.rows else (NEVER, 0, 0, 0, 0)
        return np.stack([values, np.array([*peer, 0])])


@pytest.fixture
def scripted_peer(monkeypatch):
    def install(rows):
        peer = _ScriptedPeer(rows)
        monkeypatch.setattr(training_module, "spans_workers", lambda strategy: True)
        monkeypatch.setattr(Runtime, "gather_fn", lambda self: peer)
        return peer

    return install


def _est(model_dir):
    # No summaries: their monitor's wish for step 1 would be one more cut in these scripts.
    return Estimator(
        mlp_fn, model_dir=model_dir, params=PARAMS, config=config(steps_per_execution=8, save_summary_steps=0)
    )


def test_a_worker_runs_the_chunks_its_peers_monitors_ask_for_and_stops_with_them(scripted_peer, model_dir):
    peer = scripted_peer([(1, 0, 0, 0, 0), (3, 0, 0, 0, 0), (5, 0, 0, 0, 0), (7, 0, 0, 0, 0), (NEVER, 1, 0, 0, 0)])
    steps = StepLog()
    est = _est(model_dir).fit(*data(), max_steps=40, batch_size=32, monitors=[steps])
    assert steps.chunks == [1, 3, 5, 7]
    assert est.get_variable_value("global_step") == 7
    assert [p[0] for p in peer.proposals][:5] == [8, 9, 11, 13, 15]  # its own: steps_per_execution=8 ahead


def test_a_save_decided_on_another_worker_is_taken_here_at_the_same_step(scripted_peer, model_dir):
    scripted_peer([(3, 0, 0, 0, 0), (6, 0, 1, 0, 0)])
    est = _est(model_dir).fit(*data(), max_steps=6, batch_size=32)
    paths = tf.train.get_checkpoint_state(model_dir).all_model_checkpoint_paths
    assert [os.path.basename(p) for p in paths] == ["model.ckpt-3", "model.ckpt-6"]
    assert est.get_variable_value("global_step") == 6


def test_an_input_that_ends_is_settled_with_the_peers_before_the_fit_ends(scripted_peer, model_dir):
    peer = scripted_peer([])
    est = _est(model_dir).fit(*data(), epochs=1, batch_size=32)  # 192 rows: 6 steps, in a call of up to 8
    assert est.get_variable_value("global_step") == 6
    assert peer.proposals[1][:2] == [NEVER, 1]  # stop: the input ended


def test_a_time_based_save_due_on_this_workers_clock_is_proposed_to_the_others(scripted_peer, model_dir):
    peer = scripted_peer([])
    est = Estimator(
        mlp_fn,
        model_dir=model_dir,
        params=PARAMS,
        config=config(steps_per_execution=4, save_summary_steps=0, save_checkpoints_secs=1e-6),
    )
    est.fit(*data(), max_steps=8, batch_size=32)
    assert [p[2] for p in peer.proposals[1:3]] == [1, 1]  # after the chunks ending at 4 and 8
    paths = tf.train.get_checkpoint_state(model_dir).all_model_checkpoint_paths
    assert [os.path.basename(p) for p in paths] == ["model.ckpt-4", "model.ckpt-8"]


class _FailsAt(BaseMonitor):
    def __init__(self, step):
        super().__init__()
        self.step = step

    def next_step(self, step):
        return self.step if step < self.step else None

    def step_end(self, step, outputs):
        raise RuntimeError(f"monitor broke at {step}")


def test_a_hook_failing_here_is_agreed_on_before_it_is_raised(scripted_peer, model_dir):
    peer = scripted_peer([])
    with pytest.raises(RuntimeError, match="monitor broke at 4"):
        _est(model_dir).fit(*data(), max_steps=20, batch_size=32, monitors=[_FailsAt(4)])
    assert peer.proposals[-1][4] == 1  # the failure went into the agreement
    assert tf.train.latest_checkpoint(model_dir).endswith("model.ckpt-4")  # the emergency save, taken by all


def test_a_hook_failing_on_another_worker_stops_this_one_with_a_clear_error(scripted_peer, model_dir):
    scripted_peer([(2, 0, 0, 0, 0), (NEVER, 0, 0, 0, 1)])
    with pytest.raises(PeerFailedError, match="a monitor failed on another worker"):
        _est(model_dir).fit(*data(), max_steps=20, batch_size=32)
    assert tf.train.latest_checkpoint(model_dir).endswith("model.ckpt-2")


def test_a_save_asked_for_in_a_hook_waits_for_the_agreement(scripted_peer, model_dir):
    class SaveAt3(BaseMonitor):
        def next_step(self, step):
            return 3 if step < 3 else None

        def step_end(self, step, outputs):
            self.path = self.context.save_checkpoint()
            self.saved_then = tf.train.latest_checkpoint(model_dir)
            return False

    peer = scripted_peer([])
    monitor = SaveAt3()
    _est(model_dir).fit(*data(), max_steps=5, batch_size=32, monitors=[monitor])
    assert monitor.path == os.path.join(model_dir, "model.ckpt-3") and monitor.saved_then is None
    assert peer.proposals[1][2] == 1  # proposed at step 3, then saved by every worker
    paths = tf.train.get_checkpoint_state(model_dir).all_model_checkpoint_paths
    assert [os.path.basename(p) for p in paths] == ["model.ckpt-3", "model.ckpt-5"]


def test_workers_that_restored_different_steps_refuse_to_train(scripted_peer, model_dir):
    _est(model_dir).fit(*data(), max_steps=4, batch_size=32)  # before the peer: this worker restores step 4
    scripted_peer([])
    with pytest.raises(ValueError, match=r"restored different global steps \[0, 4\].*shared filesystem"):
        _est(model_dir).fit(*data(), max_steps=8, batch_size=32)


# ---------------------------------------------------------------- the cluster strategy, without a cluster


@pytest.mark.parametrize(
    "tf_config, message",
    [
        (
            {"cluster": {"worker": ["a:1", "b:2"], "ps": ["c:3"]}, "task": {"type": "worker", "index": 0}},
            "parameter servers",
        ),
        ({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "evaluator", "index": 0}}, "does not train"),
    ],
)
def test_clusters_skflow_cannot_train_are_refused_before_joining(monkeypatch, tf_config, message):
    monkeypatch.setenv("TF_CONFIG", json.dumps(tf_config))
    with pytest.raises(ValueError, match=message):
        cluster_strategy()


def test_a_fit_that_joins_a_cluster_after_tensorflow_ran_says_how_to_start_the_program(monkeypatch, model_dir):
    cluster = {"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", "index": 0}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(cluster))
    est = _est(model_dir)  # this process ran TensorFlow long ago: it can no longer join a cluster
    with pytest.raises(
        RuntimeError, match=r"cannot join its TF_CONFIG cluster.*Call estimators.cluster_strategy\(\) first"
    ):
        est.fit(*data(), max_steps=2, batch_size=32)


def test_a_single_worker_cluster_needs_no_strategy(monkeypatch):
    monkeypatch.setenv(
        "TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 0}})
    )
    assert cluster_strategy() is None


def test_strategies_of_one_process_do_not_span_workers():
    devices = [d.name for d in tf.config.list_logical_devices("CPU")][:2]
    assert not spans_workers(tf.distribute.get_strategy())
    assert not spans_workers(tf.distribute.MirroredStrategy(devices))
    assert not spans_workers(None)
