"""Built-in monitors: stopping, NaN, logging, rates, captured variables, checkpoints, exports, epochs."""

from __future__ import annotations

import io
import logging
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from estimators import Estimator, RunConfig, get_global_step, optimize_loss
from estimators.monitors import (
    BaseMonitor,
    CaptureVariable,
    CheckpointSaver,
    EveryN,
    ExportMonitor,
    LoggingTrainable,
    NanLoss,
    NanLossDuringTrainingError,
    PrintTensor,
    ProgressBar,
    StepCounter,
    StopAtStep,
    get_default_monitors,
)
from tests.helpers import mlp_fn

PARAMS = {"n_classes": 3}


def _est(model_dir, **config):
    cfg = {"tf_random_seed": 0, "log_step_count_steps": 0, **config}
    return Estimator(mlp_fn, model_dir=model_dir, params=PARAMS, config=RunConfig(**cfg))


def test_stop_at_step_with_num_steps_or_last_step(model_dir, iris):
    est = _est(model_dir).fit(*iris, steps=1000, monitors=[StopAtStep(num_steps=7)])
    assert est.get_variable_value("global_step") == 7
    est.fit(*iris, steps=1000, monitors=[StopAtStep(last_step=20)])
    assert est.get_variable_value("global_step") == 20
    with pytest.raises(ValueError, match="Exactly one of num_steps and last_step"):
        StopAtStep()


def _nan_after(step_k):
    def fn(features, targets, mode, params):
        logits = keras.layers.Dense(3)(features)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits))
        poisoned = tf.where(get_global_step() >= step_k, np.float32(np.nan), 0.0)
        train_op = optimize_loss(loss + poisoned, "SGD", 0.1)
        return {"class": tf.argmax(logits, 1)}, loss + poisoned, train_op

    return fn


def test_nan_loss_stops_training_names_the_step_and_keeps_the_last_good_checkpoint(model_dir, iris):
    cfg = RunConfig(tf_random_seed=0, log_step_count_steps=0, save_checkpoints_steps=10)
    est = Estimator(_nan_after(25), model_dir=model_dir, params={}, config=cfg)
    with pytest.raises(NanLossDuringTrainingError, match="at global step 30") as info:
        est.fit(*iris, steps=100, monitors=[NanLoss(every_n_steps=5)])
    assert info.value.step == 30
    # Step 30's checkpoint was not written: the weights had gone NaN after step 25.
    assert est.latest_checkpoint().endswith("-20")
    fresh = Estimator(_nan_after(10_000), model_dir=model_dir, params={}, config=cfg)
    assert np.isfinite(fresh.evaluate(*iris)["loss"])


def test_nan_loss_without_failing_just_stops(model_dir, iris):
    est = Estimator(_nan_after(3), model_dir=model_dir, params={}, config=RunConfig(log_step_count_steps=0))
    est.fit(*iris, steps=100, monitors=[NanLoss(every_n_steps=1, fail_on_nan_loss=False)])
    assert est.latest_checkpoint() is None  # nothing good to save after step 4


def test_print_tensor_and_logging_trainable_log_requested_values(model_dir, iris, caplog):
    with caplog.at_level(logging.INFO, logger="skflow"):
        _est(model_dir).fit(
            *iris,
            steps=4,
            monitors=[PrintTensor(["loss", "dense/bias"], every_n=2), LoggingTrainable("dense_1", every_n=4)],
        )
    text = caplog.text
    assert "Step 2: loss = " in text and "dense/bias = " in text
    assert "Step 4: dense_1/kernel = array(16, 3)" in text and "Step 4: dense/kernel" not in text


def test_capture_variable_records_values_at_its_steps(model_dir, iris):
    capture = CaptureVariable("dense/bias", every_n=10, first_n=1)
    est = _est(model_dir).fit(*iris, steps=30, monitors=[capture])
    assert sorted(capture.values) == [1, 10, 20, 30]
    np.testing.assert_allclose(capture.values[30], est.get_variable_value("dense/bias"))
    assert not np.allclose(capture.values[1], capture.values[30])


def test_step_counter_reports_steps_and_examples_per_second(model_dir, iris):
    counter = StepCounter(every_n_steps=20)
    _est(model_dir).fit(*iris, steps=60, batch_size=10, monitors=[counter])
    assert [r["step"] for r in counter.rates] == [20, 40, 60]
    rate = counter.rates[-1]
    assert rate["global_step/sec"] > 0 and rate["examples/sec"] == pytest.approx(rate["global_step/sec"] * 10)


def test_checkpoint_saver_saves_on_its_own_schedule(model_dir, iris):
    saver = CheckpointSaver(save_steps=15)
    _est(model_dir, keep_checkpoint_max=10).fit(*iris, steps=40, monitors=[saver])
    assert [os.path.basename(p) for p in saver.saved] == ["model.ckpt-15", "model.ckpt-30"]
    with pytest.raises(ValueError, match="Exactly one of save_secs and save_steps"):
        CheckpointSaver()


