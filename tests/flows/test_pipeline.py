"""train_flow and batch_predict_flow on real components: Prefect's test server, MLflow on SQLite.

Every config in configs/ runs once (short schedules) in a module fixture; the tests then read what
the runs left in MLflow and Prefect.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flows.config import load_config
from flows.sources import read_source, write_demo_churn
from tests.flows.conftest import pipeline_overrides

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted(p.name for p in (ROOT / "configs").glob("*.yaml"))
SHORT = {  # each config's own settings, on a schedule short enough for the test suite
    "digits.yaml": ["fit.epochs=2", "fit.validation_every_n_steps=20", "tracking.log_every_n_steps=10"],
    "custom_model.yaml": ["fit.steps=120", "fit.validation_every_n_steps=40"],
    "churn.yaml": ["fit.epochs=1", "fit.validation_every_n_steps=20"],
}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def config_runs(prefect_api, mlflow_template_db, tmp_path_factory):
    """Each config of configs/ run once: {file name: (config, TrainResult)}."""
    from flows import train_flow

    root = tmp_path_factory.mktemp("configs")
    db = root / "mlflow.db"
    shutil.copy(mlflow_template_db, db)
    churn = root / "data" / "churn"
    write_demo_churn(str(churn), rows=600)
    out = {}
    for name in CONFIGS:
        extra = [f"predict.output={root / 'predictions' / name.replace('.yaml', '.parquet')}"]
        if name == "churn.yaml":
            extra += [f"source={churn}/", f"predict.source={churn}/"]
        config = load_config(
            ROOT / "configs" / name, [*pipeline_overrides(root, f"sqlite:///{db}"), *SHORT[name], *extra]
        )
        out[name] = (config, train_flow(config))
    return out


def _client(result):
    from mlflow import MlflowClient

    return MlflowClient(result.tracking_uri)


def test_every_config_in_configs_has_a_short_schedule_here():
    assert CONFIGS and sorted(SHORT) == CONFIGS


@pytest.mark.parametrize("name", CONFIGS)
def test_each_config_trains_evaluates_and_predicts_as_one_finished_mlflow_run(config_runs, name):
    config, result = config_runs[name]
    run = _client(result).get_run(result.run_id)
    assert run.info.status == "FINISHED" and result.status == "FINISHED"
    assert run.data.tags["skflow.primary_metric"] in run.data.metrics
    assert {f"eval_{m}" for m in config.metrics} <= set(result.metrics)
    assert run.data.params["data.fingerprint"] and "loss" in run.data.metrics
    predictions = pd.read_parquet(result.predictions)
    assert len(predictions) == len(read_source(config.predict.source))
    if config.id_column:
        assert predictions.columns[0] == config.id_column
        assert predictions[config.id_column].tolist() == read_source(config.predict.source)[config.id_column].tolist()
    assert Path(result.model_dir, "checkpoint").exists()


def test_a_classifier_on_digits_learns_and_its_model_is_registered(config_runs):
    config, result = config_runs["digits.yaml"]
    assert result.metrics["eval_accuracy"] > 0.8
    assert result.model_uri and result.model_uri.startswith("models:/")
    versions = _client(result).search_model_versions(f"name='{config.tracking.registered_model}'")
    assert [v.run_id for v in versions] == [result.run_id]


def test_the_churn_model_serves_its_raw_columns_and_predicts_labels_by_customer(config_runs):
    config, result = config_runs["churn.yaml"]
    assert result.model_uri is not None
    predictions = pd.read_parquet(result.predictions)
    assert predictions.columns.tolist() == ["customer_id", "class_ids", "classes", "probabilities_0", "probabilities_1"]
    assert set(predictions["classes"]) <= {"yes", "no"}
    np.testing.assert_allclose(predictions[["probabilities_0", "probabilities_1"]].sum(axis=1), 1.0, rtol=1e-5)


def test_the_mlflow_run_and_the_prefect_flow_run_name_each_other(config_runs):
    from prefect import get_client

    _, result = config_runs["digits.yaml"]
    tags = _client(result).get_run(result.run_id).data.tags
    assert tags["prefect.flow_run_id"] == result.flow_run_id
    assert tags["prefect.flow_name"] == "train"
    assert result.flow_run_id in tags["prefect.flow_run_url"]
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(result.flow_run_id)
    assert f"mlflow.run_id:{result.run_id}" in flow_run.tags
    assert tags["prefect.flow_run_name"] == flow_run.name == _client(result).get_run(result.run_id).info.run_name


def test_the_flow_runs_artifacts_read_back_a_run_summary_and_a_metrics_table(config_runs):
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    _, result = config_runs["digits.yaml"]
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[result.flow_run_id])))
    by_type = {a.type: a for a in artifacts}
    assert set(by_type) == {"markdown", "table"}
    assert result.run_id in by_type["markdown"].data and "eval_accuracy" in by_type["markdown"].data
    assert "eval_accuracy" in str(by_type["table"].data)


def test_the_skflow_training_log_is_in_the_prefect_run_logs(config_runs):
    from prefect import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    _, result = config_runs["digits.yaml"]
    APILogHandler().flush()
    deadline = time.monotonic() + 30
    while True:
        with get_client(sync_client=True) as client:
            logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[result.flow_run_id])), limit=200)
        losses = [log.message for log in logs if log.name == "skflow" and log.message.startswith("loss = ")]
        if losses or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert losses and any("steps/s" in m for m in losses)
    assert any(log.task_run_id for log in logs if log.name == "skflow"), "records belong to the fit task run"


def test_batch_predictions_equal_estimator_predict_on_the_same_rows(config_runs, tmp_path):
    from configs.custom_model import model_fn
    from estimators import Estimator, RunConfig
    from flows import batch_predict_flow

    config, result = config_runs["custom_model.yaml"]
    frame = read_source("sklearn:diabetes").drop(columns=["target"])
    frame.insert(0, "patient", [f"p{i}" for i in range(len(frame))])
    source = tmp_path / "new" / "patients.csv"
    source.parent.mkdir()
    frame.to_csv(source, index=False)
    out = batch_predict_flow(result.model_uri, str(source), str(tmp_path / "out.parquet"), id_column="patient",
                             tracking_uri=result.tracking_uri)  # fmt: skip
    written = pd.read_parquet(out.output)
    est = Estimator(model_fn, model_dir=result.model_dir, config=RunConfig(verbose=0), params=config.estimator.params)
    expected = est.predict(frame.drop(columns=["patient"]).astype(np.float32), checkpoint_path="best")["predictions"]
    assert out.rows == len(frame) and written["patient"].tolist() == frame["patient"].tolist()
    np.testing.assert_allclose(written["predictions"].to_numpy(), expected, rtol=1e-5, atol=1e-4)
