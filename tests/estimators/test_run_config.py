"""RunConfig defaults, validation, replace(), and TF_CONFIG parsing."""

from __future__ import annotations

import json

import pytest
import tensorflow as tf

from estimators import RunConfig


def test_defaults_are_those_of_the_original():
    c = RunConfig()
    assert (c.save_checkpoints_secs, c.save_checkpoints_steps, c.keep_checkpoint_max) == (600, None, 5)
    assert (c.save_summary_steps, c.log_step_count_steps, c.tf_random_seed) == (100, 100, None)
    assert c.is_chief and c.task_type == "chief" and c.num_worker_replicas == 1 and c.master == ""


def test_save_checkpoints_steps_turns_off_the_seconds_default():
    c = RunConfig(save_checkpoints_steps=50)
    assert (c.save_checkpoints_steps, c.save_checkpoints_secs) == (50, None)
    with pytest.raises(ValueError, match="at most one of save_checkpoints_steps and save_checkpoints_secs"):
        RunConfig(save_checkpoints_steps=50, save_checkpoints_secs=10)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"keep_checkpoint_max": -1}, "keep_checkpoint_max=-1"),
        ({"steps_per_execution": 0}, "steps_per_execution=0. Expected a positive integer"),
        ({"train_distribute": "mirrored"}, "must be a tf.distribute.Strategy"),
        ({"tf_random_seed": 1.5}, "tf_random_seed=1.5"),
    ],
)
def test_invalid_values_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RunConfig(**kwargs)


def test_replace_changes_only_what_is_asked():
    c = RunConfig(tf_random_seed=3).replace(keep_checkpoint_max=2)
    assert (c.tf_random_seed, c.keep_checkpoint_max) == (3, 2)
    with pytest.raises(ValueError, match="cannot change"):
        c.replace(task_type="ps")


CLUSTER = {"chief": ["host0:2222"], "worker": ["host1:2222", "host2:2222"], "ps": ["host3:2222"]}


@pytest.mark.parametrize(
    ("cluster", "task", "is_chief", "master"),
    [
        (CLUSTER, {"type": "chief", "index": 0}, True, "grpc://host0:2222"),
        (CLUSTER, {"type": "worker", "index": 0}, False, "grpc://host1:2222"),
        ({"worker": ["a:1", "b:1"]}, {"type": "worker", "index": 0}, True, "grpc://a:1"),
        ({"worker": ["a:1", "b:1"]}, {"type": "worker", "index": 1}, False, "grpc://b:1"),
        (CLUSTER, {"type": "evaluator", "index": 0}, False, ""),
    ],
)
def test_tf_config_is_parsed_into_cluster_information(monkeypatch, cluster, task, is_chief, master):
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": task, "environment": "cloud"}))
    c = RunConfig()
    assert (c.is_chief, c.master, c.task_type, c.task_id, c.environment) == (
        is_chief,
        master,
        task["type"],
        task["index"],
        "cloud",
    )
    assert isinstance(c.cluster_spec, tf.train.ClusterSpec)
    if cluster is CLUSTER:
        assert (c.num_ps_replicas, c.num_worker_replicas) == (1, 3)


@pytest.mark.parametrize(
    ("tf_config", "message"),
    [
        ("{not json", "TF_CONFIG is not valid JSON"),
        (json.dumps({"cluster": CLUSTER, "task": {"type": "worker", "index": 5}}), "index 5 is out of range"),
        (json.dumps({"cluster": CLUSTER, "task": {"type": "gpu", "index": 0}}), "'gpu' is not a job"),
    ],
)
def test_broken_tf_config_is_a_clear_error(monkeypatch, tf_config, message):
    monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(ValueError, match=message):
        RunConfig()


def test_replace_keeps_address_overrides():
    c = RunConfig(master="grpc://m:1", evaluation_master="grpc://e:1").replace(keep_checkpoint_max=2)
    assert (c.master, c.evaluation_master, c.keep_checkpoint_max) == ("grpc://m:1", "grpc://e:1", 2)


def test_a_different_eval_distribute_is_ignored_with_a_warning():
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with pytest.warns(UserWarning, match="eval_distribute=...\\) is ignored"):
        RunConfig(eval_distribute=strategy)


def test_master_task_and_a_tf_config_without_task(monkeypatch):
    cluster = {"master": ["m:1"], "worker": ["w:1"]}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "master", "index": 0}}))
    c = RunConfig()
    assert (c.task_type, c.is_chief, c.master, c.num_worker_replicas) == ("master", True, "grpc://m:1", 2)
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["w:1"]}}))
    c = RunConfig()
    assert (c.task_type, c.task_id, c.is_chief) == ("worker", 0, True)