def test_export_monitor_exports_periodically_and_keeps_the_newest(model_dir, tmp_path, iris):
    export = ExportMonitor(every_n_steps=10, export_dir=str(tmp_path / "exports"), exports_to_keep=2)
    est = _est(model_dir).fit(*iris, steps=35, monitors=[export])
    kept = sorted(os.listdir(tmp_path / "exports"))
    assert len(export.exports) == 2 and len(kept) == 2  # steps 10, 20, 30 and the end at 35; two kept
    served = tf.saved_model.load(export.exports[-1]).signatures["serving_default"](features=tf.constant(iris[0][:3]))
    # The newest export holds the final (step 35) weights, not those of step 30: the end was exported.
    np.testing.assert_allclose(served["prob"].numpy(), est.predict(iris[0][:3])["prob"], rtol=1e-5)
    at_30 = tf.saved_model.load(export.exports[0]).signatures["serving_default"](features=tf.constant(iris[0][:3]))
    assert not np.allclose(at_30["prob"].numpy(), served["prob"].numpy())


def test_export_monitor_does_not_export_again_when_training_ends_on_an_export_step(model_dir, tmp_path, iris):
    export = ExportMonitor(every_n_steps=10, export_dir=str(tmp_path / "exports"), exports_to_keep=None)
    _est(model_dir).fit(*iris, steps=30, monitors=[export])
    assert len(export.exports) == 3 and len(os.listdir(tmp_path / "exports")) == 3


def test_epoch_hooks_fire_at_epoch_boundaries_of_in_memory_data(model_dir, iris):
    calls = []

    class Epochs(BaseMonitor):
        def next_step(self, step):
            return None

        def epoch_begin(self, epoch):
            calls.append(("begin", epoch))

        def epoch_end(self, epoch):
            calls.append(("end", epoch))

    _est(model_dir).fit(*iris, steps=12, batch_size=30, monitors=[Epochs()])  # 150 rows / 30 = 5 steps per epoch
    assert calls == [("begin", 0), ("end", 0), ("begin", 1), ("end", 1), ("begin", 2)]


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_on_a_terminal_is_a_bar_redrawn_in_place_ending_at_the_last_step(model_dir, iris):
    stream = _Terminal()
    _est(model_dir).fit(*iris, steps=70, batch_size=10, monitors=[ProgressBar(stream=stream)])
    text = stream.getvalue()
    assert "\r" in text and text.endswith("\n")
    last = text.rstrip().split("\r")[-1]
    assert last.startswith("step 70/70 [============================]") and "loss" in last and "examples/s" in last


def test_progress_elsewhere_is_a_line_every_n_steps_and_the_last_step(model_dir, iris):
    stream = io.StringIO()
    _est(model_dir, log_step_count_steps=10).fit(
        *iris, steps=45, batch_size=10, monitors=[ProgressBar(every_n_steps=10, stream=stream)]
    )
    lines = stream.getvalue().splitlines()
    assert [line.split(" - ")[0] for line in lines] == [f"step {s}/45" for s in (10, 20, 30, 40, 45)]
    assert "\r" not in stream.getvalue()


def test_progress_shows_a_fit_shorter_than_one_compiled_call(model_dir, iris):
    stream = io.StringIO()
    _est(model_dir).fit(*iris, steps=5, monitors=[ProgressBar(stream=stream)])
    assert stream.getvalue().startswith("step 5/5 - loss ")


def test_default_progress_goes_to_stderr_unless_verbose_is_zero(model_dir, iris, capsys):
    _est(model_dir, verbose="auto", log_step_count_steps=10).fit(*iris, steps=20)
    assert "step 20/20" in capsys.readouterr().err
    _est(model_dir + "2", verbose=0, log_step_count_steps=10).fit(*iris, steps=20)
    assert capsys.readouterr().err == ""


def test_default_monitors_log_loss_and_write_summaries(model_dir, iris, caplog):
    with caplog.at_level(logging.INFO, logger="skflow"):
        _est(model_dir, log_step_count_steps=10, save_summary_steps=10).fit(*iris, steps=20)
    assert "loss = " in caplog.text and "Loss for final step" in caplog.text
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(model_dir))
    names = [type(m).__name__ for m in get_default_monitors(RunConfig(verbose=0))]
    assert names == ["SummarySaver"]


def test_monitors_run_with_partial_fit(model_dir, iris):
    capture = CaptureVariable("dense/bias", every_n=2, first_n=0)
    est = _est(model_dir)
    for _ in range(4):
        est.partial_fit(iris[0][:20], iris[1][:20], monitors=[capture])
    assert sorted(capture.values) == [2, 4]


def test_repeated_partial_fit_calls_share_one_summary_writer(model_dir, iris):
    est = _est(model_dir, save_summary_steps=1)
    for _ in range(5):
        est.partial_fit(iris[0][:16], iris[1][:16])
    events = [f for f in os.listdir(model_dir) if f.startswith("events.out.tfevents")]
    assert len(events) == 1


