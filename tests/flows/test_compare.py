"""Comparing runs: the params that differ, the metrics, overlaid curves, the MLflow UI URL."""

from __future__ import annotations

import json
import os
from urllib.parse import unquote

import pytest
from mlflow import MlflowClient

from flows.compare import compare_runs


def _run(client, experiment_id, name, params, losses, val_losses, final):
    run = client.create_run(experiment_id, run_name=name)
    run_id = run.info.run_id
    for key, value in params.items():
        client.log_param(run_id, key, value)
    for step, value in losses:
        client.log_metric(run_id, "loss", value, step=step)
    for step, value in val_losses:
        client.log_metric(run_id, "val_loss", value, step=step)
    client.log_metric(run_id, "eval_accuracy", final, step=losses[-1][0])
    client.set_terminated(run_id)
    return run_id


def test_compare_shows_differing_params_metrics_and_curves_and_links_the_ui(tracking_uri, tmp_path):
    client = MlflowClient(tracking_uri)
    experiment = client.create_experiment("cmp", artifact_location=(tmp_path / "art").as_uri())
    a = _run(client, experiment, "small", {"estimator.hidden_units": "(8,)", "batch_size": "32"},
             [(100, 0.9), (200, 0.5)], [(100, 1.0), (200, 0.7)], 0.81)  # fmt: skip
    b = _run(client, experiment, "large", {"estimator.hidden_units": "(64, 64)", "batch_size": "32"},
             [(100, 0.8), (200, 0.3)], [(100, 0.9), (200, 0.5)], 0.92)  # fmt: skip
    result = compare_runs([a, b], output_dir=str(tmp_path / "out"))
    assert list(result.runs["name"]) == ["small", "large"] and set(result.runs["status"]) == {"FINISHED"}
    assert list(result.params.index) == ["estimator.hidden_units"]  # batch_size is the same in both
    assert result.params.loc["estimator.hidden_units"].tolist() == ["(8,)", "(64, 64)"]
    assert result.metrics.loc["eval_accuracy"].tolist() == pytest.approx([0.81, 0.92])
    assert os.path.getsize(result.plot_path) > 5000
    logged = [f.path for f in client.list_artifacts(a, "compare")]
    assert logged == [f"compare/{os.path.basename(result.plot_path)}"]
    url = unquote(result.ui_url)
    assert url.startswith("http://127.0.0.1:5000/#/compare-runs?runs=")
    assert json.loads(url.split("runs=")[1].split("&")[0]) == [a, b]
    assert json.loads(url.split("experiments=")[1]) == [experiment]


def test_an_unknown_run_id_is_named(tracking_uri):
    with pytest.raises(ValueError, match=r"No run 'deadbeef' in sqlite"):
        compare_runs(["deadbeef"])


def test_skflow_compare_prints_the_params_that_differ_the_metrics_the_png_and_the_ui_url(tracking_uri, tmp_path):
    client = MlflowClient(tracking_uri)
    experiment = client.create_experiment("cmp-cli", artifact_location=(tmp_path / "art").as_uri())
    a = _run(client, experiment, "lr-0.1", {"opt_learning_rate": "0.1", "batch_size": "32"},
             [(10, 0.9), (20, 0.5)], [(20, 0.7)], 0.81)  # fmt: skip
    b = _run(client, experiment, "lr-0.01", {"opt_learning_rate": "0.01", "batch_size": "32"},
             [(10, 0.8), (20, 0.6)], [(20, 0.65)], 0.85)  # fmt: skip
    from typer.testing import CliRunner

    from flows.cli import app

    result = CliRunner().invoke(app, ["compare", a, b, "--output-dir", str(tmp_path / "png")])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "opt_learning_rate" in out and "batch_size" not in out  # only what differs
    assert "eval_accuracy" in out and "0.81" in out and "0.85" in out
    png = out.split("curves: ")[1].split()[0]
    assert png.startswith(str(tmp_path / "png")) and os.path.getsize(png) > 5000
    assert "MLflow UI: http://127.0.0.1:5000/#/compare-runs?runs=" in out
