"""SavedModel export and tf.distribute training."""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from estimators import Estimator, RunConfig, optimize_loss
from tests.helpers import linear_fn, mlp_fn

CFG = RunConfig(tf_random_seed=0, log_step_count_steps=0)


def test_exported_saved_model_serves_the_same_outputs_as_predict(model_dir, tmp_path, iris):
    x, y = iris
    est = Estimator(mlp_fn, model_dir=model_dir, config=CFG, params={"n_classes": 3}).fit(x, y, steps=50)
    path = est.export_saved_model(str(tmp_path / "export"))
    assert os.path.basename(path).isdigit()
    assert not [p for p in os.listdir(tmp_path / "export") if p.startswith(".tmp")]
    loaded = tf.saved_model.load(path)
    served = loaded.signatures["serving_default"](features=tf.constant(x))
    expected = est.predict(x)
    np.testing.assert_allclose(served["prob"].numpy(), expected["prob"], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(served["class"].numpy(), expected["class"])


def test_export_of_a_single_tensor_model_and_from_a_checkpoint_path(model_dir, tmp_path):
    x = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
    y = x.sum(1)
    est = Estimator(
        linear_fn,
        model_dir=model_dir,
        config=RunConfig(tf_random_seed=0, log_step_count_steps=0, save_checkpoints_steps=10),
    )
    est.fit(x, y, steps=20)
    old = tf.train.get_checkpoint_state(est.model_dir).all_model_checkpoint_paths[0]
    assert old.endswith("-10")
    path = est.export_saved_model(str(tmp_path / "e"), checkpoint_path=old)
    served = tf.saved_model.load(path).signatures["serving_default"](features=tf.constant(x))["predictions"].numpy()
    assert not np.allclose(served, est.predict(x))
    np.testing.assert_allclose(served, x @ est_kernel(old) + est_bias(old), rtol=1e-5)


def est_kernel(path):
    return tf.train.load_checkpoint(path).get_tensor("model/dense.Skernel/.ATTRIBUTES/VARIABLE_VALUE")[:, 0]


def est_bias(path):
    return tf.train.load_checkpoint(path).get_tensor("model/dense.Sbias/.ATTRIBUTES/VARIABLE_VALUE")[0]


def _dnn_fn(features, targets, mode, params):
    hidden = keras.layers.Dense(8, activation="tanh")(features)
    logits = keras.layers.Dense(3)(hidden)
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits))
    return {"prob": tf.nn.softmax(logits)}, loss, optimize_loss(loss, "SGD", 0.2)


@pytest.mark.slow
def test_mirrored_strategy_on_two_cpus_matches_the_default_strategy(tmp_path, iris):
    x, y = iris
    devices = [d.name for d in tf.config.list_logical_devices("CPU")][:2]
    assert len(devices) == 2, "conftest configures two logical CPUs"
    results = {}
    for name, strategy in (("default", None), ("mirrored", tf.distribute.MirroredStrategy(devices))):
        config = RunConfig(tf_random_seed=0, log_step_count_steps=0, train_distribute=strategy)
        # Same batches in the same order: an input_fn without shuffling.
        est = Estimator(_dnn_fn, model_dir=str(tmp_path / name), config=config, params={})
        est.fit(input_fn=lambda: tf.data.Dataset.from_tensor_slices((x, y)).batch(30).repeat(), steps=60)
        results[name] = (est.get_variable_value("dense/kernel"), est.evaluate(x, y)["loss"], est.predict(x)["prob"])
        assert est.get_variable_value("global_step") == 60
    # Float sums are reassociated across replicas; a wrong gradient scale would be off by far more.
    np.testing.assert_allclose(results["mirrored"][0], results["default"][0], rtol=1e-3, atol=1e-3)
    assert results["mirrored"][1] == pytest.approx(results["default"][1], rel=1e-3)
    np.testing.assert_allclose(results["mirrored"][2], results["default"][2], rtol=1e-3, atol=1e-3)


@pytest.mark.slow
def test_monitors_run_under_mirrored_strategy(tmp_path, iris):
    from estimators.monitors import CaptureVariable, StopAtStep, ValidationMonitor

    x, y = iris
    devices = [d.name for d in tf.config.list_logical_devices("CPU")][:2]
    config = RunConfig(
        tf_random_seed=0, log_step_count_steps=0, train_distribute=tf.distribute.MirroredStrategy(devices)
    )
    est = Estimator(_dnn_fn, model_dir=str(tmp_path / "m"), config=config, params={})
    validation = ValidationMonitor(x, y, every_n_steps=10)
    capture = CaptureVariable("dense/kernel", every_n=10, first_n=0)
    est.fit(x, y, steps=1000, batch_size=30, monitors=[validation, capture, StopAtStep(last_step=30)])
    assert est.get_variable_value("global_step") == 30
    assert [s for s, _ in validation.history] == [10, 20, 30] and sorted(capture.values) == [10, 20, 30]
    np.testing.assert_allclose(capture.values[30], est.get_variable_value("dense/kernel"))
    assert validation.history[-1][1]["loss"] == pytest.approx(est.evaluate(x, y)["loss"], rel=1e-5)


def test_an_estimator_restored_from_model_dir_exports_without_predicting_first(model_dir, tmp_path):
    x = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
    config = RunConfig(tf_random_seed=0, log_step_count_steps=0, verbose=0)
    trained = Estimator(linear_fn, model_dir=model_dir, config=config).fit(x, x.sum(1), steps=20)
    restored = Estimator(linear_fn, model_dir=model_dir, config=config)
    path = restored.export_saved_model(str(tmp_path / "e"))
    served = tf.saved_model.load(path).signatures["serving_default"](features=tf.constant(x))["predictions"].numpy()
    np.testing.assert_allclose(served, trained.predict(x), rtol=1e-5)
