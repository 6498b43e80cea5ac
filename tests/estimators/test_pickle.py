"""Pickled estimators carry no TensorFlow object: configuration, signatures and weights as plain data."""

from __future__ import annotations

import json
import pickle
import pickletools

import numpy as np
import pytest

from estimators import Estimator, RunConfig
from estimators.canned import DNNClassifier
from tests.helpers import mlp_fn


def _modules_referenced(payload: bytes) -> set[str]:
    """The modules a pickle imports from (its GLOBAL / STACK_GLOBAL opcodes)."""
    modules, strings = set(), []
    for op, arg, _ in pickletools.genops(payload):
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
            strings.append(arg)
        elif op.name == "STACK_GLOBAL":
            modules.add(strings[-2])
        elif op.name == "GLOBAL":
            modules.add(arg.split(" ")[0])
    return modules


def _assert_no_tensorflow(payload: bytes) -> None:
    tf_modules = sorted(m for m in _modules_referenced(payload) if m.split(".")[0] in ("tensorflow", "keras"))
    assert not tf_modules, f"the pickle references {tf_modules}"


def test_a_fitted_custom_estimator_pickles_without_tf_objects(model_dir, iris, monkeypatch):
    cluster = {"chief": ["host0:2222"], "worker": ["host1:2222"]}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "chief", "index": 0}}))
    config = RunConfig(tf_random_seed=0, log_step_count_steps=0)
    monkeypatch.delenv("TF_CONFIG")
    est = Estimator(mlp_fn, model_dir=model_dir, params={"n_classes": 3}, config=config).fit(*iris, steps=20)
    payload = pickle.dumps(est)
    _assert_no_tensorflow(payload)
    restored = pickle.loads(payload)
    assert restored.config.cluster_spec.as_dict() == cluster and restored.config.master == "grpc://host0:2222"
    np.testing.assert_allclose(restored.predict(iris[0])["prob"], est.predict(iris[0])["prob"], rtol=1e-6)
    with pytest.raises(ValueError, match="X has 3 features"):
        restored.predict(iris[0][:, :3])  # the signature came along


def test_a_fitted_canned_estimator_pickles_without_tf_objects(iris):
    model = DNNClassifier(hidden_units=(8,), epochs=2, random_state=0).fit(*iris)
    payload = pickle.dumps(model)
    _assert_no_tensorflow(payload)
    np.testing.assert_allclose(pickle.loads(payload).predict_proba(iris[0]), model.predict_proba(iris[0]), rtol=1e-6)
