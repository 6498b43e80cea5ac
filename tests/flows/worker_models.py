"""Model functions for the multi-worker pipeline tests (`estimator.model_fn` of their configs)."""

from __future__ import annotations

import json
import os
import signal

from estimators import ModeKeys
from tests.helpers import mlp_fn


def dies_on_worker_1(features, targets, mode, params):
    """`mlp_fn`, except that worker 1 of a TF_CONFIG cluster SIGKILLs itself when its fit traces the model."""
    task = json.loads(os.environ.get("TF_CONFIG") or "{}").get("task", {})
    if mode == ModeKeys.TRAIN and task.get("index") == 1:
        print("worker 1: about to be SIGKILLed in its model_fn", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    return mlp_fn(features, targets, mode, params)
