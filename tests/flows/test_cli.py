"""The `skflow` command through a subprocess, as a user runs it: exit codes, messages, what it loads.

Runs use the session's Prefect test server (PREFECT_API_URL) and a SQLite MLflow store of their own.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from flows.sources import read_source

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 300
# Where runs go: each test says it (an embedded store in its project, the session's Prefect server),
# whatever an earlier test left in this process's environment.
_SERVICE_VARIABLES = ("MLFLOW_TRACKING_", "PREFECT_API_", "SKFLOW_SERVER_DIR")


def skflow(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = RUN_TIMEOUT_S):
    """Run `python -m flows.cli ARGS` (what the `skflow` script runs) in `cwd`."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(_SERVICE_VARIABLES)}
    full_env = {**inherited, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args], cwd=cwd, env=full_env, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


@pytest.fixture
def project(tmp_path, mlflow_template_db):
    """A project directory with an embedded MLflow store (copied, already migrated)."""
    store = tmp_path / "mlruns"
    store.mkdir()
    shutil.copy(mlflow_template_db, store / "mlflow.db")
    return tmp_path


def test_help_is_fast_and_loads_neither_tensorflow_mlflow_nor_prefect():
    code = (
        "import sys, time\n"
        "started = time.perf_counter()\n"
        "sys.argv = ['skflow', '--help']\n"
        "from flows.cli import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'mlflow', 'prefect', 'pandas'})\n"
        "print('RESULT', code, heavy, time.perf_counter() - started, file=sys.stderr)\n"
    )
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    wall = time.perf_counter() - started
    _, code, heavy, seconds = done.stderr.strip().splitlines()[-1].split(" ", 3)
    assert code == "0" and heavy == "[]", done.stderr
    assert "run" in done.stdout and "predict" in done.stdout and "runs" in done.stdout
    assert wall < 5, f"`skflow --help` took {wall:.2f} s (target 1.5 s; {float(seconds):.2f} s in-process)"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("fit.epoch=3", "fit.epoch: unknown field"),
        ("target=label", "target: column 'label' is not in source 'sklearn:digits'"),
        ("estimator.name=DNNClassifer", "'DNNClassifer' is not a canned estimator"),
        ("estimator={model_fn: 'nowhere.models:fn'}", "module 'nowhere.models' does not import"),
    ],
)
def test_an_invalid_config_exits_2_naming_the_field_before_anything_starts(project, change, message):
    done = skflow("run", str(ROOT / "configs" / "digits.yaml"), "--set", change, cwd=project,
                  env={"PREFECT_API_URL": "http://127.0.0.1:9/api"}, timeout=120)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert sorted(os.listdir(project)) == ["mlruns"] and os.listdir(project / "mlruns") == ["mlflow.db"]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("missing_dir/", "source 'missing_dir/': no such file or directory"),
        ("empty.csv", "empty.csv is empty: no header and no rows"),
        (
            "{sql: SELECT nope FROM nowhere, url: 'sqlite:///shop.db'}",
            "SQL query failed on sqlite:///shop.db: no such table: nowhere",
        ),
    ],
)
def test_an_unreadable_source_exits_2_with_a_clear_message(project, source, message):
    (project / "empty.csv").write_text("")
    done = skflow("run", str(ROOT / "configs" / "digits.yaml"), "--set", f"source={source}", "--set", "predict=null",
                  cwd=project, env={"PREFECT_API_URL": "http://127.0.0.1:9/api"}, timeout=120)  # fmt: skip
    assert done.returncode == 2 and message in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr


def test_server_status_without_a_server_exits_3_and_says_how_to_start_one(tmp_path):
    done = skflow("server", "status", "--dir", str(tmp_path / "none"), cwd=tmp_path, timeout=120)
    assert done.returncode == 3 and "skflow server start" in done.stdout + done.stderr


def test_a_missing_config_file_exits_2(project):
    done = skflow("run", "nope.yaml", cwd=project, env={"PREFECT_API_URL": "http://127.0.0.1:9/api"})
    assert done.returncode == 2 and "nope.yaml: no such config file" in done.stderr


@pytest.mark.slow
def test_run_then_runs_then_predict(project, prefect_api):
    env = {"PREFECT_API_URL": prefect_api}
    done = skflow("run", str(ROOT / "configs" / "digits.yaml"), "--set", "fit.epochs=1", "--set",
                  "fit.validation_every_n_steps=10", cwd=project, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "FINISHED" in done.stdout and "eval_accuracy" in done.stdout
    assert "loss = " in done.stderr, "the training log and progress show while the fit runs"
    predictions = project / "predictions" / "digits.parquet"
    assert predictions.exists() and f"predictions: {predictions}" in done.stdout

    listed = skflow("runs", "digits", cwd=project, env=env, timeout=120)
    assert listed.returncode == 0 and "FINISHED" in listed.stdout and "eval_accuracy" in listed.stdout

    images = project / "images.csv"
    source = read_source("sklearn:digits").drop(columns=["target"]).head(50)
    source.insert(0, "image", range(50))
    source.to_csv(images, index=False)
    out = project / "again.csv"
    predicted = skflow("predict", "models:/digits/1", str(images), str(out), "--id-column", "image", cwd=project,
                       env=env)  # fmt: skip
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    written = pd.read_csv(out)
    assert written["image"].tolist() == list(range(50))
    assert written.drop(columns=["image"]).columns.tolist() == pd.read_parquet(predictions).columns.tolist()


@pytest.mark.slow
def test_a_failed_run_exits_1_with_the_error_and_the_mlflow_run(project, prefect_api):
    rows = ["a,b,target", *(f"{i},{i % 7},{i % 3}" for i in range(300)), "1,2,3,4,5"]
    (project / "rows.csv").write_text("\n".join(rows) + "\n")
    config = {
        "experiment": "broken",
        "source": "rows.csv",
        "target": "target",
        "estimator": {"name": "LinearClassifier"},
        "fit": {"steps": 5},
        "retries": {"ingest": 0},
    }
    (project / "broken.yaml").write_text(json.dumps(config))
    done = skflow("run", "broken.yaml", cwd=project, env={"PREFECT_API_URL": prefect_api})
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Run failed: IngestError" in done.stderr and "line 302 has 5 fields" in done.stderr
    assert "ended FAILED" in done.stderr and "MLflow run " in done.stderr


@pytest.mark.slow
def test_ui_serves_the_embedded_store_on_localhost(project):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("MLFLOW_TRACKING_URI", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "ui", "--port", str(port)], cwd=project, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        healthy = False
        while time.monotonic() < deadline and process.poll() is None and not healthy:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as response:
                    healthy = response.status == 200
            except OSError:
                time.sleep(0.5)
        assert healthy, "mlflow ui did not answer"
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        output = process.communicate(timeout=30)[0]
    assert f"http://127.0.0.1:{port}" in output and str(project / "mlruns" / "mlflow.db") in output
