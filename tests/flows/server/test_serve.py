"""`skflow serve`, for real: the retraining flow served as a Prefect deployment on `skflow server`'s
Prefect (PostgreSQL backend, the session's `pg_servers`), its cron run of every minute executed
within a bounded wait, and that run's MLflow params and metric histories read back through MLflow's
REST API (what the UI reads) equal to what skflow logged.

One `skflow serve` subprocess for the module (like a user's terminal); the last test stops it with
SIGTERM and proves it leaves no process and pauses the schedule (Prefect's pause_on_shutdown).
"""

from __future__ import annotations

import copy
import json
import math
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import psutil
import pytest
import yaml

from ..conftest import IRIS_PIPELINE

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[3]
DEPLOYMENT = "every-minute"
# Cron has a one-minute granularity: the first run is due at the next minute (<= 60 s), the runner
# polls every 2 s here, and the run (a child process importing TensorFlow, 40 steps) takes 15-40 s
# on two loaded cores.
CRON_RUN_TIMEOUT_S = 210
_SERVICE_VARIABLES = ("MLFLOW_TRACKING_", "PREFECT_", "SKFLOW_SERVER_DIR")


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(_SERVICE_VARIABLES)}
    return {
        **inherited,
        "PYTHONPATH": str(ROOT),
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "PREFECT_HOME": str(tmp / "prefect_home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "SKFLOW_SERVER_DIR": str(tmp / "no-server"),  # never a server of the developer's checkout
        **extra,
    }


def _get(url: str, data: dict | None = None) -> dict | list:
    body = None if data is None else json.dumps(data).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _flow_name() -> str:
    return "retrain"  # flows.retrain.retrain_flow's flow name


@pytest.fixture(scope="module")
def served(pg_servers, tmp_path_factory):
    """`skflow serve CONFIG --cron "* * * * *"` against the session's servers, until the module ends."""
    tmp = tmp_path_factory.mktemp("serve")
    pipeline = copy.deepcopy(IRIS_PIPELINE)
    pipeline.update(experiment="iris-served", model_root=str(tmp / "models"))
    pipeline["tracking"].update(uri=pg_servers.mlflow_url, log_model=True)  # a retrain compares logged models
    config = tmp / "pipeline.yaml"
    config.write_text(yaml.safe_dump(pipeline))
    env = _env(
        tmp,
        PREFECT_API_URL=pg_servers.prefect_api_url,
        MLFLOW_TRACKING_URI=pg_servers.mlflow_url,
        PREFECT_RUNNER_POLL_FREQUENCY="2",
    )
    log = open(tmp / "serve.log", "wb")  # noqa: SIM115 - closed below
    command = [sys.executable, "-m", "flows.cli", "serve", str(config), "--cron", "* * * * *", "--name", DEPLOYMENT]
    process = subprocess.Popen(command, cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    yield {"process": process, "started": time.monotonic(), "servers": pg_servers, "log": tmp / "serve.log"}
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    log.close()


def _deployment(served, timeout: float = 90) -> dict:
    api = served["servers"].prefect_api_url
    url = f"{api}/deployments/name/{_flow_name()}/{DEPLOYMENT}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            return _get(url)
        except urllib.error.HTTPError as exc:
            if exc.code != 404 or time.monotonic() > deadline:
                raise
        assert served["process"].poll() is None, Path(served["log"]).read_text()[-3000:]
        time.sleep(1)


@pytest.fixture(scope="module")
def cron_run(served):
    """The deployment's first run that reached a final state (waited for, bounded), and its MLflow run."""
    api = served["servers"].prefect_api_url
    deployment = _deployment(served)
    query = {"deployments": {"id": {"any_": [deployment["id"]]}}, "sort": "EXPECTED_START_TIME_ASC"}
    deadline = served["started"] + CRON_RUN_TIMEOUT_S
    final = []
    while time.monotonic() < deadline:
        runs = _get(f"{api}/flow_runs/filter", query)
        final = [r for r in runs if r["state_type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")]
        if final:
            break
        assert served["process"].poll() is None, Path(served["log"]).read_text()[-3000:]
        time.sleep(2)
    log = Path(served["log"]).read_text()[-3000:]
    assert final, f"no run of the every-minute deployment finished within {CRON_RUN_TIMEOUT_S} s:\n{log}"
    flow_run = final[0]
    assert flow_run["state_type"] == "COMPLETED", log
    from mlflow import MlflowClient

    client = MlflowClient(served["servers"].mlflow_url)
    found = client.search_runs(
        [client.get_experiment_by_name("iris-served").experiment_id],
        filter_string=f"tags.`prefect.flow_run_id` = '{flow_run['id']}'",
    )
    assert len(found) == 1, f"no MLflow run tagged with flow run {flow_run['id']}"
    return {"flow_run": flow_run, "run": found[0], "waited_s": time.monotonic() - served["started"]}


def test_serve_without_prefect_api_url_exits_2_saying_how_to_get_a_real_server(tmp_path):
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump(IRIS_PIPELINE))
    result = subprocess.run(
        [sys.executable, "-m", "flows.cli", "serve", str(config), "--cron", "0 3 * * *"],
        cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert "needs a real Prefect server, and PREFECT_API_URL is not set" in result.stderr
    assert "skflow server start" in result.stderr and "Traceback" not in result.stderr


def test_serve_refuses_a_prefect_api_url_where_no_server_answers():
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.serve import ServeError, require_prefect_server

    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        with pytest.raises(ServeError, match=r"No Prefect server answers at PREFECT_API_URL=http://127.0.0.1:9/api"):
            require_prefect_server(timeout=2)


@pytest.mark.parametrize(
    ("cron", "interval", "message"),
    [
        ("0 3 * *", None, r"Invalid value for argument `--cron`. Received: cron='0 3 \* \*'. Expected a cron"),
        (None, 0, r"Invalid value for argument `--interval`. Received: interval=0. Expected a positive"),
        ("* * * * *", 60, "Give --cron or --interval, not both"),
    ],
)
def test_a_bad_schedule_is_refused_naming_it(cron, interval, message):
    from flows.serve import ServeError, check_schedule

    with pytest.raises(ServeError, match=message):
        check_schedule(cron, interval)


def test_serve_registers_a_cron_deployment_with_the_config_as_its_parameters(served):
    deployment = _deployment(served)
    assert [s["schedule"]["cron"] for s in deployment["schedules"]] == ["* * * * *"]
    assert all(s["active"] for s in deployment["schedules"])
    config = deployment["parameters"]["config"]
    assert config["experiment"] == "iris-served" and config["estimator"]["name"] == "DNNClassifier"
    assert config["tracking"]["uri"] == served["servers"].mlflow_url
    assert "skflow" in deployment["tags"] and "experiment:iris-served" in deployment["tags"]
    assert deployment["entrypoint"].startswith("flows.")  # a module path: runs wherever skflow is installed
    # The parameters form the Prefect UI shows (and `prefect deployment run` fills) is the config's schema.
    assert "config" in deployment["parameter_openapi_schema"]["properties"]


def test_the_every_minute_deployment_runs_within_the_bounded_wait_and_its_mlflow_run_finishes(cron_run):
    run = cron_run["run"]
    assert run.info.status == "FINISHED"
    assert "iris-served-20" in run.info.run_name  # readable: the experiment and the time
    assert run.data.params["estimator.class"] == "DNNClassifier"
    assert run.data.params["max_steps"] == "40" and run.data.params["batch_size"] == "16"
    assert run.data.tags["prefect.flow_run_id"] == cron_run["flow_run"]["id"]
    assert f"mlflow.run_id:{run.info.run_id}" in cron_run["flow_run"]["tags"]
    assert cron_run["flow_run"]["auto_scheduled"] is True  # the scheduler made it, not an ad hoc request


def test_rest_api_reads_back_the_params_and_metric_histories_skflow_logged(cron_run, served):
    """What the MLflow UI shows comes from its REST API: /runs/get and /metrics/get-history."""
    from mlflow import MlflowClient

    base = f"{served['servers'].mlflow_url}/api/2.0/mlflow"
    run = cron_run["run"]
    payload = _get(f"{base}/runs/get?run_id={run.info.run_id}")["run"]
    params = {p["key"]: p["value"] for p in payload["data"]["params"]}
    assert params == run.data.params  # the same flattened keys and text values skflow logged
    assert {t["key"]: t["value"] for t in payload["data"]["tags"]}["mlflow.runName"] == run.info.run_name
    latest = {m["key"]: m["value"] for m in payload["data"]["metrics"]}
    assert {"loss", "eval_accuracy"} <= set(latest)
    client = MlflowClient(served["servers"].mlflow_url)
    for key in latest:
        query = urllib.parse.urlencode({"run_id": run.info.run_id, "metric_key": key})
        history = [(m["step"], m["value"]) for m in _get(f"{base}/metrics/get-history?{query}")["metrics"]]
        logged = [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)]
        assert sorted(history) == sorted(logged), key
        assert all(math.isfinite(v) for _, v in history)
    loss_steps = [step for step, _ in sorted(_history(base, run.info.run_id, "loss"))]
    assert loss_steps == [10, 20, 30, 40]  # tracking.log_every_n_steps=10 over 40 steps: curves that overlay


def _history(base: str, run_id: str, key: str) -> list[tuple[int, float]]:
    query = urllib.parse.urlencode({"run_id": run_id, "metric_key": key})
    return [(m["step"], m["value"]) for m in _get(f"{base}/metrics/get-history?{query}")["metrics"]]


def test_compare_links_the_tracking_servers_ui_and_logs_the_curves_to_the_run(cron_run, served, tmp_path):
    from flows.compare import compare_runs

    run = cron_run["run"]
    comparison = compare_runs([run.info.run_id], tracking_uri=served["servers"].mlflow_url, output_dir=str(tmp_path))
    assert comparison.ui_url.startswith(f"{served['servers'].mlflow_url}/#/compare-runs?runs=")
    assert comparison.metrics.loc["loss", run.info.run_name] == pytest.approx(run.data.metrics["loss"])
    artifacts = _get(
        f"{served['servers'].mlflow_url}/api/2.0/mlflow/artifacts/list?run_id={run.info.run_id}&path=compare"
    )
    assert [f["path"] for f in artifacts["files"]] == [f"compare/{Path(comparison.plot_path).name}"]


def test_the_scheduled_retrain_made_the_first_version_champion_which_loads_from_the_server(cron_run, served):
    """On the real servers: the served retrain registered its model, the first version became
    `champion` with the decision on it, and `models:/NAME@champion` loads through the server."""
    from mlflow import MlflowClient

    from flows.sources import read_source
    from flows.tracking import load_model

    url = served["servers"].mlflow_url
    version = MlflowClient(url, registry_uri=url).get_model_version_by_alias("iris-served", "champion")
    assert version.run_id == cron_run["run"].info.run_id
    assert version.tags["skflow.promotion.decision"] == "promoted"
    rows = read_source("sklearn:iris").drop(columns=["target"]).iloc[::10]
    predicted = load_model("models:/iris-served@champion", tracking_uri=url).predict(rows)
    assert len(predicted) == len(rows)


def test_sigterm_stops_serve_leaving_no_process_and_pauses_the_schedule(served):
    process = served["process"]
    assert process.poll() is None, Path(served["log"]).read_text()[-3000:]
    family = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=30)
    gone, alive = psutil.wait_procs(family, timeout=15)
    assert alive == []
    deployment = _deployment(served, timeout=0)
    assert deployment["paused"] is True  # no runs pile up for a runner that is gone
    assert "Could not pause" not in Path(served["log"]).read_text()


