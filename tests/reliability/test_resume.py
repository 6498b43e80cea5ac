"""Interrupt, kill and resume: no step lost, none run twice, model_dir never corrupted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import tensorflow as tf

from estimators import Estimator, RunConfig
from estimators.monitors import BaseMonitor
from tests.helpers import mlp_fn

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PARAMS = {"n_classes": 3}


def _est(model_dir, **config):
    cfg = RunConfig(tf_random_seed=0, log_step_count_steps=0, **config)
    return Estimator(mlp_fn, model_dir=model_dir, params=PARAMS, config=cfg)


class InterruptingMonitor(BaseMonitor):
    """Raises at step k, like Keras' own interrupt-and-resume tests."""

    def __init__(self, at_step, exc=RuntimeError):
        super().__init__()
        self.at_step, self.exc = at_step, exc

    def next_step(self, step):
        return self.at_step if step < self.at_step else None

    def step_end(self, step, outputs):
        if step == self.at_step:
            raise self.exc(f"interrupted at {step}")
        return False


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_interrupted_fit_resumes_to_exactly_max_steps(model_dir, iris, exc):
    with pytest.raises(exc, match="interrupted at 37"):
        _est(model_dir).fit(*iris, max_steps=100, monitors=[InterruptingMonitor(37, exc)])
    assert _est(model_dir).latest_checkpoint().endswith("model.ckpt-37")
    resumed = _est(model_dir).fit(*iris, max_steps=100)
    assert resumed.get_variable_value("global_step") == 100
    assert resumed.evaluate(*iris)["global_step"] == 100


def test_interrupted_fit_on_the_same_object_keeps_its_step(model_dir, iris):
    est = _est(model_dir)
    with pytest.raises(RuntimeError):
        est.fit(*iris, max_steps=50, monitors=[InterruptingMonitor(20)])
    est.fit(*iris, max_steps=50)
    assert est.evaluate(*iris)["global_step"] == 50


def test_a_new_estimator_resumes_from_the_latest_checkpoint(model_dir, iris):
    first = _est(model_dir).fit(*iris, steps=30)
    expected = first.predict(iris[0])["prob"]
    second = _est(model_dir)
    np.testing.assert_allclose(second.predict(iris[0])["prob"], expected, rtol=1e-6)
    second.fit(*iris, steps=30)
    assert second.get_variable_value("global_step") == 60


class SlotRecorder(BaseMonitor):
    """Records the optimizer's variables as training begins: after restoring, before any step."""

    def begin(self, max_steps=None):
        super().begin(max_steps)
        names = [n for n in self.context.variable_names() if n.startswith("optimizer_")]
        self.values = {n: np.array(self.context.variable_value(n)) for n in names}


def test_a_resumed_fit_restores_the_optimizer_slot_values(model_dir, iris):
    _est(model_dir).fit(*iris, steps=30)
    saved = _est(model_dir)
    in_checkpoint = {n: saved.get_variable_value(n) for n in saved.get_variable_names() if n.startswith("optimizer_")}
    trained = [n for n, v in in_checkpoint.items() if np.ndim(v) and not np.allclose(v, 0.1)]
    assert trained, "Adagrad accumulators start at 0.1; after 30 steps they hold other values"
    recorder = SlotRecorder()
    resumed = _est(model_dir).fit(*iris, steps=30, monitors=[recorder])
    assert set(recorder.values) == set(in_checkpoint)
    for name, value in in_checkpoint.items():
        np.testing.assert_array_equal(recorder.values[name], value, err_msg=name)
    assert resumed.get_variable_value("global_step") == 60


def test_a_corrupted_latest_checkpoint_falls_back_to_the_previous_one(model_dir, iris):
    est = _est(model_dir, save_checkpoints_steps=10).fit(*iris, steps=20)
    latest = est.latest_checkpoint()
    assert latest.endswith("-20")
    with open(latest + ".index", "wb") as f:
        f.write(b"0")
    fresh = _est(model_dir)
    assert fresh.evaluate(*iris)["global_step"] == 10


def test_orphaned_temp_files_and_a_dangling_state_entry_are_ignored(model_dir, iris):
    _est(model_dir, save_checkpoints_steps=10).fit(*iris, steps=10)
    os.makedirs(os.path.join(model_dir, "model.ckpt-20_temp", "part-0"))
    with open(os.path.join(model_dir, "checkpoint")) as f:
        state = f.read()
    with open(os.path.join(model_dir, "checkpoint"), "w") as f:
        f.write(
            state.replace('model_checkpoint_path: "model.ckpt-10"', 'model_checkpoint_path: "model.ckpt-20"')
            + 'all_model_checkpoint_paths: "model.ckpt-20"\n'
        )
    assert _est(model_dir).evaluate(*iris)["global_step"] == 10


