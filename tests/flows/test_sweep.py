"""`skflow sweep`: the search space, its checks, and a real sweep on two Dask worker processes.

The sweep test runs the command as a user does (a subprocess on the session's Prefect test server,
a SQLite MLflow store of its own): three tiny iris trials, one of which fails inside training (an
unknown optimizer, which the config cannot know about); it then reads the MLflow store.
"""

from __future__ import annotations

import shutil

import pytest
import yaml

from flows.config import ConfigError
from flows.sweep_space import draw_trials, parse_space, prepare_sweep
from tests.flows.conftest import IRIS_PIPELINE
from tests.flows.test_cli import ROOT, skflow

SWEEP_TIMEOUT_S = 400


def test_a_grid_is_every_combination_in_order_with_readable_names():
    space = parse_space(["estimator.params.learning_rate=0.01,0.1", "estimator.params.hidden_units=[8],[16,16]"], [])
    trials = draw_trials(space)
    assert [t.values for t in trials] == [
        {"estimator.params.learning_rate": lr, "estimator.params.hidden_units": h}
        for lr in (0.01, 0.1)
        for h in ([8], [16, 16])
    ]
    assert trials[3].name == "trial-4 learning_rate=0.1 hidden_units=[16,16]"
    assert trials[3].overrides() == ["estimator.params.learning_rate=0.1", "estimator.params.hidden_units=[16, 16]"]


def test_a_random_search_is_reproducible_with_its_seed_and_stays_in_bounds():
    space = parse_space(
        ["estimator.params.optimizer=Adam,SGD"],
        ["estimator.params.learning_rate=loguniform(1e-4,1e-1)", "fit.batch_size=int(8,64)"],
    )
    first, again, other = (draw_trials(space, random=20, seed=s) for s in (7, 7, 8))
    assert [t.values for t in first] == [t.values for t in again]
    assert [t.values for t in first] != [t.values for t in other]
    for trial in first:
        assert 1e-4 <= trial.values["estimator.params.learning_rate"] <= 1e-1
        assert isinstance(trial.values["fit.batch_size"], int) and 8 <= trial.values["fit.batch_size"] <= 64
    assert {t.values["estimator.params.optimizer"] for t in first} == {"Adam", "SGD"}


@pytest.mark.parametrize(
    ("grid", "samples", "random", "message"),
    [
        ([], [], None, "nothing to sweep"),
        ([], ["estimator.params.learning_rate=loguniform(1e-4,1e-1)"], None, "needs --random N"),
        ([], ["estimator.params.learning_rate=lognormal(0,1)"], 4, "expected one of uniform"),
        ([], ["estimator.params.learning_rate=loguniform(0,1)"], 4, "loguniform needs 0 < low < high"),
        (["estimator.params.learning_rate"], [], None, "expected FIELD=..."),
        (["fit.batch_size=16", "fit.batch_size=32"], [], None, "--grid fit.batch_size is given twice"),
        (["fit.batch_sise=16,32"], [], None, "trial-1 batch_sise=16: config is not a valid pipeline config"),
        (["fit.batch_size=16,-1"], [], None, "fit.batch_size: Input should be greater than or equal to 1"),
        (["estimator.params.learning_rat=0.1"], [], None, "['learning_rat'] are not arguments of DNNClassifier"),
    ],
)
def test_a_bad_sweep_is_a_config_error_naming_the_option_or_field(grid, samples, random, message):
    with pytest.raises(ConfigError) as caught:
        prepare_sweep(IRIS_PIPELINE, grid=grid, samples=samples, random=random)
    assert message in str(caught.value)


def test_the_command_refuses_a_bad_field_with_exit_2_before_anything_starts(tmp_path):
    done = skflow(
        "sweep", str(ROOT / "configs" / "digits.yaml"), "--grid", "fit.epoch=1,2", cwd=tmp_path,
        env={"PREFECT_API_URL": "http://127.0.0.1:9/api"}, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "Invalid sweep: trial-1 epoch=1" in done.stderr and "fit.epoch: unknown field" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "models").exists()


@pytest.fixture(scope="module")
def swept(prefect_api, tmp_path_factory, mlflow_template_db):
    """One real sweep: 3 iris trials on 2 local Dask workers, the third failing inside its fit."""
    root = tmp_path_factory.mktemp("sweep")
    (root / "mlruns").mkdir()
    shutil.copy(mlflow_template_db, root / "mlruns" / "mlflow.db")
    config = {**IRIS_PIPELINE, "retries": {"ingest": 0, "fit": 0, "delay_seconds": 0}}
    (root / "iris.yaml").write_text(yaml.safe_dump(config))
    uri = f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"
    done = skflow(
        "sweep", "iris.yaml", "--set", f"tracking.uri={uri}", "--grid", "estimator.params.optimizer=Adam,SGD,NoSuchOptimizer",
        "--workers", "2", "--model-name", "iris-sweep", cwd=root, env={"PREFECT_API_URL": prefect_api},
        timeout=SWEEP_TIMEOUT_S,
    )  # fmt: skip
    return done, uri


def _runs(uri: str):
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("iris")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    parents = [r for r in runs if r.data.tags.get("skflow.sweep") == "parent"]
    assert len(parents) == 1
    parent = parents[0]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    return client, parent, {int(r.data.tags["skflow.sweep.trial"]): r for r in children}


def test_a_sweep_with_a_failing_trial_succeeds_and_prints_the_trials_best_first(swept):
    done, _ = swept
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "2 of 3 trials finished" in done.stdout
    rows = [line for line in done.stdout.splitlines() if "estimator.params.optimizer=" in line]
    assert len(rows) == 3 and "NoSuchOptimizer" in rows[-1] and "FAILED: ValueError: Unknown optimizer" in rows[-1]
    assert "registered: models:/iris-sweep@challenger (version 1)" in done.stdout


def test_each_trial_is_a_child_run_of_the_sweep_and_the_failed_one_records_its_error(swept):
    done, uri = swept
    _, parent, children = _runs(uri)
    assert parent.info.status == "FINISHED"
    assert sorted(children) == [1, 2, 3]
    assert children[1].info.run_name == "trial-1 optimizer=Adam"
    assert [children[n].info.status for n in (1, 2, 3)] == ["FINISHED", "FINISHED", "FAILED"]
    assert "Unknown optimizer 'NoSuchOptimizer'" in children[3].data.tags["skflow.error"]
    assert parent.data.params["sweep.space.estimator.params.optimizer"] == '["Adam", "SGD", "NoSuchOptimizer"]'
    assert parent.data.metrics["trials_finished"] == 2 and parent.data.metrics["trials_failed"] == 1
    tried = {n: children[n].data.params["sweep.estimator.params.optimizer"] for n in (1, 2, 3)}
    assert tried == {1: "Adam", 2: "SGD", 3: "NoSuchOptimizer"}
    assert [children[n].data.params["estimator.optimizer"] for n in (1, 2)] == ["Adam", "SGD"]  # what trained


def test_the_best_trial_is_registered_as_challenger(swept):
    done, uri = swept
    client, parent, children = _runs(uri)
    scores = {n: children[n].data.metrics["eval_accuracy"] for n in (1, 2)}
    best = max(scores, key=scores.get)
    assert parent.data.tags["skflow.sweep.best_run_id"] == children[best].info.run_id
    assert parent.data.metrics["best_eval_accuracy"] == pytest.approx(scores[best])
    version = client.get_model_version_by_alias("iris-sweep", "challenger")
    assert version.run_id == children[best].info.run_id
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"sweep_results.json", "sweep_summary.md"} <= artifacts
