"""The SavedModel serves raw input: one input per DataFrame column, the feeder's encoding in the graph, labels out."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

from estimators import Estimator, RunConfig
from estimators.metadata import ModelMetadata
from estimators.serving import decode_ids, label_tensor, serving_inputs, signature_keys
from feeders import TensorSignature
from tests.helpers import echo_fn, serve_frame

CONFIG = RunConfig(tf_random_seed=0, verbose=0, log_step_count_steps=0)


def _table(n: int = 40, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Numeric columns of three dtypes, and categorical, string, boolean and integer-category columns."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 90, n),
            "income": rng.lognormal(10, 0.5, n),
            "score": rng.normal(size=n).astype(np.float32),
            "city": pd.Categorical(rng.choice(["oslo", "bergen", "rome"], n)),
            "plan": rng.choice(["basic", "plus"], n),
            "member": rng.random(n) < 0.5,
            "tier": pd.Categorical(rng.choice([1, 2, 3], n)),
        }
    )
    return frame, np.where(frame["member"], "stay", "churn")


@pytest.fixture(scope="module")
def table_model(tmp_path_factory):
    frame, labels = _table()
    est = Estimator(echo_fn, model_dir=str(tmp_path_factory.mktemp("m") / "model"), config=CONFIG)
    est.fit(frame, labels, max_steps=5, batch_size=20)
    return est, frame, est.export_saved_model(str(tmp_path_factory.mktemp("export")))


def _assert_same(served: dict, expected: dict) -> None:
    assert sorted(served) == sorted(expected)
    for key, values in expected.items():
        got = served[key]
        if got.dtype.kind in "SO":
            got = got.astype(str)
        np.testing.assert_array_equal(got, values, err_msg=key)


def test_a_dataframe_model_takes_one_input_per_column_by_name_with_the_columns_dtype(table_model):
    _, _, path = table_model
    inputs = tf.saved_model.load(path).signatures["serving_default"].structured_input_signature[1]
    assert {k: (v.dtype, tuple(v.shape)) for k, v in inputs.items()} == {
        "age": (tf.int64, (None,)),
        "income": (tf.float64, (None,)),
        "score": (tf.float32, (None,)),
        "city": (tf.string, (None,)),
        "plan": (tf.string, (None,)),
        "member": (tf.bool, (None,)),
        "tier": (tf.int64, (None,)),
    }


def test_the_graph_encodes_columns_exactly_as_the_feeder_and_decodes_labels_as_predict(table_model):
    est, frame, path = table_model
    expected = est.predict(frame)
    assert set(expected["class"]) <= {"churn", "stay"}
    _assert_same(serve_frame(path, frame), expected)


def test_columns_may_come_in_any_order_and_extra_columns_are_not_inputs(table_model):
    est, frame, path = table_model
    shuffled = frame[list(reversed(frame.columns))].assign(unused=1.0)
    _assert_same(serve_frame(path, shuffled), est.predict(frame))
    serve = tf.saved_model.load(path).signatures["serving_default"]
    assert "unused" not in serve.structured_input_signature[1]
    with pytest.raises(TypeError, match="city"):  # every fitted column is required
        serve(**{k: tf.constant(frame[k].to_numpy()) for k in ("age", "income", "score")})


def test_unseen_categories_go_to_the_out_of_vocabulary_id_as_in_predict(table_model):
    est, frame, path = table_model
    unseen = frame.head(6).assign(
        city=pd.Categorical(["paris", "oslo", "lima", "rome", "oslo", "bergen"]),
        plan=["gold", "basic", "plus", "", "basic", "x"],
        tier=pd.Categorical([9, 1, 2, 3, 1, 7]),
    )
    served = serve_frame(path, unseen)
    _assert_same(served, est.predict(unseen))
    assert served["in_city"].tolist()[:3] == [3, 1, 3]  # vocabulary [bergen, oslo, rome]: out of vocabulary is 3


def test_imputed_nan_is_filled_with_the_training_means_in_the_graph(tmp_path):
    frame, labels = _table()
    holed = frame.assign(income=frame["income"].where(frame.index % 4 != 0))
    est = Estimator(echo_fn, model_dir=str(tmp_path / "m"), config=CONFIG).fit(
        holed, labels, max_steps=3, batch_size=20, impute="mean"
    )
    path = est.export_saved_model(str(tmp_path / "export"))
    inputs = tf.saved_model.load(path).signatures["serving_default"].structured_input_signature[1]
    assert inputs["age"].dtype == tf.float64  # an integer column, served as floats: missing ages are imputed too
    holed = holed.assign(age=holed["age"].where(holed.index % 5 != 1))
    served = serve_frame(path, holed)
    _assert_same(served, est.predict(holed))
    assert not np.isnan(served["in_numeric"]).any()


def test_nan_without_impute_is_an_error_naming_the_column(table_model):
    _, frame, path = table_model
    holed = frame.head(4).assign(income=[1.0, np.nan, 2.0, 3.0])
    with pytest.raises(tf.errors.InvalidArgumentError, match="NaN or infinity in column 'income'"):
        serve_frame(path, holed)


def test_a_model_restored_from_its_model_dir_or_a_pickle_exports_the_same_signature(table_model, tmp_path):
    est, frame, path = table_model
    restored = Estimator(echo_fn, model_dir=est.model_dir, config=CONFIG)
    again = restored.export_saved_model(str(tmp_path / "restored"))
    copy = pickle.loads(pickle.dumps(est)).export_saved_model(str(tmp_path / "pickled"))
    expected = est.predict(frame)
    for other in (again, copy):
        signature = tf.saved_model.load(other).signatures["serving_default"].structured_input_signature
        assert signature == tf.saved_model.load(path).signatures["serving_default"].structured_input_signature
        _assert_same(serve_frame(other, frame), expected)


def test_a_model_saved_before_column_dtypes_were_recorded_serves_numeric_columns_as_float64(table_model, tmp_path):
    est, frame, _ = table_model
    old = tmp_path / "old"
    shutil.copytree(est.model_dir, old)
    meta = json.loads((old / "skflow.json").read_text())
    del meta["column_dtypes"]
    (old / "skflow.json").write_text(json.dumps(meta))
    path = Estimator(echo_fn, model_dir=str(old), config=CONFIG).export_saved_model(str(tmp_path / "export"))
    inputs = tf.saved_model.load(path).signatures["serving_default"].structured_input_signature[1]
    assert {k: inputs[k].dtype for k in ("age", "income", "score", "city", "member", "tier")} == {
        "age": tf.float64,
        "income": tf.float64,
        "score": tf.float64,
        "city": tf.string,
        "member": tf.bool,
        "tier": tf.int64,
    }
    _assert_same(serve_frame(path, frame), est.predict(frame))


def test_column_names_that_are_not_signature_keys_are_sanitised_and_the_mapping_is_recorded(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(30, 4)), columns=["zip code", "2nd", "class", "zip_code"])
    est = Estimator(echo_fn, model_dir=str(tmp_path / "m"), config=CONFIG)
    est.fit(frame, (frame["2nd"] > 0).astype(int).to_numpy(), max_steps=3)
    path = est.export_saved_model(str(tmp_path / "export"))
    loaded = tf.saved_model.load(path)
    keys = [k.decode() for k in loaded.input_keys.numpy()]
    assert keys == ["zip_code_2", "col_2nd", "class_", "zip_code"]
    assert [c.decode() for c in loaded.input_columns.numpy()] == list(frame.columns)
    assert sorted(loaded.signatures["serving_default"].structured_input_signature[1]) == sorted(keys)
    _assert_same(serve_frame(path, frame), est.predict(frame))


def test_signature_keys_keep_valid_names_and_make_the_others_valid_and_unique():
    assert signature_keys(["city", "zip code", "2nd", "class", "zip_code", "é", "", "a-b", "a_b"]) == [
        "city",
        "zip_code_2",
        "col_2nd",
        "class_",
        "zip_code",
        "col__",
        "col_",
        "a_b_2",
        "a_b",
    ]


def test_boolean_labels_are_served_as_booleans(tmp_path):
    frame, _ = _table()
    labels = frame["age"].to_numpy() > 50
    est = Estimator(echo_fn, model_dir=str(tmp_path / "m"), config=CONFIG)
    est.fit(frame, pd.Series(labels), max_steps=3, batch_size=20)
    served = serve_frame(est.export_saved_model(str(tmp_path / "export")), frame)
    assert served["class"].dtype == np.bool_
    _assert_same(served, est.predict(frame))


def test_label_tensors_keep_the_labels_kind_and_ids_outside_the_classes_decode_to_themselves():
    ids = tf.constant([0, 2, 5, -1], tf.int64)
    assert decode_ids(ids, label_tensor(["a", "b", "c"])).numpy().tolist() == [b"a", b"c", b"5", b"-1"]
    assert decode_ids(ids, label_tensor(np.array([3, 5, 7]))).numpy().tolist() == [3, 7, 5, -1]
    assert label_tensor([False, True]).dtype == tf.bool
    assert label_tensor(np.array([0.5, 1.5])).dtype == tf.float64
    assert label_tensor(np.array(["x", "y"], dtype=object)).dtype == tf.string


def test_a_file_fitted_model_takes_one_float_input_per_feature_column(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3)).astype(np.float32)
    pq.write_table(
        pa.table({"b": x[:, 1], "a": x[:, 0], "c": x[:, 2], "label": (x[:, 0] > 0).astype(np.int64)}),
        tmp_path / "train.parquet",
    )
    est = Estimator(echo_fn, model_dir=str(tmp_path / "m"), config=CONFIG)
    est.fit(str(tmp_path / "train.parquet"), "label", max_steps=3, batch_size=20)
    path = est.export_saved_model(str(tmp_path / "export"))
    inputs = tf.saved_model.load(path).signatures["serving_default"].structured_input_signature[1]
    assert {k: v.dtype for k, v in inputs.items()} == {"b": tf.float32, "a": tf.float32, "c": tf.float32}
    frame = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2]})
    _assert_same(serve_frame(path, frame), est.predict(str(tmp_path / "train.parquet")))


def test_an_array_model_keeps_its_features_input_and_fills_nan_when_fitted_with_impute(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    x[::5, 1] = np.nan
    est = Estimator(echo_fn, model_dir=str(tmp_path / "m"), config=CONFIG)
    est.fit(x, (rng.random(40) > 0.5).astype(int), max_steps=3, impute="mean")
    path = est.export_saved_model(str(tmp_path / "export"))
    serve = tf.saved_model.load(path).signatures["serving_default"]
    assert list(serve.structured_input_signature[1]) == ["features"]
    served = {k: v.numpy() for k, v in serve(features=tf.constant(x)).items()}
    _assert_same(served, est.predict(x))
    assert not np.isnan(served["in_features"]).any()


def test_an_unknown_feeder_state_is_named_in_the_export_error(tmp_path):
    meta = ModelMetadata(str(tmp_path), "Estimator", "model_fn")
    meta.features = TensorSignature(tf.float32, (3,))
    meta.feeder_state = {"type": "arrow-stream", "schema": []}
    with pytest.raises(ValueError, match="feeder whose saved state is of kind 'arrow-stream'"):
        serving_inputs(meta)


_LOAD_WITHOUT_SKFLOW = """
import json, sys
import numpy as np
import tensorflow as tf
feeds, expected = json.load(open(sys.argv[2]))
serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
specs = serve.structured_input_signature[1]
out = serve(**{k: tf.constant(v, specs[k].dtype) for k, v in feeds.items()})
assert [c.decode() for c in out["class"].numpy()] == expected, out["class"]
skflow = sorted(m for m in sys.modules if m.split(".")[0] in ("estimators", "feeders", "flows", "tests"))
assert not skflow, skflow
print("served", len(expected))
"""


def test_the_export_serves_in_a_process_that_never_imports_skflow(table_model, tmp_path):
    est, frame, path = table_model
    rows = frame.head(5)
    feeds = {c: rows[c].astype(object).tolist() for c in rows}  # strings, ints, floats and booleans
    with open(tmp_path / "case.json", "w") as f:
        json.dump([feeds, est.predict(rows)["class"].tolist()], f)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", _LOAD_WITHOUT_SKFLOW, path, str(tmp_path / "case.json")],
        cwd=tmp_path,
        env={**env, "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "served 5" in result.stdout
