"""`run_distributed` / `skflow run --workers N`: the pipeline with its fit on two real worker processes.

One two-worker run on 127.0.0.1 (iris, a canned DNNClassifier, 40 steps) is shared by the assertions
(a module fixture: multi-worker start-up costs seconds per process); a second launch, through the
`skflow` command, has worker 1 SIGKILLed in the middle of its fit.
"""

from __future__ import annotations

import copy
import io
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from mlflow import MlflowClient

from flows.config import load_config
from flows.workers import run_distributed
from tests.flows.conftest import IRIS_PIPELINE
from tests.flows.test_cli import skflow

ROOT = Path(__file__).resolve().parents[2]
LAUNCH_TIMEOUT_S = 400


def _store(root: Path, template_db: Path) -> str:
    (root / "mlruns").mkdir()
    shutil.copy(template_db, root / "mlruns" / "mlflow.db")
    return f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"


def _config(root: Path, uri: str, *overrides: str, source: dict | None = None):
    source = copy.deepcopy(IRIS_PIPELINE) if source is None else source
    return load_config(source, [f"model_root={root / 'models'}", f"tracking.uri={uri}", *overrides])


def _flow_runs_tagged(tag: str) -> list:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

    with get_client(sync_client=True) as client:
        return client.read_flow_runs(flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[tag])))


@pytest.fixture(scope="module")
def two_workers(prefect_api, tmp_path_factory, mlflow_template_db):
    """One pipeline run on two worker processes: its result, output, config and store."""
    root = tmp_path_factory.mktemp("two_workers")
    uri = _store(root, mlflow_template_db)
    config = _config(root, uri, "tracking.log_model=true")
    before = len(_flow_runs_tagged("skflow-workers:2"))
    output = io.StringIO()
    result = run_distributed(config, workers=2, stream=output, log_dir=root / "logs", timeout=LAUNCH_TIMEOUT_S)
    flow_runs = len(_flow_runs_tagged("skflow-workers:2")) - before
    return SimpleNamespace(
        result=result, output=output.getvalue(), config=config, root=root, uri=uri, flow_runs=flow_runs
    )


def test_two_workers_make_one_mlflow_run_and_one_prefect_flow_run_the_chiefs(two_workers):
    result, client = two_workers.result, MlflowClient(two_workers.uri)
    runs = client.search_runs([client.get_experiment_by_name("iris").experiment_id])
    assert [r.info.run_id for r in runs] == [result.run_id]
    run = runs[0]
    assert run.info.status == "FINISHED" and result.status == "FINISHED"
    assert run.data.metrics["eval_accuracy"] == pytest.approx(result.metrics["eval_accuracy"])
    assert run.data.tags["prefect.flow_run_id"] == result.flow_run_id
    assert two_workers.flow_runs == 1
    (flow_run,) = _flow_runs_tagged(f"mlflow.run_id:{result.run_id}")
    assert str(flow_run.id) == result.flow_run_id and "skflow-workers:2" in flow_run.tags


def test_both_workers_trained_to_the_target_step_their_output_prefixed_by_task(two_workers):
    assert two_workers.result.global_step == 40
    lines = two_workers.output.splitlines()
    assert any(
        line.startswith("[worker 0] ") and "Task worker 0: the cluster is up (2 replicas)" in line for line in lines
    )
    assert any(line.startswith("[worker 1] ") and "Worker 1 trained to step 40 on 120 rows" in line for line in lines)
    assert any(line.startswith("[launcher] Started 2 worker(s) on 127.0.0.1 ports ") for line in lines)
    assert "Worker 1 trained to step 40" in (two_workers.root / "logs" / "worker-1.log").read_text()


def test_only_the_chief_writes_under_model_root(two_workers):
    result = two_workers.result
    assert sorted(p.name for p in (two_workers.root / "models").iterdir()) == ["iris"]
    assert sorted(p.name for p in (two_workers.root / "models" / "iris").iterdir()) == [result.run_id]
    assert Path(result.model_dir, "checkpoint").exists()
    assert max(int(p.name.split("-")[1].split(".")[0]) for p in Path(result.model_dir).glob("model.ckpt-*.index")) == 40


def test_the_logged_model_loads_and_predicts(two_workers):
    from flows.prediction import load_logged_model, model_predictor
    from flows.sources import read_source

    model = load_logged_model(two_workers.result.model_uri, two_workers.uri)
    predict, columns = model_predictor(model)
    rows = read_source("sklearn:iris")
    predictions = pd.DataFrame(predict(rows[columns]))
    assert len(predictions) == 150
    assert (predictions["classes"].to_numpy() == rows["target"].to_numpy()).mean() > 0.8


def test_held_out_metrics_are_close_to_a_one_worker_run(two_workers, tmp_path):
    from flows.foreground import without_heartbeats
    from flows.pipelines import train_flow

    one = _config(tmp_path, two_workers.uri, "experiment=iris-one-worker")
    with without_heartbeats():
        single = train_flow(one)
    assert single.global_step == two_workers.result.global_step == 40
    many = two_workers.result.metrics
    assert many["eval_accuracy"] == pytest.approx(single.metrics["eval_accuracy"], abs=0.07)
    assert many["eval_log_loss"] == pytest.approx(single.metrics["eval_log_loss"], rel=0.1, abs=0.02)


def test_skflow_run_exits_1_naming_a_worker_killed_mid_fit_and_ends_the_chiefs_runs(
    prefect_api, tmp_path, mlflow_template_db
):
    uri = _store(tmp_path, mlflow_template_db)
    source = copy.deepcopy(IRIS_PIPELINE)
    source["estimator"] = {
        "model_fn": "tests.flows.worker_models:dies_on_worker_1",
        "task": "classification",
        "params": {"n_classes": 3, "hidden": 8},
    }
    (tmp_path / "pipeline.yaml").write_text(json.dumps(source))
    overrides = [f"model_root={tmp_path / 'models'}", f"tracking.uri={uri}"]
    done = skflow(
        "run", "pipeline.yaml", "--workers", "2", *(a for o in overrides for a in ("--set", o)),
        cwd=tmp_path, env={"PREFECT_API_URL": prefect_api}, timeout=LAUNCH_TIMEOUT_S,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr[-3000:]
    error = done.stderr[done.stderr.index("Run failed: ") :]
    assert error.startswith("Run failed: WorkerFailedError: Worker 1 failed (killed by SIGKILL) after ")
    assert "The last lines of worker 1:\n" in error and "worker 1: SIGKILLing itself at step 10" in error
    assert "Traceback" not in done.stderr
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("iris").experiment_id])
    assert run.info.status in ("FAILED", "KILLED")  # never left RUNNING
    assert f"MLflow run {run.info.run_id} (iris) ended {run.info.status}" in error
    (flow_run,) = _flow_runs_tagged(f"mlflow.run_id:{run.info.run_id}")
    assert flow_run.state.is_final() and not flow_run.state.is_completed()


def test_skflow_run_refuses_fewer_than_one_worker_before_anything_starts(tmp_path):
    done = skflow("run", str(ROOT / "configs" / "digits.yaml"), "--workers", "0", cwd=tmp_path, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "Invalid value for '--workers'" in done.stderr and "greater than or equal to 1" in done.stderr
    assert not (tmp_path / "models").exists() and not (tmp_path / "mlruns").exists()
