"""Retraining: champion/challenger on the newest data, with real TensorFlow, Prefect and MLflow.

One champion is trained per module (`train_flow` on 30 days of partitions, where y = x0 + x1 > 0),
into a template SQLite store; each test copies the store's database and the data directory, adds a
partition, and retrains. The new partition either keeps the relation (a barely trained challenger
then loses) or flips it (the champion then scores ~0 on the new rows and a trained challenger wins).
"""

from __future__ import annotations

import re
import shutil

import numpy as np
import pandas as pd
import pytest

from flows.config import ConfigError, load_config

pytestmark = pytest.mark.usefixtures("prefect_api")

NAME = "retrain-test"


def partition(day0: int, days: int = 30, flipped: bool = False, seed: int = 0, rows_per_day: int = 12) -> pd.DataFrame:
    """Rows of `days` days from `day0`: y = (x0 + x1 > 0), or its opposite when `flipped`, with a margin."""
    rng = np.random.default_rng(seed)
    n = days * rows_per_day
    x = rng.normal(size=(n * 2, 2))
    x = x[np.abs(x.sum(axis=1)) > 0.4][:n]
    y = (x.sum(axis=1) > 0).astype("int64")
    return pd.DataFrame(
        {
            "day": pd.Timestamp("2026-01-01") + pd.to_timedelta(day0 + np.arange(n) // rows_per_day, unit="D"),
            "x0": x[:, 0],
            "x1": x[:, 1],
            "color": rng.choice(["red", "blue"], size=n),
            "y": 1 - y if flipped else y,
        }
    )


def pipeline(data_dir, root, uri, **retrain) -> dict:
    return {
        "experiment": NAME,
        "source": str(data_dir),
        "target": "y",
        "split": {"kind": "time", "column": "day", "test_size": 0.25},
        "estimator": {"name": "DNNClassifier", "params": {"hidden_units": [8], "learning_rate": 0.05}},
        "fit": {"steps": 60, "batch_size": 32},
        "tracking": {"uri": uri, "log_every_n_steps": 20},
        "retries": {"ingest": 0, "fit": 0, "delay_seconds": 0},
        "retrain": retrain,
        "model_root": str(root / "models"),
    }


BAD = ["fit.steps=1", "estimator.params.learning_rate=0.000001"]


@pytest.fixture(scope="module")
def champion_store(tmp_path_factory, mlflow_template_db, prefect_api):
    """A store whose registered model `retrain-test` has one version (the champion), and its data."""
    from flows.pipelines import train_flow

    root = tmp_path_factory.mktemp("retrain_champion")
    data = root / "data"
    data.mkdir()
    partition(0).to_parquet(data / "part-000.parquet", index=False)
    db = root / "mlflow.db"
    shutil.copy(mlflow_template_db, db)
    result = train_flow(load_config(pipeline(data, root, f"sqlite:///{db}")))
    assert result.model_alias == "champion" and result.model_version == "1"
    return root, result


@pytest.fixture
def store(champion_store, tmp_path):
    """A copy of the champion's store and data for this test: (data_dir, config maker, tracking URI)."""
    root, _ = champion_store
    db = tmp_path / "mlflow.db"
    shutil.copy(root / "mlflow.db", db)
    data = tmp_path / "data"
    shutil.copytree(root / "data", data)
    uri = f"sqlite:///{db}"

    def make(*overrides: str, **retrain):
        return load_config(pipeline(data, tmp_path, uri, **retrain), list(overrides))

    return data, make, uri


def _client(uri):
    from mlflow import MlflowClient

    return MlflowClient(uri)


def test_no_new_data_trains_nothing_and_says_so(store):
    from flows.retrain import retrain_flow

    _, make, uri = store
    runs_before = len(_client(uri).search_runs([_client(uri).get_experiment_by_name(NAME).experiment_id]))
    result = retrain_flow(make())
    assert result.skipped and "No new data" in result.reason and result.run_id is None
    assert result.champion_version == "1"
    runs_after = len(_client(uri).search_runs([_client(uri).get_experiment_by_name(NAME).experiment_id]))
    assert runs_after == runs_before


def test_a_better_challenger_is_promoted_and_models_alias_champion_then_loads_it(store, tmp_path):
    from flows.pipelines import batch_predict_flow
    from flows.retrain import retrain_flow

    data, make, uri = store
    new = partition(30, flipped=True, seed=1)  # the relation flipped: the champion is now wrong
    new.to_parquet(data / "part-001.parquet", index=False)
    result = retrain_flow(make(window_days=29, metric="accuracy"))
    assert result.promoted and not result.skipped
    assert result.challenger_score > 0.9 > 0.2 > result.champion_score
    assert (result.challenger_version, result.champion_version) == ("2", "2")
    client = _client(uri)
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "2"
    run = client.get_run(result.run_id)
    assert run.data.tags["skflow.promotion.decision"] == "promoted"
    assert run.data.metrics["retrain.champion_accuracy"] == pytest.approx(result.champion_score)
    assert client.get_model_version(NAME, "2").tags["skflow.promotion.reason"] == result.reason
    assert {a.path for a in client.list_artifacts(result.run_id, "drift")} == {"drift/report.txt", "drift/report.json"}
    # The alias is resolved when a batch prediction runs: it is the challenger's model now.
    output = tmp_path / "predictions.parquet"
    batch_predict_flow(f"models:/{NAME}@champion", str(data / "part-001.parquet"), str(output), tracking_uri=uri)
    predicted = pd.read_parquet(output)
    assert (predicted["classes"].astype(str) == new["y"].astype(str)).mean() > 0.9


def test_a_worse_challenger_is_not_promoted_and_the_decision_is_recorded(store):
    from flows.retrain import retrain_flow

    data, make, uri = store
    partition(30, seed=2).to_parquet(data / "part-001.parquet", index=False)
    result = retrain_flow(make(*BAD, metric="log_loss", min_delta=0.01))
    assert not result.promoted and result.champion_version == "1" and result.challenger_version == "2"
    assert result.challenger_score > result.champion_score  # log loss: lower is better
    client = _client(uri)
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "1"
    assert str(client.get_model_version_by_alias(NAME, "challenger").version) == "2"  # a later version's alias
    version = client.get_model_version(NAME, "2")
    assert version.tags["skflow.model_dir"] == result.model_dir
    assert version.tags["skflow.promotion.decision"] == "kept champion"
    tags = client.get_run(result.run_id).data.tags
    assert tags["skflow.promotion.decision"] == "kept champion"
    assert "worse" in tags["skflow.promotion.reason"]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda f: f.drop(columns=["x1"]), "['x1'] are missing"),
        (lambda f: f.assign(x0=f["x0"].map("{:.2f}".format)), "'x0' (numeric -> categorical)"),
    ],
    ids=["missing-column", "retyped-column"],
)
def test_a_schema_change_fails_the_retrain_before_training(store, change, named):
    from flows.drift import SchemaError
    from flows.retrain import retrain_flow

    data, make, uri = store
    change(partition(30, seed=3)).to_parquet(data / "part-001.parquet", index=False)
    client = _client(uri)
    experiment = client.get_experiment_by_name(NAME).experiment_id
    runs_before = len(client.search_runs([experiment]))
    with pytest.raises(SchemaError, match=re.escape(named)) as raised:
        retrain_flow(make())
    assert "part-001.parquet" in str(raised.value)
    assert len(client.search_runs([experiment])) == runs_before  # nothing trained, no run
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "1"


