"""The library code under the pipeline's tasks, without Prefect: steps, validation, splits, prediction files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flows import data as steps
from flows.config import load_config
from flows.prediction import predict_to_file, resolve_model_uri
from flows.sources import demo_churn, write_demo_churn
from flows.training import total_steps

CHURN = {
    "experiment": "churn",
    "source": "demo:churn",
    "target": "churn",
    "id_column": "customer_id",
    "estimator": {"name": "DNNClassifier"},
}


@pytest.mark.parametrize(
    ("fit", "rows", "expected"),
    [({"steps": 70}, 1000, 70), ({"epochs": 2, "batch_size": 64}, 1000, 32), ({"steps": 70, "epochs": 1}, 1000, 32)],
)
def test_the_target_step_is_steps_or_epochs_whichever_comes_first(fit, rows, expected):
    config = load_config({**CHURN, "fit": fit})
    assert total_steps(config.fit, rows) == expected


def test_features_default_to_every_column_but_target_and_id_and_dates_are_refused(tmp_path):
    config = load_config(CHURN)
    dataset = steps.ingest("demo:churn?rows=200", str(tmp_path))
    with pytest.raises(ValueError, match=r"feature columns \['signup_date'\] hold dates"):
        steps.validate(dataset, config)
    timed = load_config({**CHURN, "split": {"kind": "time", "column": "signup_date"}})
    assert steps.validate(dataset, timed) == ["age", "income", "city", "plan", "autopay"]


def test_a_regression_on_a_text_target_and_missing_values_are_named(tmp_path):
    frame = demo_churn(100)
    frame.loc[[3, 7], "income"] = np.nan
    frame.to_parquet(tmp_path / "t.parquet")
    dataset = steps.ingest(str(tmp_path / "t.parquet"), str(tmp_path / "run"))
    regression = load_config({**CHURN, "source": str(tmp_path / "t.parquet"), "estimator": {"name": "DNNRegressor"},
                              "features": ["age", "income"]})  # fmt: skip
    with pytest.raises(
        ValueError, match=r"target 'churn' holds texts \(\w*string\), but a regression model predicts numbers"
    ):
        steps.validate(dataset, regression)
    classifier = load_config({**CHURN, "source": str(tmp_path / "t.parquet"), "features": ["age", "income"]})
    with pytest.raises(ValueError, match=r"missing values \{'income': 2\}.*fit.impute: mean"):
        steps.validate(dataset, classifier)


def test_a_streamed_random_split_is_seeded_and_a_time_split_holds_out_the_latest(tmp_path, monkeypatch):
    write_demo_churn(str(tmp_path / "churn"), rows=3000, parts=3)
    monkeypatch.setattr(steps, "estimated_mb", lambda source: 1e6)
    base = {**CHURN, "source": f"{tmp_path}/churn/", "fit": {"memory_budget_mb": 200}}
    config = load_config(base)
    dataset = steps.ingest(config.source, str(tmp_path / "run"), 200)
    assert dataset.streamed and dataset.rows == 3000
    features = ["age", "income"]
    first = steps.split(dataset, config, features, str(tmp_path / "a"))
    second = steps.split(dataset, config, features, str(tmp_path / "b"))
    assert (first.train_rows, first.eval_rows) == (second.train_rows, second.eval_rows)
    assert first.train_rows + first.eval_rows == 3000 and 500 < first.eval_rows < 700
    assert pd.read_parquet(first.eval).equals(pd.read_parquet(second.eval))
    timed = load_config({**base, "split": {"kind": "time", "column": "signup_date", "cutoff": "2026-11-01"}})
    split = steps.split(dataset, timed, features, str(tmp_path / "t"))
    frame = demo_churn(3000)
    assert split.eval_rows == int((frame["signup_date"] >= "2026-11-01").sum())


def test_predictions_stream_to_csv_with_the_id_column_and_no_partial_file_on_failure(tmp_path):
    write_demo_churn(str(tmp_path / "in"), rows=500, parts=2)

    def predict(chunk):
        return pd.DataFrame({"score": chunk["age"].to_numpy() / 100.0})

    out = tmp_path / "out" / "scores.csv"
    result = predict_to_file(predict, f"{tmp_path}/in/", str(out), ["age"], "customer_id", chunk_rows=64)
    written = pd.read_csv(out)
    assert result.rows == 500 and written.columns.tolist() == ["customer_id", "score"]
    assert sorted(written["customer_id"]) == list(range(1, 501))

    def broken(chunk):
        raise RuntimeError("model crashed")

    with pytest.raises(RuntimeError):
        predict_to_file(broken, f"{tmp_path}/in/", str(tmp_path / "out" / "b.parquet"), ["age"])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["scores.csv"]


def test_a_model_uri_that_names_nothing_says_so(tracking_uri):
    with pytest.raises(ValueError, match="'models:/nothing@champion' names no model"):
        resolve_model_uri("models:/nothing@champion")
    assert resolve_model_uri("file:///tmp/model") == "file:///tmp/model"


def test_keep_best_with_a_canned_estimator_is_refused_naming_what_works():
    from flows.config import ConfigError

    with pytest.raises(ConfigError, match="fit.keep_best needs estimator.model_fn"):
        load_config({**CHURN, "fit": {"validation_every_n_steps": 10, "keep_best": True}})


def test_the_flows_parameter_is_the_config_so_the_prefect_ui_shows_a_form_for_it():
    from flows.pipelines import train_flow

    schema = train_flow.parameters.model_dump()
    assert schema["required"] == ["config"]
    definitions = schema["definitions"]
    assert {"PipelineConfig", "FitConfig", "SplitConfig", "EstimatorConfig"} <= set(definitions)
    assert {"steps", "epochs", "batch_size", "early_stopping_rounds"} <= set(definitions["FitConfig"]["properties"])


@pytest.mark.parametrize(("param", "where"), [("batch_size", "fit.batch_size"), ("model_dir", "model_root")])
def test_canned_arguments_the_pipeline_sets_are_refused_naming_where_they_go(param, where):
    from flows.config import ConfigError

    with pytest.raises(ConfigError, match=rf"estimator.params {param} \(set {where}\): the pipeline sets these"):
        load_config({**CHURN, "estimator": {"name": "DNNClassifier", "params": {param: 1}}})


def test_runs_are_listed_best_first_by_each_runs_primary_metric(tracking_uri):
    from mlflow import MlflowClient

    from flows.reports import run_rows
    from flows.tracking import create_run

    client = MlflowClient(tracking_uri)
    for name, accuracy in (("worse", 0.8), ("best", 0.95), ("middle", 0.9)):
        run = create_run("ranked", run_name=name)
        client.log_metric(run.run_id, "eval_accuracy", accuracy)
        client.set_tag(run.run_id, "skflow.primary_metric", "eval_accuracy")
        client.set_tag(run.run_id, "skflow.primary_metric_goal", "max")
    unscored = create_run("ranked", run_name="unscored")
    assert unscored.run_id
    assert [r["name"] for r in run_rows("ranked")] == ["best", "middle", "worse", "unscored"]
    assert run_rows("nothing-here") == []
