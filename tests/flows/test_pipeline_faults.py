"""Faults injected into real flow runs: a fit that crashes and is retried, a flaky source, a failing
step, an interrupt, an invalid config. Prefect's test server and MLflow on SQLite, as in production.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from estimators.monitors import BaseMonitor
from flows import training
from flows.config import ConfigError
from flows.sources import read_source

pytestmark = pytest.mark.slow


class FailOnce(BaseMonitor):
    """Raises `error` once, at global step `at` (or, with at=None, when the fit ends)."""

    def __init__(self, error: BaseException, at: int | None) -> None:
        super().__init__()
        self.error, self.at, self.fired = error, at, False

    def next_step(self, step):
        return self.at if self.at is not None and not self.fired and step < self.at else None

    def step_end(self, step, outputs):
        if step == self.at and not self.fired:
            self.fired = True
            raise self.error
        return False

    def end(self):
        if self.at is None and not self.fired:
            self.fired = True
            raise self.error


def _inject(monkeypatch, monitor: BaseMonitor) -> None:
    """Put `monitor` first among the monitors every fit attempt gets (the same object each time)."""
    build = training.build_monitors
    monkeypatch.setattr(training, "build_monitors", lambda *a, **k: [monitor, *build(*a, **k)])


def _task_runs(flow_run_id):
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {r.name.rsplit("-", 1)[0]: r for r in runs}


def _history(result, key="loss"):
    from mlflow import MlflowClient

    return [m.step for m in MlflowClient(result.tracking_uri).get_metric_history(result.run_id, key)]


def _runs(tracking_uri, experiment="iris"):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    return [] if found is None else client.search_runs([found.experiment_id])


CUSTOM = {"estimator": {"model_fn": "tests.helpers:mlp_fn", "task": "classification", "params": {"n_classes": 3}}}


@pytest.mark.parametrize("model", ["canned", "custom"])
def test_a_fit_that_crashes_mid_training_is_retried_and_resumes_to_the_exact_step_in_one_run(
    prefect_api, pipeline_config, monkeypatch, model
):
    from flows import train_flow

    _inject(monkeypatch, FailOnce(RuntimeError("injected crash at step 25"), at=25))
    config = pipeline_config(None, *([f"estimator={CUSTOM['estimator']}"] if model == "custom" else []))
    result = train_flow(config)

    assert result.status == "FINISHED" and result.global_step == 40
    assert len(_runs(result.tracking_uri)) == 1
    assert _history(result) == [10, 20, 30, 40], "continuous: nothing lost, nothing twice"
    assert _task_runs(result.flow_run_id)["fit"].run_count == 2
    assert training.checkpoint_step(result.model_dir) == 40
    from mlflow import MlflowClient

    params = MlflowClient(result.tracking_uri).get_run(result.run_id).data.params
    assert (params["batch_size"], params["max_steps"]) == ("16", "40"), "the config's batch size, on every attempt"


def test_a_fit_that_crashes_after_its_last_step_is_retried_without_training_more(
    prefect_api, pipeline_config, monkeypatch
):
    from flows import train_flow

    _inject(monkeypatch, FailOnce(RuntimeError("injected crash at the end"), at=None))
    result = train_flow(pipeline_config())
    assert result.status == "FINISHED" and result.global_step == 40
    assert _history(result)[-1] == 40 and len(set(_history(result))) == len(_history(result))
    assert result.metrics["eval_accuracy"] > 0.5


def test_a_source_that_fails_twice_then_succeeds_is_retried_and_the_flow_completes(
    prefect_api, pipeline_config, monkeypatch
):
    from flows import data, train_flow

    failures = []
    real = data.read_source

    def flaky(source, columns=None):
        if len(failures) < 2:
            failures.append(source)
            raise ConnectionError(f"share unavailable (attempt {len(failures)})")
        return real(source, columns)

    monkeypatch.setattr(data, "read_source", flaky)
    result = train_flow(pipeline_config())
    assert result.status == "FINISHED" and len(failures) == 2
    assert _task_runs(result.flow_run_id)["ingest"].run_count == 3


def test_a_failing_step_fails_the_flow_run_and_the_mlflow_run_with_the_error(prefect_api, pipeline_config, tmp_path):
    from mlflow import MlflowClient

    from flows import train_flow

    path = tmp_path / "rows.csv"
    lines = ["a,b,target", *(f"{i},{i % 7},{i % 3}" for i in range(300)), "1,2,3,4,5"]
    path.write_text("\n".join(lines) + "\n")
    config = pipeline_config(None, f"source={path}", "retries.ingest=0")
    state = train_flow(config, return_state=True)
    assert state.is_failed()
    (run,) = _runs(config.tracking.uri)
    assert run.info.status == "FAILED"
    assert "line 302 has 5 fields where the header has 3" in run.data.tags["skflow.error"]
    assert MlflowClient(config.tracking.uri).get_run(run.info.run_id).data.tags["prefect.flow_run_id"] == str(
        state.state_details.flow_run_id
    )


def test_keyboard_interrupt_ends_the_mlflow_run_killed_and_the_checkpoint_resumes(
    prefect_api, pipeline_config, monkeypatch
):
    from estimators import Estimator, RunConfig
    from flows import train_flow
    from tests.helpers import mlp_fn

    _inject(monkeypatch, FailOnce(KeyboardInterrupt(), at=20))
    config = pipeline_config(None, f"estimator={CUSTOM['estimator']}")
    with pytest.raises(KeyboardInterrupt):
        train_flow(config)
    (run,) = _runs(config.tracking.uri)
    assert run.info.status == "KILLED"
    model_dir = os.path.join(config.model_root, "iris", run.info.run_id)
    assert training.checkpoint_step(model_dir) == 20
    est = Estimator(mlp_fn, model_dir=model_dir, config=RunConfig(verbose=0), params={"n_classes": 3})
    frame = read_source("sklearn:iris")
    x, y = frame.drop(columns=["target"]), frame["target"].to_numpy()
    est.fit(x, y, max_steps=30)
    assert est.evaluate(x, y)["global_step"] == 30


def test_an_invalid_config_fails_before_any_mlflow_run_or_model_dir(prefect_api, pipeline_config, tmp_path):
    from flows import train_flow

    config = pipeline_config(None, "target=species")
    with pytest.raises(ConfigError, match="target: column 'species' is not in source 'sklearn:iris'"):
        train_flow(config)
    assert _runs(config.tracking.uri) == [] and not os.path.exists(config.model_root)


def test_a_source_over_the_memory_budget_is_streamed_from_its_files(
    prefect_api, pipeline_config, monkeypatch, tmp_path
):
    from flows import data, train_flow

    frame = read_source("sklearn:iris")
    frame["row"] = np.arange(len(frame))
    frame.to_parquet(tmp_path / "iris.parquet", index=False)
    monkeypatch.setattr(data, "estimated_mb", lambda source: 10_000.0)  # as if it were 10 GB
    config = pipeline_config(
        None,
        f"estimator={CUSTOM['estimator']}",
        f"source={tmp_path / 'iris.parquet'}",
        "id_column=row",
        "fit.memory_budget_mb=256",
        f"predict={{source: {tmp_path / 'iris.parquet'}, output: {tmp_path / 'out.csv'}}}",
    )
    result = train_flow(config)
    assert result.status == "FINISHED" and result.global_step == 40
    assert not os.path.exists(os.path.join(result.model_dir, "data", "source.parquet")), "never loaded whole"
    from mlflow import MlflowClient

    params = MlflowClient(result.tracking_uri).get_run(result.run_id).data.params
    assert params["feeder.feeder"] == "FileDataFeeder", params
    import pandas as pd

    assert pd.read_csv(result.predictions)["row"].tolist() == list(range(150))


def test_a_canned_estimator_on_a_streamed_source_is_refused_naming_the_fix(
    prefect_api, pipeline_config, monkeypatch, tmp_path
):
    from flows import data, train_flow

    monkeypatch.setattr(data, "estimated_mb", lambda source: 10_000.0)
    read_source("sklearn:iris").to_parquet(tmp_path / "iris.parquet", index=False)
    config = pipeline_config(None, f"source={tmp_path / 'iris.parquet'}", "fit.memory_budget_mb=256")
    with pytest.raises(ValueError, match="needs a custom estimator.model_fn"):
        train_flow(config)
    (run,) = _runs(config.tracking.uri)
    assert run.info.status == "FAILED"
