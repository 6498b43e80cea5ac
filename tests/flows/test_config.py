"""PipelineConfig: everything checkable without doing the work is checked at load time, by name."""

from __future__ import annotations

import pytest

from flows.config import ConfigError, PipelineConfig, canned_signature_matches, load_config

BASE = {
    "experiment": "digits",
    "source": "sklearn:digits",
    "target": "target",
    "estimator": {"name": "DNNClassifier", "params": {"hidden_units": [8]}},
}


def _with(**changes):
    return {**BASE, **changes}


def test_a_minimal_config_gets_sane_defaults():
    config = load_config(BASE)
    assert config.fit.epochs == 10 and config.fit.batch_size == 32
    assert config.split.kind == "random" and config.split.test_size == 0.2
    assert config.tracking.log_every_n_steps == 100 and config.retries.ingest == 2
    assert config.estimator.is_classifier is True


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"estimator": {"name": "DNNClassifer"}},
            r"estimator.name 'DNNClassifer' is not a canned estimator; expected one of \['DNNClassifier'",
        ),
        (
            {"estimator": {"name": "LinearRegressor", "params": {"hidden_units": [4]}}},
            r"estimator.params \['hidden_units'\] are not arguments of LinearRegressor",
        ),
        (
            {"estimator": {"model_fn": "no_such_package.models:fn"}},
            r"estimator.model_fn 'no_such_package.models:fn': module 'no_such_package.models' does not import",
        ),
        ({"estimator": {"model_fn": "tests.helpers:no_such_fn"}}, r"module 'tests.helpers' has no 'no_such_fn'"),
        ({"estimator": {"model_fn": "tests.helpers"}}, r"must be 'package.module:function'"),
        (
            {"estimator": {"name": "DNNClassifier", "model_fn": "tests.helpers:mlp_fn"}},
            r"exactly one of estimator.name",
        ),
        (
            {"estimator": {"name": "DNNClassifier", "config": {"seed": 1}}},
            r"estimator.config \['seed'\] are not RunConfig fields",
        ),
        ({"fit": {"epochs": "many"}}, r"fit.epochs: Input should be a valid integer.*\(received 'many'\)"),
        ({"fit": {"epoch": 3}}, r"fit.epoch: unknown field"),
        ({"fit": {"keep_best": True}}, r"keep_best need fit.validation_every_n_steps"),
        ({"source": "sklearn:mnist"}, r"scikit-learn bundles \['sklearn:breast_cancer'"),
        ({"source": {"sql": "select 1"}}, r"source.url: Field required"),
        ({"metrics": ["acc"]}, r"metrics \['acc'\] are not known metrics"),
        ({"metrics": ["mse"]}, r"metrics \['mse'\] do not fit a classification model"),
        ({"split": {"kind": "time"}}, r"split.kind 'time' needs split.column"),
        ({"predict": {"source": "x.csv", "output": "y.txt"}}, r"predict.output 'y.txt' must end in .parquet or .csv"),
        ({"features": ["pixel_0", "target"]}, r"the target 'target' is also listed in features"),
        ({"target": None}, r"target: Input should be a valid string"),
        ({"colour": "red"}, r"colour: unknown field"),
    ],
)
def test_invalid_configs_are_rejected_naming_the_field_and_what_is_allowed(changes, message):
    with pytest.raises(ConfigError, match=message):
        load_config(_with(**changes))


def test_a_directory_as_tracking_uri_is_refused_with_the_sqlite_spelling(monkeypatch):
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    with pytest.raises(
        ConfigError, match=r"tracking.uri: '/srv/mlruns' is a directory.*'sqlite:////srv/mlruns/mlflow.db'"
    ):
        load_config(_with(tracking={"uri": "/srv/mlruns"}))
    assert load_config(_with(tracking={"uri": "sqlite:///m.db"})).tracking.uri == "sqlite:///m.db"
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow's own opt-out
    assert load_config(_with(tracking={"uri": "/srv/mlruns"})).tracking.uri == "/srv/mlruns"


def test_a_missing_required_field_is_named():
    with pytest.raises(ConfigError, match=r"target: Field required"):
        load_config({k: v for k, v in BASE.items() if k != "target"})


def test_yaml_files_and_set_overrides(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("experiment: e\nsource: sklearn:iris\ntarget: target\nestimator:\n  name: LinearClassifier\n")
    config = PipelineConfig.from_yaml(
        path, ["fit.epochs=3", "estimator.params.learning_rate=0.1", "metrics=[accuracy]"]
    )
    assert config.fit.epochs == 3 and config.estimator.params == {"learning_rate": 0.1}
    assert config.metrics == ["accuracy"]
    with pytest.raises(ConfigError, match=r"--set 'fit.epochs': expected key.path=value"):
        PipelineConfig.from_yaml(path, ["fit.epochs"])
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("experiment: [unclosed\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_config(tmp_path / "bad.yaml")


def test_the_known_canned_arguments_are_the_real_constructors():
    assert canned_signature_matches() == {}


def test_exponent_numbers_without_a_dot_are_floats_in_files_and_overrides(tmp_path):
    """PyYAML (YAML 1.1) would read `1e-4` as a string; configs read it as the number people mean."""
    path = tmp_path / "c.yaml"
    path.write_text(
        "experiment: e\nsource: sklearn:iris\ntarget: target\n"
        "estimator: {name: DNNClassifier, params: {learning_rate: 1e-3, hidden_units: [4]}}\n"
    )
    config = load_config(path, ["estimator.params.dropout=5E-1"])
    assert config.estimator.params["learning_rate"] == 0.001
    assert config.estimator.params["dropout"] == 0.5
    assert load_config(path, ["experiment=1e5x"]).experiment == "1e5x"  # not a number: stays text
