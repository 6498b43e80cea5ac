"""`make demo`'s jobs, end to end.

- `flows.demo` (what `make demo` runs): Prefect's local server on a fresh PREFECT_HOME and MLflow on
  a SQLite file in a temporary project directory, in a subprocess as a user runs it: two training
  runs, the better one registered and batch-predicting a Parquet file.
- `estimators.demo`: the library alone (no Prefect, no MLflow): trains, evaluates and resumes.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from estimators import demo

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_make_demo_trains_two_runs_and_predicts_with_the_better_one(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PREFECT_HOME": str(tmp_path / ".prefect")}
    for name in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL", "PREFECT_PROFILE"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-m", "flows.demo", "--epochs", "2"], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    out = done.stdout
    assert "Runs side by side" in out and "small" in out and "wide" in out and "eval_accuracy" in out
    # Each run registered its model (versions 1 and 2); @champion names the better run's version.
    better = re.search(r"Better run: \w+ \((\w+)\).*registered as digits-demo version (\d), alias @champion", out, re.S)
    assert better is not None, out
    assert "skflow ui" in out
    predictions = pd.read_parquet(tmp_path / "predictions" / "digits-demo.parquet")
    assert len(predictions) == 1797 and predictions.columns[0] == "image_id"

    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("digits-demo")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.status for r in runs) == ["FINISHED", "FINISHED"]
    champion = client.get_model_version_by_alias("digits-demo", "champion")
    assert (champion.run_id, str(champion.version)) == better.groups()
    assert len(client.search_model_versions("name='digits-demo'")) == 2
    assert all(r.data.tags.get("prefect.flow_run_id") for r in runs)
    assert (tmp_path / "data" / "churn").is_dir(), "configs/churn.yaml's files"


def test_the_library_demo_trains_evaluates_and_resumes(tmp_path, capsys):
    model_dir = str(tmp_path / "digits")
    first = demo.main(["--model-dir", model_dir, "--steps", "300"])
    assert first["global_step"] == 300 and first["accuracy"] > 0.85
    second = demo.main(["--model-dir", model_dir, "--steps", "100"])
    assert second["global_step"] == 400
    out = capsys.readouterr().out
    assert "Checkpoints:" in out and "model.ckpt-400" in out
