"""A corpus of 50 malformed inputs and configs, run through skflow's public entry points.

Each case is a bad YAML file, a bad config field, a bad data source (empty, header-only or truncated
CSV/Parquet, a directory without data), a bad model_fn path, or bad data handed to `Estimator` and
a canned estimator (wrong dtypes, NaN, infinity, wrong shapes, empty arrays) — the mistakes users make.
Every case is classified the same way (`Outcome`):

- **clear**: the command exited 2 (`skflow run`'s "Invalid config") or the call raised a skflow or
  built-in error type (never a `tensorflow` one) whose message matches the case's `expect` pattern,
  i.e. names the problem;
- **tf_trace**: a TensorFlow or Keras frame (a path under `tensorflow/` or `keras/`) appears in what
  the user sees: the CLI's output, or the traceback Python would print for the exception (its chained
  causes included, as Python prints them);
- **changed**: a model directory (or the project's model root and tracking store) differs after the
  call from before it (a hash of every file's path, size and bytes).

`build_context(root)` trains the two model directories the predict/fit cases start from (a custom
`Estimator` on iris, a canned `DNNClassifier` on a DataFrame: ~10 s together) and writes the data
files; `run_corpus(context)` runs the cases (~10 s) and returns their outcomes. Used by
`tests/reliability/test_malformed_corpus.py` and `benchmarks/reliability.py`.
"""

from __future__ import annotations

import hashlib
import os
import re
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["CASES", "Case", "Context", "Outcome", "build_context", "run_case", "run_corpus", "tree_hash"]

TF_FRAME = re.compile(r"[/\\](tensorflow|keras)[/\\]")


@dataclass
class Context:
    """What the cases run against: a project directory, two trained model dirs and data files."""

    root: Path
    custom_dir: str = ""
    canned_dir: str = ""
    canned: Any = None
    x: Any = None
    y: Any = None
    frame: Any = None
    labels: Any = None
    files: dict[str, str] = field(default_factory=dict)

    @property
    def model_root(self) -> Path:
        return self.root / "models"

    def watched(self) -> list[Path]:
        """The directories no bad input may change."""
        return [Path(self.custom_dir), Path(self.canned_dir), self.model_root, self.root / "mlruns"]


@dataclass(frozen=True)
class Case:
    """One malformed input: `call(context)` makes the call; `expect` is what its error must say."""

    name: str
    entry: str
    call: Callable[[Context], Any]
    expect: str


@dataclass
class Outcome:
    """How skflow answered one case (see the module docstring)."""

    name: str
    entry: str
    clear: bool
    tf_trace: bool
    changed: bool
    error: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def tree_hash(path: Path) -> str:
    """A hash of every file under `path`: relative path, size and content (missing: a fixed value)."""
    digest = hashlib.sha256()
    if not path.exists():
        return "missing"
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


