"""FileDataFeeder: Parquet and CSV files streamed as whole batches, in bounded memory."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

from feeders import FileDataFeeder, reraising_iterator

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _table(n: int, start: int = 0) -> pa.Table:
    """Row i has features (i, 2i, -i) and label i, so any batch shows which rows it holds."""
    idx = np.arange(start, start + n)
    return pa.table(
        {
            "a": idx.astype(np.float32),
            "b": (2 * idx).astype(np.float64),
            "c": -idx.astype(np.int32),
            "label": idx.astype(np.int64),
        }
    )


def _expected_x(idx: np.ndarray) -> np.ndarray:
    return np.stack([idx, 2 * idx, -idx], axis=1).astype(np.float32)


def _parquet(path, n: int = 250, row_group_size: int = 60, start: int = 0) -> str:
    pq.write_table(_table(n, start), path, row_group_size=row_group_size)
    return str(path)


def _collect(feeder: FileDataFeeder) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in feeder.dataset()])
    return np.concatenate(xs), np.concatenate(ys)


def test_a_parquet_file_feeds_float32_features_and_int64_targets_in_whole_batches(tmp_path):
    feeder = FileDataFeeder(_parquet(tmp_path / "d.parquet"), target_column="label", batch_size=32, seed=0)
    assert feeder.input_signature.dtype == tf.float32 and feeder.input_signature.shape == (3,)
    assert feeder.output_signature.dtype == tf.int64 and feeder.output_signature.shape == ()
    x, y = next(iter(feeder.dataset()))
    assert x.shape == (32, 3) and x.dtype == tf.float32
    assert y.shape == (32,) and y.dtype == tf.int64
    assert not feeder.finite


def test_an_ordered_pass_equals_the_source_rows_in_order_with_a_partial_last_batch(tmp_path):
    feeder = FileDataFeeder(
        _parquet(tmp_path / "d.parquet"), target_column="label", batch_size=16, shuffle=False, epochs=1
    )
    sizes = [int(y.shape[0]) for _, y in feeder.dataset()]
    assert sizes == [16] * 15 + [10]
    x, y = _collect(feeder)
    np.testing.assert_array_equal(y, np.arange(250))
    np.testing.assert_array_equal(x, _expected_x(np.arange(250)))


def test_a_directory_of_parquet_files_is_read_in_file_name_order_skipping_hidden_and_marker_files(tmp_path):
    folder = tmp_path / "data"
    (folder / "sub").mkdir(parents=True)
    _parquet(folder / "part-0.parquet", n=100, start=0)
    _parquet(folder / "part-1.pq", n=70, start=100)
    _parquet(folder / "sub" / "part-2.parquet", n=30, start=170)
    (folder / "_SUCCESS").write_text("")
    _parquet(folder / ".part-9.parquet", n=5, start=999)
    feeder = FileDataFeeder(str(folder), target_column="label", batch_size=64, shuffle=False, epochs=1)
    assert feeder.format == "parquet" and feeder.n_samples == 200
    _, y = _collect(feeder)
    np.testing.assert_array_equal(y, np.arange(200))


def test_a_glob_or_a_list_of_paths_is_read_like_a_directory(tmp_path):
    _parquet(tmp_path / "a.parquet", n=40, start=0)
    _parquet(tmp_path / "b.parquet", n=40, start=40)
    by_glob = FileDataFeeder(str(tmp_path / "*.parquet"), "label", batch_size=32, shuffle=False, epochs=1)
    by_list = FileDataFeeder([tmp_path / "a.parquet", tmp_path / "b.parquet"], "label", shuffle=False, epochs=1)
    np.testing.assert_array_equal(_collect(by_glob)[1], np.arange(80))
    np.testing.assert_array_equal(_collect(by_list)[1], np.arange(80))


def test_a_csv_file_is_parsed_to_float32_features_and_integer_targets(tmp_path):
    path = tmp_path / "d.csv"
    pa_csv.write_csv(_table(250), path)
    feeder = FileDataFeeder(str(path), target_column="label", batch_size=16, shuffle=False, epochs=1)
    assert feeder.format == "csv" and feeder.output_signature.dtype == tf.int64
    x, y = _collect(feeder)
    np.testing.assert_array_equal(y, np.arange(250))
    np.testing.assert_array_equal(x, _expected_x(np.arange(250)))


def test_shuffled_epochs_cover_every_row_once_each_and_keep_features_aligned_with_targets(tmp_path):
    feeder = FileDataFeeder(
        _parquet(tmp_path / "d.parquet"),
        target_column="label",
        batch_size=16,
        epochs=3,
        seed=7,
        shuffle_buffer_batches=4,
    )
    sizes = [int(y.shape[0]) for _, y in feeder.dataset()]
    assert sizes == [16] * 46 + [14]  # 750 rows: batches stay full across epoch boundaries
    x, y = _collect(feeder)
    np.testing.assert_array_equal(x, _expected_x(y))
    epochs = y.reshape(3, 250)
    for epoch in epochs:
        np.testing.assert_array_equal(np.sort(epoch), np.arange(250))
    assert not np.array_equal(epochs[0], np.arange(250))
    assert not np.array_equal(epochs[0], epochs[1])


def test_the_same_seed_gives_the_same_batches_and_another_seed_other_batches(tmp_path):
    path = _parquet(tmp_path / "d.parquet")

    def labels(seed):
        return _collect(FileDataFeeder(path, "label", batch_size=16, epochs=1, seed=seed))[1]

    np.testing.assert_array_equal(labels(3), labels(3))
    assert not np.array_equal(labels(3), labels(4))


def test_the_cardinality_is_infinite_when_endless_and_exact_for_parquet_epochs(tmp_path):
    path = _parquet(tmp_path / "d.parquet")
    endless = FileDataFeeder(path, "label", batch_size=16)
    assert endless.dataset().cardinality() == tf.data.INFINITE_CARDINALITY
    two_epochs = FileDataFeeder(path, "label", batch_size=16, epochs=2)
    assert two_epochs.finite and two_epochs.dataset().cardinality() == 32  # ceil(500 / 16)


def test_feature_columns_select_and_order_the_features_and_a_float_target_is_float32(tmp_path):
    feeder = FileDataFeeder(
        _parquet(tmp_path / "d.parquet"), target_column="b", feature_columns=["c", "a"], shuffle=False, epochs=1
    )
    assert feeder.output_signature.dtype == tf.float32 and feeder.input_signature.shape == (2,)
    x, y = _collect(feeder)
    np.testing.assert_array_equal(x, np.stack([-np.arange(250), np.arange(250)], axis=1))
    np.testing.assert_array_equal(y, 2 * np.arange(250))


def test_without_a_target_column_every_column_is_a_feature(tmp_path):
    feeder = FileDataFeeder(_parquet(tmp_path / "d.parquet"), batch_size=50, shuffle=False, epochs=1)
    assert feeder.output_signature is None
    batches = [x.numpy() for x in feeder.dataset()]
    assert [b.shape for b in batches] == [(50, 4)] * 5


def test_the_state_is_tagged_with_its_kind_and_holds_the_columns_in_feeding_order(tmp_path):
    feeder = FileDataFeeder(_parquet(tmp_path / "d.parquet"), target_column="label", feature_columns=["c", "a"])
    assert feeder.state == {"type": "file", "feature_columns": ["c", "a"], "target_column": "label"}


def test_a_state_feeds_the_fitted_columns_by_name_whatever_their_order_in_the_files(tmp_path):
    fitted = FileDataFeeder(_parquet(tmp_path / "d.parquet"), target_column="label")
    reordered = _table(250).select(["label", "c", "b", "a"])
    pq.write_table(reordered, tmp_path / "r.parquet")
    feeder = FileDataFeeder(str(tmp_path / "r.parquet"), "label", shuffle=False, epochs=1, state=fitted.state)
    assert feeder.feature_columns == ["a", "b", "c"]
    x, y = _collect(feeder)
    np.testing.assert_array_equal(x, _expected_x(np.arange(250)))


def test_a_state_leaves_the_target_column_out_when_predicting_on_files_that_still_hold_it(tmp_path):
    path = _parquet(tmp_path / "d.parquet")
    fitted = FileDataFeeder(path, target_column="label")
    feeder = FileDataFeeder(path, batch_size=250, shuffle=False, epochs=1, state=fitted.state)
    assert feeder.input_signature.shape == (3,) and feeder.output_signature is None
    np.testing.assert_array_equal(next(iter(feeder.dataset())).numpy(), _expected_x(np.arange(250)))


def test_a_fitted_column_missing_from_the_files_is_named(tmp_path):
    state = {"type": "file", "feature_columns": ["a", "b", "z"], "target_column": "label"}
    with pytest.raises(ValueError, match=r"X is missing column\(s\) \['z'\] that the model was fitted on"):
        FileDataFeeder(_parquet(tmp_path / "d.parquet"), state=state)


def test_explicit_feature_columns_take_precedence_over_a_state(tmp_path):
    state = {"type": "file", "feature_columns": ["a", "b", "c"], "target_column": "label"}
    feeder = FileDataFeeder(_parquet(tmp_path / "d.parquet"), "label", feature_columns=["b"], state=state)
    assert feeder.feature_columns == ["b"]


def test_a_missing_target_column_is_named_with_the_available_columns(tmp_path):
    with pytest.raises(ValueError, match=r"target_column='y' is not a column.*\['a', 'b', 'c', 'label'\]"):
        FileDataFeeder(_parquet(tmp_path / "d.parquet"), target_column="y")


def test_a_missing_feature_column_is_named_with_the_available_columns(tmp_path):
    with pytest.raises(ValueError, match=r"'z' is not a column.*Available columns: \['a', 'b', 'c', 'label'\]"):
        FileDataFeeder(_parquet(tmp_path / "d.parquet"), target_column="label", feature_columns=["a", "z"])


def test_a_string_feature_column_is_an_error_that_says_to_encode_it_or_leave_it_out(tmp_path):
    table = _table(10).append_column("city", pa.array(["x"] * 10))
    pq.write_table(table, tmp_path / "d.parquet")
    with pytest.raises(ValueError, match=r"Feature column 'city' has type string.*Encode it.*feature_columns"):
        FileDataFeeder(str(tmp_path / "d.parquet"), target_column="label")
    feeder = FileDataFeeder(str(tmp_path / "d.parquet"), target_column="label", feature_columns=["a", "b"])
    assert feeder.input_signature.shape == (2,)


def test_a_nan_in_a_feature_is_an_error_naming_the_column(tmp_path):
    table = _table(100)
    b = table.column("b").to_numpy().copy()
    b[57] = np.nan
    pq.write_table(table.set_column(1, "b", pa.array(b)), tmp_path / "d.parquet")
    feeder = FileDataFeeder(str(tmp_path / "d.parquet"), target_column="label", shuffle=False, epochs=1)
    with pytest.raises(tf.errors.InvalidArgumentError, match="Input column 'b' contains NaN"):
        list(feeder.dataset())
    assert "'b' contains NaN" in str(feeder.errors.pop())  # what reraise_feeder_errors(feeder) re-raises
    with pytest.raises(
        ValueError, match=r"Input column 'b' contains NaN.*pass fit\(df, \.\.\., impute='mean'\)"
    ) as raised:
        list(reraising_iterator(feeder.dataset(), feeder))
    assert not isinstance(raised.value, tf.errors.OpError)


def test_a_missing_value_in_a_csv_feature_is_an_error_naming_the_column(tmp_path):
    (tmp_path / "d.csv").write_text("a,b,label\n1,2,0\n3,,1\n")
    feeder = FileDataFeeder(str(tmp_path / "d.csv"), target_column="label", shuffle=False, epochs=1)
    with pytest.raises(ValueError, match="Input column 'b' contains missing values"):
        list(reraising_iterator(feeder.dataset(), feeder))


@pytest.mark.parametrize("batch_size", [0, -3, 2.5, True])
def test_an_invalid_batch_size_is_an_argument_error(tmp_path, batch_size):
    with pytest.raises(
        ValueError, match=rf"Invalid value for argument `batch_size`. Received: batch_size={batch_size}"
    ):
        FileDataFeeder(_parquet(tmp_path / "d.parquet"), "label", batch_size=batch_size)


@pytest.mark.parametrize(
    ("argument", "value"),
    [("epochs", 0), ("shuffle_buffer_batches", 0), ("memory_budget_mb", -1), ("format", "json")],
)
def test_other_invalid_arguments_are_argument_errors(tmp_path, argument, value):
    with pytest.raises(ValueError, match=rf"Invalid value for argument `{argument}`. Received: {argument}="):
        FileDataFeeder(_parquet(tmp_path / "d.parquet"), "label", **{argument: value})


def test_an_empty_parquet_file_is_an_error(tmp_path):
    pq.write_table(_table(0), tmp_path / "d.parquet")
    with pytest.raises(ValueError, match="Found 0 rows .* a minimum of 1 is required"):
        FileDataFeeder(str(tmp_path / "d.parquet"), "label")


def test_a_csv_file_with_only_a_header_is_an_error(tmp_path):
    (tmp_path / "d.csv").write_text("a,b,label\n")
    with pytest.raises(ValueError, match="Found 0 rows"):
        FileDataFeeder(str(tmp_path / "d.csv"), "label")


def test_a_directory_without_data_files_is_an_error(tmp_path):
    (tmp_path / "notes.txt").write_text("")
    with pytest.raises(ValueError, match="Found no .parquet or .pq or .csv files in the directory"):
        FileDataFeeder(str(tmp_path), "label")


def test_a_missing_path_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="No such file or directory"):
        FileDataFeeder(str(tmp_path / "nope.parquet"), "label")


def test_an_unknown_extension_asks_for_the_format(tmp_path):
    pa_csv.write_csv(_table(5), tmp_path / "d.txt")
    with pytest.raises(ValueError, match="pass format='parquet' or format='csv'"):
        FileDataFeeder(str(tmp_path / "d.txt"), "label")
    assert FileDataFeeder(str(tmp_path / "d.txt"), "label", format="csv").format == "csv"


def test_a_memory_budget_smaller_than_one_batch_is_an_error(tmp_path):
    with pytest.raises(ValueError, match=r"memory_budget_mb=1 is too small for batch_size=100000: one batch takes"):
        FileDataFeeder(_parquet(tmp_path / "d.parquet"), "label", batch_size=100_000, memory_budget_mb=1)


def test_a_memory_budget_below_the_fixed_overhead_is_an_error_saying_how_much_is_needed(tmp_path):
    with pytest.raises(ValueError, match=r"memory_budget_mb=16 is too small: .* at least \d+"):
        FileDataFeeder(_parquet(tmp_path / "d.parquet"), "label", memory_budget_mb=16)


def test_a_memory_budget_sizes_the_pipeline_to_fit_and_warns_when_the_shuffle_window_shrinks(tmp_path):
    path = _parquet(tmp_path / "d.parquet")
    roomy = FileDataFeeder(path, "label", batch_size=256, memory_budget_mb=256)
    assert roomy.read_plan.estimated_mb <= 256 and roomy.read_plan.shuffle_buffer_batches == 64
    with pytest.warns(UserWarning, match="shuffle window of \\d+ batches instead of shuffle_buffer_batches=64"):
        tight = FileDataFeeder(path, "label", batch_size=4096, memory_budget_mb=80)
    assert tight.read_plan.estimated_mb <= 80 and tight.read_plan.prefetch_batches >= 1


def test_an_estimator_trains_from_it_and_evaluates_on_an_ordered_pass(tmp_path):
    import keras

    from estimators import Estimator, RunConfig, optimize_loss

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 4)).astype(np.float32)
    label = (x[:, 0] + 0.5 * x[:, 1] - x[:, 2] > 0).astype(np.int64)
    table = pa.table({**{f"x{j}": x[:, j] for j in range(4)}, "label": label})
    os.makedirs(tmp_path / "data")
    pq.write_table(table.slice(0, 1200), tmp_path / "data" / "part-0.parquet", row_group_size=300)
    pq.write_table(table.slice(1200), tmp_path / "data" / "part-1.parquet", row_group_size=300)
    path = str(tmp_path / "data")

    def model_fn(features, targets):
        logits = tf.squeeze(keras.layers.Dense(1)(features), -1)
        loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(tf.cast(targets, tf.float32), logits))
        return tf.cast(logits > 0, tf.int64), loss, optimize_loss(loss, "Adam", 0.05)

    est = Estimator(model_fn, model_dir=str(tmp_path / "m"), config=RunConfig(tf_random_seed=0, log_step_count_steps=0))
    est.fit(input_fn=lambda: FileDataFeeder(path, target_column="label", batch_size=64, seed=0).dataset(), steps=200)
    result = est.evaluate(
        input_fn=lambda: FileDataFeeder(path, target_column="label", shuffle=False, epochs=1).dataset(),
        metrics=["accuracy"],
    )
    assert result["global_step"] == 200
    assert result["accuracy"] > 0.95


def _write_large_parquet(folder, n_files: int, rows_per_file: int, rows_per_group: int, n_features: int) -> None:
    """Random float32 features and label = row index, one row group at a time (never all in memory)."""
    schema = pa.schema([(f"f{j}", pa.float32()) for j in range(n_features)] + [("label", pa.int64())])
    rng = np.random.default_rng(0)
    start = 0
    for i in range(n_files):
        with pq.ParquetWriter(folder / f"part-{i:03d}.parquet", schema, compression="none", use_dictionary=False) as w:
            for _ in range(rows_per_file // rows_per_group):
                x = rng.random((rows_per_group, n_features), dtype=np.float32)
                labels = np.arange(start, start + rows_per_group, dtype=np.int64)
                w.write_batch(pa.record_batch([*x.T, labels], schema=schema))
                start += rows_per_group


_LARGE = {"n_files": 6, "rows_per_file": 500_000, "n_features": 28, "budget_mb": 96}
_LARGE_ROWS = _LARGE["n_files"] * _LARGE["rows_per_file"]
_LARGE_BYTES = _LARGE_ROWS * (4 * _LARGE["n_features"] + 8)  # 360 MB of values


@pytest.fixture(scope="module")
def large_parquet(tmp_path_factory) -> str:
    """360 MB of Parquet values, 3.5 times the 96 MiB budget of the memory tests."""
    assert _LARGE_BYTES > 3.5 * _LARGE["budget_mb"] * 2**20
    folder = tmp_path_factory.mktemp("large")
    _write_large_parquet(folder, _LARGE["n_files"], _LARGE["rows_per_file"], 100_000, _LARGE["n_features"])
    return str(folder)


def _run_measured(script: str) -> list[int]:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=_REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return [int(v) for v in out.stdout.strip().splitlines()[-1].split()]


@pytest.mark.slow
def test_an_epoch_over_data_several_times_the_memory_budget_stays_within_the_budget(large_parquet):
    n_rows, budget_mb = _LARGE_ROWS, _LARGE["budget_mb"]
    script = f"""
        import os, resource, sys
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        sys.path.insert(0, {_REPO!r})
        import numpy as np, tensorflow as tf
        from feeders.file_feeder import FileDataFeeder

        def tiny():
            yield np.zeros((1, 2, 3), np.float32)

        spec = tf.TensorSpec((None, None, 3), tf.float32)
        for _ in tf.data.Dataset.from_generator(tiny, output_signature=spec).unbatch().prefetch(2):
            pass  # TensorFlow's one-time costs belong to the baseline
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        feeder = FileDataFeeder(
            {large_parquet!r}, target_column="label", batch_size=1024, epochs=1, seed=0,
            shuffle_buffer_batches=16, memory_budget_mb={budget_mb},
        )
        rows = total = 0
        for x, y in feeder.dataset():
            rows += int(y.shape[0])
            total += int(y.numpy().sum())
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(rows, total, (after - before) * 1024)  # ru_maxrss is in KiB on Linux
        """
    rows, total, growth = _run_measured(script)
    assert rows == n_rows and total == n_rows * (n_rows - 1) // 2  # every row once
    assert growth <= budget_mb * 2**20, f"peak RSS grew by {growth / 2**20:.0f} MiB, over the {budget_mb} MiB budget"
    assert _LARGE_BYTES >= 3.5 * growth


# What training adds to the pipeline's budget: the model's own memory (see the FileDataFeeder docstring).
_MODEL_SLACK_MB = 16


@pytest.mark.slow
def test_training_an_estimator_over_data_several_times_the_memory_budget_stays_within_the_budget(large_parquet):
    n_rows, budget_mb, batch_size = _LARGE_ROWS, _LARGE["budget_mb"], 1024
    script = f"""
        import os, resource, sys, tempfile
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        sys.path.insert(0, {_REPO!r})
        import keras, numpy as np, pyarrow as pa, pyarrow.parquet as pq, tensorflow as tf
        from estimators import Estimator, RunConfig, optimize_loss
        from feeders.file_feeder import FileDataFeeder

        def model_fn(features, targets):  # logistic regression on the parity of the row index
            logits = tf.squeeze(keras.layers.Dense(1)(features), -1)
            parity = tf.cast(targets % 2, tf.float32)
            loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(parity, logits))
            return logits, loss, optimize_loss(loss, "SGD", 0.01)

        tmp = tempfile.mkdtemp()
        data = {large_parquet!r}
        schema = pq.read_schema(os.path.join(data, sorted(os.listdir(data))[0]))
        rng = np.random.default_rng(1)
        warm = [rng.random(20_000, dtype=np.float32) for _ in range(len(schema) - 1)] + [np.arange(20_000)]
        pq.write_table(pa.table(warm, schema=schema), os.path.join(tmp, "warm.parquet"))
        options = dict(
            target_column="label", batch_size={batch_size}, epochs=1, seed=0, shuffle_buffer_batches=16,
            memory_budget_mb={budget_mb},
        )
        est = Estimator(model_fn, model_dir=os.path.join(tmp, "m"), config=RunConfig(log_step_count_steps=0))
        est.fit(FileDataFeeder(os.path.join(tmp, "warm.parquet"), **options))  # one-time costs: the baseline
        warm_steps = int(est.get_variable_value("global_step"))
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        est.fit(FileDataFeeder(data, **options))
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(int(est.get_variable_value("global_step")) - warm_steps, (after - before) * 1024)
        """
    steps, growth = _run_measured(script)
    assert steps == -(-n_rows // batch_size)  # one whole epoch trained, the partial last batch included
    limit = (budget_mb + _MODEL_SLACK_MB) * 2**20
    assert growth <= limit, f"peak RSS grew by {growth / 2**20:.0f} MiB while training, over {limit / 2**20:.0f} MiB"
    assert _LARGE_BYTES >= 3 * growth
