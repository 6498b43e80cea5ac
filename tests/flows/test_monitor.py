"""MlflowMonitor on a real SQLite store: what one fit records, and how runs survive resumes and failures."""

from __future__ import annotations

import json
import logging
import os

import numpy as np
import pytest
from mlflow import MlflowClient

from estimators import Estimator, RunConfig
from estimators.monitors import BaseMonitor, ValidationMonitor
from flows.tracking import MlflowMonitor, read_run_record
from tests.helpers import mlp_fn

PARAMS = {"n_classes": 3, "hidden": 8, "learning_rate": 0.1}


def _est(model_dir, **params):
    config = RunConfig(tf_random_seed=0, verbose=0, log_step_count_steps=0)
    return Estimator(mlp_fn, model_dir=model_dir, config=config, params={**PARAMS, **params})


def _history(client, run_id, key):
    return [(m.step, m.value) for m in client.get_metric_history(run_id, key)]


class FailAt(BaseMonitor):
    """Raises `exc` at step k (Keras' interrupt-and-resume pattern)."""

    def __init__(self, at_step, exc=RuntimeError):
        super().__init__()
        self.at_step, self.exc = at_step, exc

    def next_step(self, step):
        return self.at_step if step < self.at_step else None

    def step_end(self, step, outputs):
        raise self.exc(f"stopped at step {step}")


@pytest.fixture
def fitted(tracking_uri, model_dir, iris):
    """One fit of 200 steps with validation every 100: the run it recorded."""
    x, y = iris
    monitor = MlflowMonitor(experiment_name="iris", every_n_steps=50, tags={"team": "ml"})
    validation = ValidationMonitor(x, y, every_n_steps=100, metrics=["accuracy"], keep_best=True)
    _est(model_dir).fit(x, y, max_steps=200, batch_size=30, monitors=[monitor, validation])
    assert monitor.close() == 0  # the loss curve follows the status in the background
    return MlflowClient(), monitor.run


def test_a_fit_records_params_with_stable_dotted_keys_and_autolog_names(fitted):
    client, run = fitted
    params = client.get_run(run.run_id).data.params
    assert params["estimator.class"] == "Estimator"
    assert params["estimator.model_fn"] == "tests.helpers.mlp_fn"
    assert params["estimator.params.hidden"] == "8" and params["estimator.params.learning_rate"] == "0.1"
    assert params["config.tf_random_seed"] == "0" and params["config.steps_per_execution"] == "32"
    assert (params["batch_size"], params["max_steps"]) == ("30", "200")
    assert (params["opt_name"], params["opt_learning_rate"]) == ("Adagrad", "0.1")
    assert (params["feeder.feeder"], params["feeder.n_samples"]) == ("DataFeeder", "150")
    assert len(params["data.fingerprint"]) == 64


def test_a_fit_records_tags_and_the_dataset_input_whose_digest_is_the_fingerprint(fitted):
    client, run = fitted
    data = client.get_run(run.run_id)
    assert data.data.tags["skflow.model_fn"] == "tests.helpers.mlp_fn"
    assert data.data.tags["skflow.version"] and data.data.tags["team"] == "ml"
    (dataset_input,) = data.inputs.dataset_inputs
    assert dataset_input.dataset.digest == data.data.params["data.fingerprint"][:36]
    assert json.loads(dataset_input.dataset.profile) == {"num_rows": 150}


def test_a_fit_logs_loss_and_speed_every_n_steps_and_validation_at_its_steps(fitted):
    client, run = fitted
    assert [s for s, _ in _history(client, run.run_id, "loss")] == [50, 100, 150, 200]
    assert [s for s, _ in _history(client, run.run_id, "examples_per_sec")] == [50, 100, 150, 200]
    assert all(v > 0 for _, v in _history(client, run.run_id, "steps_per_sec"))
    assert [s for s, _ in _history(client, run.run_id, "val_loss")] == [100, 200]
    assert [s for s, _ in _history(client, run.run_id, "val_accuracy")] == [100, 200]


def test_a_fit_uploads_checkpoints_event_files_and_the_loss_curve_and_ends_finished(fitted, tmp_path):
    client, run = fitted
    assert client.get_run(run.run_id).info.status == "FINISHED"
    names = {
        a.path
        for folder in ("checkpoints/latest", "checkpoints/best", "plots")
        for a in client.list_artifacts(run.run_id, folder)
    }
    assert {"checkpoints/latest/model.ckpt.index", "checkpoints/latest/skflow.json", "plots/loss_curve.png"} <= names
    assert "checkpoints/best/model.ckpt.index" in names
    assert client.list_artifacts(run.run_id, "tensorboard_logs")
    # the uploaded checkpoint is a model directory an Estimator restores from
    local = client.download_artifacts(run.run_id, "checkpoints/latest", str(tmp_path))
    assert _est(local).evaluate(*_iris())["global_step"] == 200


def _iris():
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    return x.astype(np.float32), y.astype(np.int32)


def test_the_run_id_is_kept_in_model_dir_and_the_outbox_is_emptied(fitted, model_dir):
    _, run = fitted
    record = read_run_record(model_dir)
    assert (record["run_id"], record["global_step"]) == (run.run_id, 200)
    assert not os.path.exists(os.path.join(model_dir, "mlflow_spool.jsonl"))
    assert os.listdir(os.path.join(model_dir, "mlflow_outbox")) == []