_KILL_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {root!r})
    from sklearn.datasets import load_iris
    import numpy as np
    from estimators import Estimator, RunConfig
    from tests.helpers import mlp_fn
    x, y = load_iris(return_X_y=True)
    est = Estimator(mlp_fn, model_dir={model_dir!r}, params={{"n_classes": 3}},
                    config=RunConfig(tf_random_seed=0, save_checkpoints_steps=25, keep_checkpoint_max=3,
                                     log_step_count_steps=0, steps_per_execution=1))
    print("training", flush=True)
    est.fit(x.astype(np.float32), y.astype(np.int32), steps=10_000_000)
    """
)


@pytest.mark.slow
def test_sigkill_during_training_leaves_a_restorable_model_dir(model_dir, iris):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    script = _KILL_SCRIPT.format(root=ROOT, model_dir=model_dir)
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            state = os.path.join(model_dir, "checkpoint")
            if os.path.exists(state):
                with open(state) as f:
                    if f.read().count("all_model_checkpoint_paths") >= 3:
                        break
            assert proc.poll() is None, proc.stdout.read().decode()
            time.sleep(0.05)
        else:
            pytest.fail("the training subprocess wrote no checkpoints in time")
        seed = int(os.environ.get("SKFLOW_KILL_SEED", time.time_ns() % 2**32))
        delay = np.random.default_rng(seed).uniform(0.0, 0.3)  # land anywhere in the save cycle
        print(f"SIGKILL after {delay:.3f} s (SKFLOW_KILL_SEED={seed} reproduces it)")
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    est = _est(model_dir)
    latest = est.latest_checkpoint()
    step = int(latest.rsplit("-", 1)[1])
    assert step % 25 == 0 and step >= 75
    results = est.evaluate(*iris)
    assert results["global_step"] == step
    assert np.isfinite(results["loss"])
    est.fit(*iris, steps=5)
    assert est.get_variable_value("global_step") == step + 5


def test_warm_start_from_copies_matching_variables_and_starts_at_step_0(tmp_path, iris):
    source = _est(str(tmp_path / "source")).fit(*iris, steps=100)
    tiny = {**PARAMS, "learning_rate": 1e-7}  # the one step below barely moves the weights
    cfg = RunConfig(tf_random_seed=1, log_step_count_steps=0)
    warm = Estimator(
        mlp_fn, model_dir=str(tmp_path / "warm"), params=tiny, config=cfg, warm_start_from=source.model_dir
    )
    warm.fit(*iris, steps=1)
    assert warm.get_variable_value("global_step") == 1
    np.testing.assert_allclose(
        warm.get_variable_value("dense/kernel"), source.get_variable_value("dense/kernel"), atol=1e-5
    )
    assert warm.evaluate(*iris)["loss"] == pytest.approx(source.evaluate(*iris)["loss"], rel=1e-4)
    cold = Estimator(mlp_fn, model_dir=str(tmp_path / "cold"), params=tiny, config=cfg).fit(*iris, steps=1)
    assert cold.evaluate(*iris)["loss"] > 2 * warm.evaluate(*iris)["loss"]


def test_warm_start_from_an_empty_directory_is_an_error(tmp_path, iris):
    est = Estimator(mlp_fn, model_dir=str(tmp_path / "m"), params=PARAMS, warm_start_from=str(tmp_path))
    with pytest.raises(ValueError, match="holds no checkpoint"):
        est.fit(*iris, steps=1)


def test_warm_start_from_a_checkpoint_path(tmp_path, iris):
    source = _est(str(tmp_path / "source"), save_checkpoints_steps=10).fit(*iris, steps=20)
    first = tf.train.get_checkpoint_state(source.model_dir).all_model_checkpoint_paths[0]
    tiny = {**PARAMS, "learning_rate": 1e-7}
    warm = Estimator(
        mlp_fn,
        model_dir=str(tmp_path / "warm"),
        params=tiny,
        warm_start_from=first,
        config=RunConfig(log_step_count_steps=0),
    ).fit(*iris, steps=1)
    at_10 = tf_value(first, "dense/kernel")
    np.testing.assert_allclose(warm.get_variable_value("dense/kernel"), at_10, atol=1e-5)


def tf_value(path, name):
    import tensorflow as tf

    from estimators.checkpoints import key_for

    return tf.train.load_checkpoint(path).get_tensor(key_for(name))


def _failing_input_fn(x, y, fail_at):
    import tensorflow as tf

    def input_fn():
        data = tf.data.Dataset.from_tensor_slices((x, y)).batch(10).repeat().enumerate()

        def check(i, element):
            with tf.control_dependencies([tf.debugging.assert_less(i, tf.constant(fail_at, tf.int64))]):
                return tf.identity(element[0]), tf.identity(element[1])

        return data.map(check)

    return input_fn


def test_an_error_inside_a_compiled_chunk_keeps_step_and_checkpoint_in_agreement(model_dir, iris):
    import tensorflow as tf

    est = _est(model_dir)  # 32 steps per compiled call: the input fails in the middle of the second
    with pytest.raises(tf.errors.InvalidArgumentError):
        est.fit(input_fn=_failing_input_fn(*iris, fail_at=40), max_steps=100)
    latest = est.latest_checkpoint()
    assert latest.endswith("model.ckpt-40")
    assert tf_value(latest, "global_step") == 40
    est.fit(*iris, max_steps=100)
    assert est.get_variable_value("global_step") == 100
    assert _est(model_dir).evaluate(*iris)["global_step"] == 100
