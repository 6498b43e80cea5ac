"""Where runs go, what `import flows` costs, the params scheme, and the final evaluation helper."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient

from estimators import Estimator, RunConfig
from flows.tracking import create_run, flatten_params, log_evaluation, resolve_store
from flows.tracking.params import check_unchanged
from tests.helpers import mlp_fn

ROOT = Path(__file__).resolve().parents[2]


def test_the_embedded_default_is_a_sqlite_file_in_the_project_with_artifacts_beside_it(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    store = resolve_store()
    assert store.tracking_uri == f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    assert store.artifact_root == (tmp_path / "mlruns" / "artifacts").as_uri()


def test_mlflow_tracking_uri_is_read_when_a_run_starts(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/elsewhere/x.db")
    assert resolve_store().artifact_root == (tmp_path / "elsewhere" / "artifacts").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert resolve_store().artifact_root is None  # the server places artifacts


def test_experiments_are_created_with_an_explicit_artifact_location(tracking_uri):
    run = create_run("my experiment")
    location = MlflowClient().get_experiment(run.experiment_id).artifact_location
    assert location == resolve_store().experiment_artifact_location("my experiment")
    assert location.startswith(Path(tracking_uri[len("sqlite:///") :]).parent.as_uri())


def test_importing_flows_and_flows_tracking_loads_neither_tensorflow_nor_mlflow_nor_prefect():
    code = (
        "import sys, flows, flows.tracking\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'mlflow', 'prefect', 'keras'})\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_params_flatten_to_dotted_keys_and_long_values_are_truncated_naming_the_key(caplog):
    params = flatten_params({"estimator.params": {"hidden": (64, 64), "opt": {"lr": 0.1}}, "note": "x" * 7000})
    assert params["estimator.params.hidden"] == "(64, 64)"
    assert params["estimator.params.opt.lr"] == "0.1"
    assert len(params["note"]) == 6000
    assert "'note' is 7000 characters long" in caplog.text


def test_a_changed_param_is_an_error_naming_it_and_both_values():
    check_unchanged({"a": "1", "b": "2"}, {"a": "1", "c": "3"}, "run1")  # same value, new key: fine
    with pytest.raises(ValueError, match=r"run run1.*'b' was '2', this fit has '5'"):
        check_unchanged({"a": "1", "b": "2"}, {"a": "1", "b": "5"}, "run1")


def _canned_and_custom_runs(tmp_path, iris):
    from estimators.canned import DNNClassifier
    from flows.tracking import MlflowMonitor

    x, y = iris
    custom, canned = MlflowMonitor(), MlflowMonitor()
    config = RunConfig(tf_random_seed=0, verbose=0, log_step_count_steps=0)
    Estimator(mlp_fn, model_dir=str(tmp_path / "a"), config=config, params={"n_classes": 3}).fit(
        x, y, max_steps=10, monitors=[custom]
    )
    DNNClassifier(hidden_units=(8,), epochs=1, random_state=0, model_dir=str(tmp_path / "b")).fit(
        x, y, monitors=[canned]
    )
    client = MlflowClient()
    return [client.get_run(m.run.run_id).data for m in (custom, canned)]


def test_canned_and_custom_estimators_share_the_params_scheme(tracking_uri, tmp_path, iris):
    custom, canned = _canned_and_custom_runs(tmp_path, iris)
    shared = {"estimator.class", "batch_size", "max_steps", "opt_name", "opt_learning_rate", "feeder.feeder"}
    assert shared | {"data.fingerprint"} <= custom.params.keys() and shared <= canned.params.keys()
    assert {k for k in custom.params if k.startswith("config.")} == {
        k for k in canned.params if k.startswith("config.")
    }
    assert canned.tags["skflow.model_fn"].startswith("estimators.")


def test_a_canned_fit_records_the_canned_estimator_and_its_own_params(tracking_uri, tmp_path, iris):
    _, canned = _canned_and_custom_runs(tmp_path, iris)
    assert canned.params["estimator.class"] == "DNNClassifier"
    assert canned.params["estimator.hidden_units"] == "(8,)"


def test_log_evaluation_logs_eval_metrics_at_the_global_step_and_a_confusion_matrix(tracking_uri, model_dir, iris):
    x, y = iris
    est = Estimator(mlp_fn, model_dir=model_dir, config=RunConfig(tf_random_seed=0, verbose=0), params={"n_classes": 3})
    est.fit(x, y, max_steps=50, batch_size=30)
    run = create_run("eval")
    values = log_evaluation(run, est, x, y, metrics=["accuracy"])
    client = MlflowClient()
    assert set(values) == {"eval_loss", "eval_accuracy"}
    assert [(m.step, m.value) for m in client.get_metric_history(run.run_id, "eval_accuracy")] == [
        (50, pytest.approx(values["eval_accuracy"]))
    ]
    assert [a.path for a in client.list_artifacts(run.run_id, "plots")] == ["plots/confusion_matrix.png"]
    assert np.isfinite(values["eval_loss"])