def test_a_resumed_fit_continues_the_run_and_its_metric_history(tracking_uri, model_dir, iris):
    x, y = iris
    monitor = MlflowMonitor(every_n_steps=20)
    with pytest.raises(RuntimeError, match="stopped at step 50"):
        _est(model_dir).fit(x, y, max_steps=100, monitors=[monitor, FailAt(50)])
    client, first = MlflowClient(), monitor.run
    assert client.get_run(first.run_id).info.status == "FAILED"
    assert "stopped at step 50" in client.get_run(first.run_id).data.tags["skflow.error"]
    _est(model_dir).fit(x, y, max_steps=100, monitors=[MlflowMonitor(every_n_steps=20)])
    assert read_run_record(model_dir)["run_id"] == first.run_id
    assert [s for s, _ in _history(client, first.run_id, "loss")] == [20, 40, 60, 80, 100]
    assert client.get_run(first.run_id).info.status == "FINISHED"
    assert len(client.search_runs([first.experiment_id])) == 1


def test_a_resumed_fit_with_a_changed_param_fails_before_any_step(tracking_uri, model_dir, iris):
    x, y = iris
    _est(model_dir).fit(x, y, max_steps=40, monitors=[MlflowMonitor()])
    run_id = read_run_record(model_dir)["run_id"]
    with pytest.raises(ValueError, match=r"'estimator.params.learning_rate' was '0.1', this fit has '0.05'") as error:
        _est(model_dir, learning_rate=0.05).fit(x, y, max_steps=80, monitors=[MlflowMonitor()])
    assert run_id in str(error.value) and "max_steps" not in str(error.value)
    assert _est(model_dir).latest_checkpoint().endswith("model.ckpt-40")


def test_a_continuation_may_train_further_and_keeps_the_first_max_steps_param(tracking_uri, model_dir, iris):
    x, y = iris
    for _ in range(2):  # fit(steps=30) twice, as a rerun of the same script after a crash would
        _est(model_dir).fit(x, y, steps=30, monitors=[MlflowMonitor(every_n_steps=10)])
    run = MlflowClient().get_run(read_run_record(model_dir)["run_id"])
    assert (run.data.params["max_steps"], run.data.tags["skflow.max_steps"]) == ("30", "60")
    assert [m.step for m in MlflowClient().get_metric_history(run.info.run_id, "loss")] == [10, 20, 30, 40, 50, 60]


def test_keyboard_interrupt_ends_the_run_killed(tracking_uri, model_dir, iris):
    monitor = MlflowMonitor()
    with pytest.raises(KeyboardInterrupt):
        _est(model_dir).fit(*iris, max_steps=100, monitors=[monitor, FailAt(30, KeyboardInterrupt)])
    assert MlflowClient().get_run(monitor.run.run_id).info.status == "KILLED"


def test_another_tracking_uri_starts_a_new_run_and_says_so(
    tracking_uri, model_dir, iris, tmp_path, caplog, mlflow_template_db
):
    import shutil

    _est(model_dir).fit(*iris, max_steps=20, monitors=[MlflowMonitor()])
    first = read_run_record(model_dir)["run_id"]
    other = tmp_path / "other.db"
    shutil.copy(mlflow_template_db, other)
    with caplog.at_level(logging.INFO, logger="skflow"):
        _est(model_dir).fit(*iris, max_steps=40, monitors=[MlflowMonitor(tracking_uri=f"sqlite:///{other}")])
    second = read_run_record(model_dir)
    assert second["run_id"] != first and second["tracking_uri"] == f"sqlite:///{other}"
    assert "starting a new run" in caplog.text


def test_a_run_passed_by_the_caller_is_recorded_into_and_left_running(tracking_uri, model_dir, iris):
    from flows.tracking import create_run, end_run

    run = create_run("flows", tags={"prefect.flow_run_id": "abc"}, model_dir=model_dir)
    _est(model_dir).fit(*iris, max_steps=20, monitors=[MlflowMonitor(run=run)])
    client = MlflowClient()
    assert client.get_run(run.run_id).info.status == "RUNNING"
    assert client.get_run(run.run_id).data.tags["prefect.flow_run_id"] == "abc"
    end_run(run)
    assert client.get_run(run.run_id).info.status == "FINISHED"


def test_a_store_unreachable_when_a_new_run_starts_fails_the_fit_before_any_step(model_dir, iris, monkeypatch):
    import socket

    from flows.tracking import TrackingUnavailableError

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        uri = f"http://127.0.0.1:{s.getsockname()[1]}"  # nothing listens there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    with pytest.raises(TrackingUnavailableError, match="did not answer for 1 s"):
        _est(model_dir).fit(*iris, max_steps=20, monitors=[MlflowMonitor(flush_timeout_s=1)])
    assert read_run_record(model_dir) is None


def test_a_fit_that_does_not_wait_for_mlflow_is_delivered_in_the_background(tracking_uri, model_dir, iris):
    monitor = MlflowMonitor(every_n_steps=10, flush_timeout_s=0)
    _est(model_dir).fit(*iris, max_steps=30, monitors=[monitor])
    assert monitor.close(timeout=30) == 0
    run = MlflowClient().get_run(monitor.run.run_id)
    assert run.info.status == "FINISHED" and run.data.metrics["loss"] > 0
