"""The pyfunc model: parity with Estimator.predict from a DataFrame, and the registry's alias round trip."""

from __future__ import annotations

import os
import shutil
import time

import numpy as np
import pandas as pd
import pytest

from estimators import Estimator, RunConfig
from flows.tracking import (
    create_run,
    get_alias_version,
    load_model,
    log_model,
    register_model,
    set_alias,
)
from tests.helpers import embedding_fn, mlp_fn

CONFIG = RunConfig(tf_random_seed=0, verbose=0, log_step_count_steps=0)


def _assert_parity(frame: pd.DataFrame, expected) -> None:
    """Every output of Estimator.predict equals the pyfunc's column(s) of the same name."""
    expected = expected if isinstance(expected, dict) else {"predictions": expected}
    for name, values in expected.items():
        values = np.asarray(values)
        got = (
            frame[name].to_numpy()
            if values.ndim == 1
            else frame[[f"{name}_{i}" for i in range(values.shape[1])]].to_numpy()
        )
        if values.dtype.kind in "fc":
            np.testing.assert_allclose(got.astype(values.dtype), values, rtol=1e-5, atol=1e-6)
        else:
            np.testing.assert_array_equal(got.astype(values.dtype), values)


@pytest.fixture
def iris_model(tracking_uri, model_dir, iris):
    x, y = iris
    est = Estimator(mlp_fn, model_dir=model_dir, config=CONFIG, params={"n_classes": 3})
    est.fit(x, y, max_steps=60, batch_size=30)
    return est, create_run("models")


def test_the_pyfunc_model_predicts_what_the_estimator_predicts_from_a_float32_dataframe(iris_model, iris):
    est, run = iris_model
    x, _ = iris
    started = time.perf_counter()
    info = log_model(run, est, input_example=x, step=60)
    seconds = time.perf_counter() - started
    assert seconds < 10, (
        f"log_model took {seconds:.1f} s (target 2 s on an idle machine; MLflow's pip inference: 17-19 s)"
    )
    assert [c.name for c in info.signature.inputs.inputs] == [f"feature_{i}" for i in range(4)]
    assert {c.type.name for c in info.signature.inputs.inputs} == {"float"}
    model = load_model(info.model_uri)
    frame = pd.DataFrame(x, columns=[f"feature_{i}" for i in range(4)])
    _assert_parity(model.predict(frame), est.predict(x))


def test_the_logged_model_is_code_and_a_savedmodel_with_pinned_requirements(iris_model, iris, tmp_path):
    est, run = iris_model
    info = log_model(run, est, input_example=iris[0], feature_names=["sl", "sw", "pl", "pw"])
    local = load_model(info.model_uri, dst_path=tmp_path / "dl")
    root = tmp_path / "dl"
    files = [os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs]
    assert not [f for f in files if f.endswith((".pkl", ".pickle", ".cloudpickle"))], files
    requirements = next((root / f).read_text() for f in files if f.endswith("requirements.txt"))
    assert "tensorflow" in requirements and "numpy==" in requirements and "pandas==" in requirements
    frame = pd.DataFrame(iris[0], columns=["sl", "sw", "pl", "pw"])
    assert (local.predict(frame)["class"].to_numpy() == est.predict(iris[0])["class"]).all()


def _frame(n=60, seed=0):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "size": rng.normal(size=n).astype(np.float32),
            "weight": rng.normal(size=n).astype(np.float32),
            "color": rng.choice(["red", "green", "blue"], size=n),
        }
    )
    labels = np.where((frame["color"] == "red") | (frame["size"] > 0), "yes", "no")
    return frame, labels


def test_the_pyfunc_model_serves_raw_string_columns_and_original_labels(tracking_uri, model_dir):
    frame, labels = _frame()
    params = {"column": "color", "vocabulary_size": 4, "n_classes": 2}
    est = Estimator(embedding_fn, model_dir=model_dir, config=CONFIG, params=params)
    est.fit(frame, labels, max_steps=40, batch_size=20)
    info = log_model(create_run("models"), est, input_example=frame)
    _assert_parity(load_model(info.model_uri).predict(frame), est.predict(frame))


def test_registering_two_versions_and_moving_champion_loads_the_second(
    iris_model, iris, tracking_uri, mlflow_template_db, tmp_path, monkeypatch
):
    est, run = iris_model
    x, y = iris
    first = log_model(run, est, input_example=x)
    est.fit(x, y, max_steps=120, batch_size=30)
    second = log_model(run, est, input_example=x, step=120)
    v1 = register_model(first.model_uri, "iris")
    set_alias("iris", "champion", v1)
    assert get_alias_version("iris", "champion") == v1
    v2 = register_model(run, "iris")  # the run's latest model: the second
    set_alias("iris", "champion", v2)
    assert (v1, v2, get_alias_version("iris", "champion")) == ("1", "2", "2")
    assert get_alias_version("iris", "challenger") is None
    champion = load_model("models:/iris@champion")
    assert champion.metadata.model_id == second.model_id
    frame = pd.DataFrame(x, columns=[f"feature_{i}" for i in range(4)])
    _assert_parity(champion.predict(frame), est.predict(x))
    # An explicit store wins over the process's: MLflow alone would look the alias up in the other one.
    shutil.copy(mlflow_template_db, tmp_path / "other.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'other.db'}")
    assert load_model("models:/iris@champion", tracking_uri=tracking_uri).metadata.model_id == second.model_id
    with pytest.raises(ValueError, match=r"'models:/iris@champion' names no model in sqlite:///.*other.db"):
        load_model("models:/iris@champion")


def test_a_model_logged_to_the_tracking_server_is_registered_and_loaded_by_alias(mlflow_server, model_dir, iris):
    x, y = iris
    est = Estimator(mlp_fn, model_dir=model_dir, config=CONFIG, params={"n_classes": 3})
    est.fit(x, y, max_steps=30, batch_size=30)
    run = create_run("served")
    info = log_model(run, est, input_example=x)
    set_alias("served-iris", "champion", register_model(info.model_uri, "served-iris"))
    frame = pd.DataFrame(x, columns=[f"feature_{i}" for i in range(4)])
    _assert_parity(load_model("models:/served-iris@champion").predict(frame), est.predict(x))


def test_a_canned_model_with_awkward_column_names_and_categoricals_keeps_the_users_column_names(tracking_uri):
    from estimators import DNNClassifier
    from flows.tracking import serving_frame

    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "age (years)": rng.integers(18, 90, 80),
            "city": pd.Categorical(rng.choice(["oslo", "rome"], 80)),
            "autopay": rng.random(80) < 0.5,
        }
    )
    labels = np.where(frame["city"] == "oslo", "churn", "stay")
    clf = DNNClassifier(hidden_units=(8,), epochs=3, random_state=0).fit(frame, labels)
    info = log_model(create_run("models"), clf, input_example=frame)
    assert [c.name for c in info.signature.inputs.inputs] == ["age (years)", "city", "autopay"]
    model = load_model(info.model_uri)
    served = model.predict(serving_frame(frame))
    np.testing.assert_array_equal(served["classes"].to_numpy(), clf.predict(frame))
    np.testing.assert_allclose(served[["probabilities_0", "probabilities_1"]], clf.predict_proba(frame), atol=1e-6)