# ------------------------------------------------------------------------------------------ set-up
def build_context(root: str | os.PathLike) -> Context:
    """Train the custom and canned model dirs and write the data files the cases use."""
    from sklearn.datasets import load_iris

    from estimators import DNNClassifier, Estimator, RunConfig
    from tests.helpers import mlp_fn

    root = Path(root)
    (root / "models").mkdir(parents=True, exist_ok=True)
    (root / "mlruns").mkdir(exist_ok=True)
    x, y = load_iris(return_X_y=True)
    x, y = x.astype(np.float32), y.astype(np.int32)
    context = Context(root, x=x, y=y)
    context.custom_dir = str(root / "custom_model")
    config = RunConfig(tf_random_seed=0, log_step_count_steps=0, verbose=0)
    Estimator(mlp_fn, model_dir=context.custom_dir, config=config, params={"n_classes": 3}).fit(x, y, steps=5)
    frame = pd.DataFrame(x, columns=["sepal_length", "sepal_width", "petal_length", "petal_width"])
    frame["colour"] = np.where(y == 0, "red", "blue")
    context.frame, context.labels = frame, np.array(["setosa", "versicolor", "virginica"])[y]
    context.canned_dir = str(root / "canned_model")
    context.canned = DNNClassifier(
        hidden_units=[8], steps=5, random_state=0, model_dir=context.canned_dir, config=config
    ).fit(frame, context.labels)
    context.canned.set_params(warm_start=True)  # a later fit continues it (and must refuse bad data)
    data = root / "data"
    data.mkdir(exist_ok=True)
    table = frame.assign(species=context.labels)
    table.to_csv(data / "good.csv", index=False)
    table.to_parquet(data / "good.parquet", index=False)
    (data / "empty.csv").write_text("")
    (data / "header_only.csv").write_text(",".join(table.columns) + "\n")
    good = (data / "good.parquet").read_bytes()
    (data / "truncated.parquet").write_bytes(good[: len(good) // 2])
    (data / "not_parquet.parquet").write_text("species,colour\nsetosa,red\n")
    (data / "empty_dir").mkdir(exist_ok=True)
    (data / "binary.csv").write_bytes(bytes(range(256)) * 8)
    (data / "ragged.csv").write_text("a,b,species\n1,2,x\n3,4,5,6,7\n")
    context.files = {p.stem: str(p) for p in data.iterdir()}
    return context


# ------------------------------------------------------------------------------------------ cases
PIPELINE = {
    "experiment": "corpus",
    "source": "sklearn:iris",
    "target": "target",
    "estimator": {"name": "DNNClassifier", "params": {"hidden_units": [8]}},
    "fit": {"steps": 5, "batch_size": 16},
}


def _yaml(context: Context, text: str, name: str = "config.yaml") -> str:
    path = context.root / "configs" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return str(path)


def _config_file(context: Context, **changes: Any) -> str:
    import yaml

    data = {**PIPELINE, **changes}
    return _yaml(context, yaml.safe_dump({k: v for k, v in data.items() if v is not None}))


def _cli(*args: Any, own_store: bool = True) -> Callable[[Context], Any]:
    """`skflow ARGS` in-process (the CLI's own function, through typer's runner); a `run` writes
    its model dirs and runs under the context's root."""

    def call(context: Context) -> Any:
        from typer.testing import CliRunner

        from flows.cli import app

        resolved = [a(context) if callable(a) else a for a in args]
        store = f"tracking.uri=sqlite:///{context.root / 'mlruns' / 'mlflow.db'}"
        if resolved[0] == "run":
            resolved += ["--set", f"model_root={context.model_root}"] + (["--set", store] if own_store else [])
        env = {"PREFECT_API_URL": "http://127.0.0.1:9/api", "SKFLOW_SERVER_DIR": str(context.root / "no_server")}
        return CliRunner().invoke(app, resolved, env=env, catch_exceptions=True)

    return call


def _run_yaml(text: str) -> Callable[[Context], Any]:
    return _cli("run", lambda c: _yaml(c, text))


def _run_config(**changes: Any) -> Callable[[Context], Any]:
    return _cli("run", lambda c: _config_file(c, **changes))


def _run_set(*overrides: str) -> Callable[[Context], Any]:
    sets = [item for o in overrides for item in ("--set", o)]
    return _cli("run", lambda c: _config_file(c), *sets)


def _run_source(key: str, target: str = "species") -> Callable[[Context], Any]:
    return _cli("run", lambda c: _config_file(c, source=c.files[key], target=target))


def _custom(method: str, make: Callable[[Context], tuple], **kwargs: Any) -> Callable[[Context], Any]:
    def call(context: Context) -> Any:
        from estimators import Estimator, RunConfig
        from tests.helpers import mlp_fn

        config = RunConfig(tf_random_seed=0, log_step_count_steps=0, verbose=0)
        est = Estimator(mlp_fn, model_dir=context.custom_dir, config=config, params={"n_classes": 3})
        return getattr(est, method)(*make(context), **kwargs)

    return call


def _canned(method: str, make: Callable[[Context], tuple], **kwargs: Any) -> Callable[[Context], Any]:
    def call(context: Context) -> Any:
        return getattr(context.canned, method)(*make(context), **kwargs)

    return call


def _model_fn(path_or_fn: Any, method: str = "fit") -> Callable[[Context], Any]:
    def call(context: Context) -> Any:
        from estimators import Estimator

        est = Estimator(path_or_fn, model_dir=str(context.root / "models" / "bad_model_fn"))
        return getattr(est, method)(context.x, context.y, steps=1)

    return call


def _feeder(key: str) -> Callable[[Context], Any]:
    def call(context: Context) -> Any:
        from estimators import Estimator
        from feeders import FileDataFeeder
        from tests.helpers import mlp_fn

        feeder = FileDataFeeder(context.files[key], target_column="species", batch_size=8)
        return Estimator(mlp_fn, model_dir=context.custom_dir, params={"n_classes": 3}).fit(feeder, steps=1)

    return call


def _with(array: np.ndarray, index: Any, value: Any) -> np.ndarray:
    array = array.copy()
    array[index] = value
    return array


def _frame_with(context: Context, column: str, values: Any) -> pd.DataFrame:
    return context.frame.assign(**{column: values})


def _no_args_model_fn():  # a model_fn whose arguments skflow cannot inject
    return None


def _six_argument_model_fn(features, labels, mode, params, config, learning_rate):  # noqa: ARG001
    return None  # `learning_rate`: an argument the Estimator cannot pass


def _returns_nothing(features, targets):  # noqa: ARG001
    return None


CASES: list[Case] = [
    # --- skflow run: the YAML file itself
    Case("yaml_syntax_error", "skflow run", _run_yaml("experiment: x\nsource: [unclosed\n"), r"not valid YAML"),
    Case("yaml_empty_file", "skflow run", _run_yaml(""), r"config"),
    Case("yaml_a_list", "skflow run", _run_yaml("- experiment\n- source\n"), r"mapping|dict|config"),
    Case("config_missing_file", "skflow run", _cli("run", "no/such/config.yaml"), r"no such config file"),
    Case("config_missing_target", "skflow run", _run_config(target=None), r"target"),
    Case("config_unknown_field", "skflow run", _run_config(epochs=3), r"epochs"),
    Case("config_unknown_fit_field", "skflow run", _run_set("fit.epoch=3"), r"fit\.epoch"),
    Case("config_negative_steps", "skflow run", _run_set("fit.steps=-3"), r"fit\.steps"),
    Case("config_steps_a_string", "skflow run", _run_set("fit.steps=ten"), r"fit\.steps"),
    Case("config_zero_batch_size", "skflow run", _run_set("fit.batch_size=0"), r"fit\.batch_size"),
    Case("config_test_size_above_1", "skflow run", _run_set("split.test_size=1.5"), r"split\.test_size"),
    Case("config_unknown_split_kind", "skflow run", _run_set("split.kind=sideways"), r"split\.kind"),
    Case("config_unknown_metric", "skflow run", _run_set("metrics=[acuracy]"), r"acuracy"),
    Case("config_bad_set_syntax", "skflow run", _run_set("fit.steps"), r"expected key\.path=value"),
    Case(
        "config_tracking_uri_a_directory",
        "skflow run",
        _cli("run", lambda c: _config_file(c, tracking={"uri": str(c.root / "mlruns")}), own_store=False),
        r"tracking\.uri.*sqlite:///",
    ),
    Case("config_unknown_estimator", "skflow run", _run_set("estimator.name=DNNClassifer"), r"DNNClassifer"),
    Case(
        "config_unknown_canned_argument",
        "skflow run",
        _run_set("estimator.params.hidden_unit=[8]"),
        r"hidden_unit",
    ),
    Case("config_pipeline_owned_argument", "skflow run", _run_set("estimator.params.model_dir=/tmp/x"), r"model_dir"),
    Case(
        "config_name_and_model_fn",
        "skflow run",
        _run_set("estimator.model_fn=configs.custom_model:model_fn"),
        r"model_fn|name",
    ),
    Case(
        "model_fn_module_missing",
        "skflow run",
        _run_set("estimator={model_fn: 'nowhere.models:fn'}"),
        r"nowhere\.models",
    ),
    Case(
        "model_fn_attribute_missing",
        "skflow run",
        _run_set("estimator={model_fn: 'tests.helpers:no_such_fn'}"),
        r"no_such_fn",
    ),
    Case("model_fn_without_colon", "skflow run", _run_set("estimator={model_fn: 'tests.helpers'}"), r"model_fn"),
    Case("model_fn_not_callable", "skflow run", _run_set("estimator={model_fn: 'tests.helpers:TRACES'}"), r"TRACES"),
    Case("config_target_not_a_column", "skflow run", _run_set("target=label"), r"label"),
    Case("config_feature_not_a_column", "skflow run", _run_set("features=[petal, sepal]"), r"petal"),
    # --- skflow run: the data source
    Case("source_missing_file", "skflow run", _cli("run", lambda c: _config_file(c, source="no/such.csv")), r"no/such"),
    Case("source_empty_csv", "skflow run", _run_source("empty"), r"empty\.csv"),
    Case("source_header_only_csv", "skflow run", _run_source("header_only"), r"header_only\.csv|no rows|0 rows"),
    Case("source_truncated_parquet", "skflow run", _run_source("truncated"), r"truncated\.parquet"),
    Case("source_csv_named_parquet", "skflow run", _run_source("not_parquet"), r"not_parquet\.parquet"),
    Case("source_binary_csv", "skflow run", _run_source("binary"), r"binary\.csv"),
    Case("source_ragged_csv", "skflow run", _run_source("ragged"), r"ragged\.csv"),
    Case("source_empty_directory", "skflow run", _run_source("empty_dir"), r"empty_dir"),
    Case("source_unknown_sklearn_dataset", "skflow run", _run_config(source="sklearn:irises"), r"irises"),
    # --- skflow predict
    Case(
        "predict_output_extension", "skflow predict", _cli("predict", "models:/m/1", "in.csv", "out.txt"), r"out\.txt"
    ),
    # --- Estimator (a custom model_fn), from a trained model dir
    Case("fit_nan_in_x", "Estimator.fit", _custom("fit", lambda c: (_with(c.x, (3, 1), np.nan), c.y), steps=1), "NaN"),
    Case("fit_strings_in_x", "Estimator.fit", _custom("fit", lambda c: (c.x.astype(str), c.y), steps=1), "strings"),
    Case("fit_wrong_width", "Estimator.fit", _custom("fit", lambda c: (c.x[:, :3], c.y), steps=1), r"3 features"),
    Case("fit_3d_x", "Estimator.fit", _custom("fit", lambda c: (c.x[:, :, None], c.y), steps=1), r"dim|2D|shape"),
    Case("fit_float_steps", "Estimator.fit", _custom("fit", lambda c: (c.x, c.y), steps=2.5), r"steps"),
    Case("predict_wrong_width", "Estimator.predict", _custom("predict", lambda c: (c.x[:, :2],)), r"2 features"),
    Case("predict_inf", "Estimator.predict", _custom("predict", lambda c: (_with(c.x, (0, 0), np.inf),)), "infinity"),
    Case("evaluate_y_too_short", "Estimator.evaluate", _custom("evaluate", lambda c: (c.x, c.y[:10])), r"samples"),
    # --- Estimator: bad model_fn objects
    Case("model_fn_a_string", "Estimator.fit", _model_fn("tests.helpers:mlp_fn"), r"model_fn"),
    Case("model_fn_unknown_argument", "Estimator.fit", _model_fn(_six_argument_model_fn), r"learning_rate"),
    Case("model_fn_returns_none", "Estimator.fit", _model_fn(_returns_nothing), r"model_fn|returned"),
    # --- canned DNNClassifier on a DataFrame, from a trained model dir
    Case(
        "canned_predict_missing_column",
        "DNNClassifier.predict",
        _canned("predict", lambda c: (c.frame.drop(columns="colour"),)),
        "colour",
    ),
    Case(
        "canned_fit_text_in_numeric_column",
        "DNNClassifier.fit",
        _canned("fit", lambda c: (_frame_with(c, "sepal_width", "wide"), c.labels)),
        "sepal_width",
    ),
    Case(
        "canned_fit_nan_label",
        "DNNClassifier.fit",
        _canned("fit", lambda c: (c.frame, _with(c.labels.astype(object), 2, np.nan))),
        r"NaN|missing|label|y",
    ),
    # --- FileDataFeeder on a bad file
    Case("feeder_truncated_parquet", "FileDataFeeder", _feeder("truncated"), r"truncated\.parquet"),
]


# ------------------------------------------------------------------------------------------ running
def _tf_frames(exc: BaseException) -> int:
    text = "".join(traceback.format_exception(exc))
    return sum(1 for line in text.splitlines() if line.lstrip().startswith("File ") and TF_FRAME.search(line))


def run_case(case: Case, context: Context) -> Outcome:
    """Run one case and classify what it did."""
    before = [tree_hash(p) for p in context.watched()]
    error, message, clear, tf_trace = "", "", False, False
    try:
        result = case.call(context)
    except Exception as exc:  # noqa: BLE001 - every outcome is classified
        error, message = f"{type(exc).__module__}.{type(exc).__name__}", str(exc)
        tf_trace = _tf_frames(exc) > 0
        from_tf = type(exc).__module__.split(".")[0] in ("tensorflow", "keras")
        clear = not from_tf and bool(re.search(case.expect, message))
    else:
        if hasattr(result, "exit_code"):  # a CLI run
            output = result.output  # stdout and stderr, as a terminal shows them
            error, message = f"exit {result.exit_code}", output.strip()
            frames = (
                _tf_frames(result.exception) if result.exception and not isinstance(result.exception, SystemExit) else 0
            )
            tf_trace = frames > 0 or ("Traceback" in output and bool(TF_FRAME.search(output)))
            clear = result.exit_code == 2 and bool(re.search(case.expect, output))
        else:
            error, message = "no error", repr(result)[:200]
    after = [tree_hash(p) for p in context.watched()]
    return Outcome(case.name, case.entry, clear, tf_trace, before != after, error, message[:600])


def run_corpus(context: Context, cases: list[Case] | None = None) -> list[Outcome]:
    """Run every case (or `cases`) against `context`; the outcomes in order."""
    return [run_case(case, context) for case in (CASES if cases is None else cases)]
