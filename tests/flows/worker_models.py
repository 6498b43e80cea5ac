"""Model functions for the multi-worker pipeline tests (`estimator.model_fn` of their configs)."""

from __future__ import annotations

import json
import os
import signal

import tensorflow as tf

from estimators import ModeKeys, get_global_step
from tests.helpers import mlp_fn

DIE_AT_STEP = 10


def dies_on_worker_1(features, targets, mode, params):
    """`mlp_fn`, except that worker 1 of a TF_CONFIG cluster SIGKILLs itself in the training step
    that starts at global step `DIE_AT_STEP` (the chief is then in its fit, its runs started)."""
    predictions, loss, train_op = mlp_fn(features, targets, mode, params)
    task = json.loads(os.environ.get("TF_CONFIG") or "{}").get("task", {})
    if mode == ModeKeys.TRAIN and task.get("index") == 1:

        def die_at(step):
            if int(step) >= DIE_AT_STEP:
                print(f"worker 1: SIGKILLing itself at step {int(step)}", flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
            return step

        with tf.control_dependencies([tf.py_function(die_at, [get_global_step()], tf.int64)]):
            loss = tf.identity(loss)
    return predictions, loss, train_op