def test_a_warm_started_challenger_continues_from_the_champions_step(store, champion_store):
    from flows.retrain import retrain_flow

    data, make, uri = store
    partition(30, seed=4).to_parquet(data / "part-001.parquet", index=False)
    result = retrain_flow(make("fit.steps=5", warm_start=True))
    run = _client(uri).get_run(result.run_id)
    from flows.training import checkpoint_step

    assert checkpoint_step(result.model_dir) == checkpoint_step(champion_store[1].model_dir) + 5 == 65
    assert run.data.tags["skflow.promotion.decision"] in ("promoted", "kept champion")


def test_retrain_settings_are_checked_when_the_config_loads(tmp_path):
    base = pipeline(tmp_path, tmp_path, "sqlite:///x.db")
    base["split"] = {"kind": "random"}
    with pytest.raises(ConfigError, match="retrain.window_days and retrain.since need retrain.date_column"):
        load_config(base, ["retrain.window_days=30"])
    with pytest.raises(ConfigError, match=r"retrain.metric 'mae' is not one"):
        load_config(base, ["retrain.metric=mae"])
    with pytest.raises(ConfigError, match="retrain.min_delta"):
        load_config(base, ["retrain.min_delta=-0.1"])
    assert load_config(base).registered_model_name == NAME


def _write_config(store, path, **changes):
    import json

    _, make, _ = store
    config = make().model_dump(mode="json", exclude_none=True)
    for key, value in changes.items():
        section, _, field = key.partition("__")
        config[section][field] = value
    path.write_text(json.dumps(config))
    return path


def test_skflow_retrain_prints_the_decision_and_exits_0_when_there_is_nothing_new(store, tmp_path, prefect_api):
    from tests.flows.test_cli import skflow

    config = _write_config(store, tmp_path / "retrain.yaml")
    done = skflow("retrain", str(config), cwd=tmp_path, env={"PREFECT_API_URL": prefect_api})
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"{NAME}: nothing trained. No new data since the last retrain" in done.stdout


def test_skflow_retrain_exits_2_on_a_config_that_cannot_retrain(store, tmp_path):
    from tests.flows.test_cli import skflow

    config = _write_config(store, tmp_path / "retrain.yaml", tracking__log_model=False)
    done = skflow("retrain", str(config), cwd=tmp_path, env={"PREFECT_API_URL": "http://127.0.0.1:9/api"})
    assert done.returncode == 2
    assert "Invalid config: a retrain compares logged models: set tracking.log_model: true" in done.stderr