def _retrain(served, source: Path, *overrides: str) -> subprocess.CompletedProcess:
    tmp = Path(served["log"]).parent
    servers = served["servers"]
    env = _env(tmp, PREFECT_API_URL=servers.prefect_api_url, MLFLOW_TRACKING_URI=servers.mlflow_url)
    sets = [item for o in (f"source={source}", "retrain.metric=log_loss", *overrides) for item in ("--set", o)]
    command = [sys.executable, "-m", "flows.cli", "retrain", str(tmp / "pipeline.yaml"), *sets]
    return subprocess.run(command, cwd=tmp, env=env, capture_output=True, text=True, timeout=300)


def test_on_the_real_servers_a_worse_challenger_is_kept_out_and_a_better_one_becomes_champion(served, cron_run):
    """After serve stopped (no scheduled run races these): two `skflow retrain`s on new partitions,
    judged on log loss against the scheduled run's champion (40 steps)."""
    from mlflow import MlflowClient

    from flows.sources import read_source
    from flows.tracking import load_model

    url = served["servers"].mlflow_url
    client = MlflowClient(url, registry_uri=url)
    first = client.get_model_version_by_alias("iris-served", "champion")
    partitions = Path(served["log"]).parent / "iris_partitions"
    partitions.mkdir()
    iris = read_source("sklearn:iris")
    iris.to_csv(partitions / "part-1.csv", index=False)
    worse = _retrain(served, partitions, "fit.steps=1", "estimator.params.learning_rate=0.000001")
    assert worse.returncode == 0, worse.stderr[-3000:]
    kept = client.get_model_version_by_alias("iris-served", "challenger")
    assert kept.tags["skflow.promotion.decision"] == "kept champion"
    assert client.get_model_version_by_alias("iris-served", "champion").version == first.version
    iris.sample(frac=1.0, random_state=1).to_csv(partitions / "part-2.csv", index=False)  # new data
    better = _retrain(served, partitions, "fit.steps=400")
    assert better.returncode == 0, better.stderr[-3000:]
    champion = client.get_model_version_by_alias("iris-served", "champion")
    assert int(champion.version) > int(kept.version)
    assert champion.tags["skflow.promotion.decision"] == "promoted"
    loaded = load_model("models:/iris-served@champion", tracking_uri=url)
    assert loaded.metadata.run_id == champion.run_id != kept.run_id