def test_summary_saver_step_counter_and_repeated_evaluations_write_one_event_file_per_directory(model_dir, iris):
    est = _est(model_dir, save_summary_steps=5)
    est.fit(*iris, steps=20, monitors=[StepCounter(every_n_steps=5)])
    est.fit(*iris, steps=10, monitors=[StepCounter(every_n_steps=5)])
    for _ in range(3):
        est.evaluate(*iris)
    events = lambda d: [f for f in os.listdir(d) if f.startswith("events.out.tfevents")]  # noqa: E731
    assert len(events(model_dir)) == 1 and len(events(os.path.join(model_dir, "eval"))) == 1
    tags = set()
    for record in tf.compat.v1.train.summary_iterator(os.path.join(model_dir, events(model_dir)[0])):
        tags.update(v.tag for v in record.summary.value)
    assert {"loss", "global_step/sec", "examples/sec"} <= tags


class CallCounter(BaseMonitor):
    """Asks for no step; counts the compiled calls through after_run (which never reads the device)."""

    def __init__(self):
        super().__init__()
        self.steps = []

    def next_step(self, step):
        return None

    def after_run(self, step, loss):
        assert isinstance(loss, tf.Tensor)  # handed over as it is, not read back
        self.steps.append(step)


def test_steps_no_monitor_asked_for_do_not_cut_the_compiled_calls(model_dir, iris):
    counter = CallCounter()
    _est(model_dir, save_summary_steps=0).fit(*iris, steps=320, batch_size=10, monitors=[counter])
    # 32 steps per call, cut only at the NaN check's multiples of 100: 3 x (32, 32, 32, 4) + 20.
    assert len(counter.steps) == 13
    assert counter.steps[:4] == [32, 64, 96, 100] and counter.steps[-1] == 320


def test_time_based_checkpoint_saver_looks_at_the_clock_between_calls_only(model_dir, iris):
    counter, saver = CallCounter(), CheckpointSaver(save_secs=1e-9)
    _est(model_dir, save_summary_steps=0, keep_checkpoint_max=10).fit(
        *iris, steps=96, batch_size=10, monitors=[counter, saver]
    )
    assert counter.steps == [32, 64, 96]
    assert [os.path.basename(p) for p in saver.saved] == ["model.ckpt-32", "model.ckpt-64", "model.ckpt-96"]


class PostStep(EveryN):
    def __init__(self, every_n_steps):
        super().__init__(every_n_steps=every_n_steps, first_n_steps=0)
        self.active, self.post = [], []

    def every_n_step_end(self, step, outputs):
        self.active.append(step)

    def every_n_post_step(self, step):
        self.post.append(step)


def test_every_n_runs_its_post_step_hook_once_at_an_unaligned_end(model_dir, iris):
    est = _est(model_dir)
    unaligned = PostStep(every_n_steps=20)
    est.fit(*iris, steps=15, monitors=[unaligned])
    assert (unaligned.active, unaligned.post) == ([], [15])
    aligned = PostStep(every_n_steps=20)
    est.fit(*iris, steps=25, monitors=[aligned])  # 15 -> 40: step 20 and 40 are its own steps
    assert (aligned.active, aligned.post) == ([20, 40], [])
    idle = PostStep(every_n_steps=20)
    est.fit(*iris, max_steps=40, monitors=[idle])  # nothing to train: no hook at all
    assert (idle.active, idle.post) == ([], [])


def test_non_chief_workers_run_only_monitors_marked_for_all_workers():
    from estimators.monitors import MonitorList

    class Everywhere(BaseMonitor):
        run_on_all_workers = True

    chief_only, everywhere = StepCounter(), Everywhere()
    assert MonitorList([chief_only, everywhere], is_chief=False).monitors == [everywhere]
    assert MonitorList([chief_only, everywhere], is_chief=True).monitors == [chief_only, everywhere]


def test_export_of_the_best_checkpoint_serves_the_best_weights(model_dir, tmp_path, iris):
    from estimators.monitors import ValidationMonitor

    x, y = iris
    # Validation labels shifted by one class: the better the model fits, the worse they score, so the
    # best checkpoint is an early one and differs from the latest weights.
    best = ValidationMonitor(x[::3], (y[::3] + 1) % 3, every_n_steps=10, keep_best=True)
    est = _est(model_dir).fit(x, y, steps=60, monitors=[best])
    assert best.best_step < 60
    path = est.export_saved_model(str(tmp_path / "export"), checkpoint_path="best")
    served = tf.saved_model.load(path).signatures["serving_default"](features=tf.constant(x))["prob"].numpy()
    np.testing.assert_allclose(served, est.predict(x, checkpoint_path="best")["prob"], rtol=1e-5, atol=1e-6)
    assert not np.allclose(served, est.predict(x)["prob"], atol=1e-3)
