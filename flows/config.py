"""`PipelineConfig`: one YAML file (or dict) that describes a training pipeline, and *is* the flows'
parameters, so the Prefect UI shows a form for it.

Everything that can be checked without doing the work is checked when the config is loaded: unknown
fields, wrong types, an unknown canned estimator or one of its arguments, a model_fn path that does
not import, metric names, split settings. `check_columns` then checks the source's columns (the
target, features, id and date columns) from its schema alone, so that a bad config is rejected
before any run, model_dir or MLflow run exists. Errors name the field and what is allowed.

Example::

    experiment: digits
    source: sklearn:digits
    target: target
    estimator:
      name: DNNClassifier
      params: {hidden_units: [64, 64], learning_rate: 0.01}
    fit: {epochs: 20, batch_size: 64}
    metrics: [accuracy, f1_macro]
"""

from __future__ import annotations

import copy
import importlib
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from flows.canned_arguments import PIPELINE_OWNED, canned_arguments, canned_signature_matches
from flows.config_text import format_errors, yaml_load
from flows.retrain_config import RetrainConfig, check_retrain_section, retrain_metric

__all__ = [
    "yaml_load",
    "CANNED_ESTIMATORS",
    "canned_signature_matches",
    "ConfigError",
    "EstimatorConfig",
    "FitConfig",
    "PipelineConfig",
    "PredictConfig",
    "RetrainConfig",
    "RetryConfig",
    "SplitConfig",
    "SqlSource",
    "TrackingConfig",
    "load_config",
]

CANNED_ESTIMATORS = (
    "DNNClassifier",
    "DNNLinearCombinedClassifier",
    "DNNLinearCombinedRegressor",
    "DNNRegressor",
    "LinearClassifier",
    "LinearRegressor",
)
# The metric names `Estimator.evaluate` knows (estimators.metrics); kept here so that checking a
# config does not import TensorFlow.
METRICS = (
    "accuracy",
    "auc",
    *(f"{m}{a}" for m in ("precision", "recall", "f1") for a in ("", "_macro", "_micro", "_weighted")),
    "mse",
    "rmse",
    "mae",
    "r2",
    "mean_prediction",
)
RUN_CONFIG_FIELDS = (
    "tf_random_seed",
    "save_checkpoints_steps",
    "save_checkpoints_secs",
    "keep_checkpoint_max",
    "keep_checkpoint_every_n_hours",
    "save_summary_steps",
    "log_step_count_steps",
    "steps_per_execution",
    "verbose",
)
SKLEARN_DATASETS = ("breast_cancer", "diabetes", "digits", "iris", "wine")
DEMO_TABLES = ("churn",)


class ConfigError(ValueError):
    """A pipeline config that cannot run, with every problem named (field: what is wrong, what is allowed)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SqlSource(_Strict):
    """Rows of a SQL query, read with SQLAlchemy.

    Attributes:
        sql: the query.
        url: a SQLAlchemy URL, e.g. "sqlite:///data/shop.db" or "postgresql://user@host/db".
    """

    sql: str = Field(min_length=1)
    url: str = Field(min_length=1)


class SplitConfig(_Strict):
    """How held-out evaluation rows are chosen.

    Attributes:
        kind: "random" (seeded; stratified for classifiers), "time" (rows whose `column` is at or
            after `cutoff`, or the latest `test_size` fraction, are held out), or "source"
            (`eval_source` holds the evaluation rows).
        test_size: fraction held out ("random", and "time" without a cutoff). default=0.2.
        seed: seed of the random split. default=0.
        stratify: stratify the random split by the target; None: for classifiers. default=None.
        column: the date/time column of a "time" split.
        cutoff: the first held-out date of a "time" split (ISO format), or None.
        eval_source: the evaluation rows of a "source" split (same forms as `source`).
    """

    kind: Literal["random", "time", "source"] = "random"
    test_size: float = Field(0.2, gt=0, lt=1)
    seed: int = 0
    stratify: bool | None = None
    column: str | None = None
    cutoff: str | None = None
    eval_source: str | SqlSource | None = None

    @model_validator(mode="after")
    def _complete(self) -> SplitConfig:
        if self.kind == "time" and not self.column:
            raise ValueError("split.kind 'time' needs split.column: the date/time column to split on")
        if self.kind == "source" and self.eval_source is None:
            raise ValueError("split.kind 'source' needs split.eval_source: where the evaluation rows are")
        return self


class EstimatorConfig(_Strict):
    """The model: a canned estimator by name, or a custom `model_fn`.

    Attributes:
        name: one of the canned estimators (`DNNClassifier`, ...), or None with `model_fn`.
        model_fn: "package.module:function" of a custom model_fn, or None with `name`.
        params: the canned estimator's constructor arguments, or the model_fn's `params`.
        config: `RunConfig` fields (tf_random_seed, save_checkpoints_steps, steps_per_execution, ...).
        task: "classification" or "regression" for a custom model_fn (stratified splits, metrics
            that fit); canned estimators know theirs. default: None.
    """

    name: str | None = None
    model_fn: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    config: dict[str, Any] = Field(default_factory=dict)
    task: Literal["classification", "regression"] | None = None

    @model_validator(mode="after")
    def _one_model(self) -> EstimatorConfig:
        if (self.name is None) == (self.model_fn is None):
            raise ValueError(
                "give exactly one of estimator.name (a canned estimator: "
                f"{', '.join(CANNED_ESTIMATORS)}) and estimator.model_fn ('package.module:function')"
            )
        if self.name is not None:
            if self.name not in CANNED_ESTIMATORS:
                raise ValueError(
                    f"estimator.name {self.name!r} is not a canned estimator; expected one of {list(CANNED_ESTIMATORS)}"
                )
            allowed = canned_arguments(self.name)
            unknown = sorted(set(self.params) - set(allowed))
            if unknown:
                raise ValueError(
                    f"estimator.params {unknown} are not arguments of {self.name}; it takes {sorted(allowed)}"
                )
            owned = [f"{k} (set {PIPELINE_OWNED[k]})" for k in sorted(set(self.params) & set(PIPELINE_OWNED))]
            if owned:
                raise ValueError(f"estimator.params {', '.join(owned)}: the pipeline sets these")
        else:
            resolve_model_fn(self.model_fn)
        unknown = sorted(set(self.config) - set(RUN_CONFIG_FIELDS))
        if unknown:
            raise ValueError(f"estimator.config {unknown} are not RunConfig fields; allowed: {list(RUN_CONFIG_FIELDS)}")
        return self

    @property
    def is_classifier(self) -> bool | None:
        """True/False when known (a canned estimator's name, or `task`), else None."""
        if self.name is not None:
            return self.name.endswith("Classifier")
        return None if self.task is None else self.task == "classification"


class FitConfig(_Strict):
    """How to train.

    Attributes:
        steps: training steps (with `epochs`, whichever ends first); None: `epochs` decide.
        epochs: passes over the training rows. default=10 when `steps` is not given.
        batch_size: rows per step. default=32.
        impute: "mean" fills NaN with training means (saved with the model); None: NaN is an error.
        validation_every_n_steps: evaluate the held-out rows every N steps (None: only at the end).
        early_stopping_rounds: stop when the watched metric has not improved for this many steps.
        early_stopping_metric: the metric to watch ("loss" or one of `metrics`). default="loss".
        keep_best: keep the best validated weights and use them for the final model. default=False.
        memory_budget_mb: stream file sources through at most this much memory (None: load them).
    """

    steps: int | None = Field(None, ge=1)
    epochs: int | None = Field(None, ge=1)
    batch_size: int = Field(32, ge=1)
    impute: Literal["mean"] | None = None
    validation_every_n_steps: int | None = Field(None, ge=1)
    early_stopping_rounds: int | None = Field(None, ge=1)
    early_stopping_metric: str = "loss"
    keep_best: bool = False
    memory_budget_mb: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _stopping(self) -> FitConfig:
        if self.steps is None and self.epochs is None:
            self.epochs = 10
        if (self.early_stopping_rounds or self.keep_best) and not self.validation_every_n_steps:
            raise ValueError("fit.early_stopping_rounds and fit.keep_best need fit.validation_every_n_steps")
        return self


class PredictConfig(_Strict):
    """Batch prediction after training (`batch_predict_flow`).

    Attributes:
        source: rows to predict (same forms as `source`).
        output: a .parquet or .csv path for the predictions.
        id_column: a column copied next to the predictions (default: the pipeline's `id_column`).
    """

    source: str | SqlSource
    output: str
    id_column: str | None = None

    @field_validator("output")
    @classmethod
    def _format(cls, output: str) -> str:
        if Path(output).suffix.lower() not in (".parquet", ".csv"):
            raise ValueError(f"predict.output {output!r} must end in .parquet or .csv")
        return output


class TrackingConfig(_Strict):
    """MLflow tracking.

    Attributes:
        uri: the tracking URI; None: `MLFLOW_TRACKING_URI`, else the embedded SQLite store.
        registered_model: the registered model every logged model becomes a new version of (the
            first version gets the alias `champion`, later ones `challenger`). default=None: the
            experiment's name.
        log_every_n_steps: training metrics every this many steps. default=100.
        log_model: log the model (a pyfunc wrapping its SavedModel). default=True.
    """

    uri: str | None = None
    registered_model: str | None = None
    log_every_n_steps: int = Field(100, ge=1)
    log_model: bool = True

    @field_validator("uri")
    @classmethod
    def _not_a_file_store(cls, uri: str | None) -> str | None:
        # MLflow 3 refuses its file store when the first run starts, after the pipeline began.
        scheme = uri.split("://", 1)[0] if uri and "://" in uri else ""
        if uri and scheme in ("", "file") and os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() != "true":
            raise ValueError(
                f"{uri!r} is a directory: MLflow's file store is retired. Use a database, e.g. "
                f"'sqlite:///{uri.removeprefix('file://').rstrip('/')}/mlflow.db', or a server's http(s):// URL"
            )
        return uri


class RetryConfig(_Strict):
    """Prefect task retries: I/O tasks retry with a delay; a retried fit resumes from its checkpoints.

    Attributes:
        ingest: retries of reading the source. default=2.
        fit: retries of the fit task (each resumes where the failed attempt stopped). default=1.
        delay_seconds: seconds before the first retry (doubling after). default=1.
    """

    ingest: int = Field(2, ge=0)
    fit: int = Field(1, ge=0)
    delay_seconds: float = Field(1.0, ge=0)


class PipelineConfig(_Strict):
    """A training pipeline: ingest -> validate -> split -> fit (with monitors) -> evaluate -> predict.

    Attributes:
        experiment: the MLflow experiment (and the Prefect run's name prefix).
        source: a CSV/Parquet file, a directory or glob of them, "sklearn:<digits|iris|wine|
            breast_cancer|diabetes>", "demo:churn" (a generated table with categorical columns),
            or a `SqlSource`.
        target: the column to predict.
        features: the feature columns; None: every column but the target, id and time columns.
        id_column: a column that identifies rows (never a feature; kept next to predictions).
        split, estimator, fit, metrics, predict, tracking, retries, retrain: see their classes.
        model_root: where model directories go (one per MLflow run). default="models".
    """

    experiment: str = Field(min_length=1)
    source: str | SqlSource
    target: str = Field(min_length=1)
    features: list[str] | None = None
    id_column: str | None = None
    split: SplitConfig = Field(default_factory=SplitConfig)
    estimator: EstimatorConfig
    fit: FitConfig = Field(default_factory=FitConfig)
    metrics: list[str] = Field(default_factory=list)
    predict: PredictConfig | None = None
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    retries: RetryConfig = Field(default_factory=RetryConfig)
    retrain: RetrainConfig = Field(default_factory=RetrainConfig)
    model_root: str = "models"

    @field_validator("source")
    @classmethod
    def _source(cls, source: str | SqlSource) -> str | SqlSource:
        if isinstance(source, str):
            check_source_string(source, "source")
        return source

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, metrics: list[str]) -> list[str]:
        unknown = [m for m in metrics if m not in METRICS]
        if unknown:
            raise ValueError(f"metrics {unknown} are not known metrics; expected some of {list(METRICS)}")
        return metrics

    @model_validator(mode="after")
    def _consistent(self) -> PipelineConfig:
        if self.features is not None and self.target in self.features:
            raise ValueError(f"the target {self.target!r} is also listed in features")
        classifier = self.estimator.is_classifier
        regression_only, classification_only = {"mse", "rmse", "mae", "r2"}, set(METRICS[:14])
        wrong = classification_only if classifier is False else regression_only if classifier else set()
        misfits = [m for m in self.metrics if m in wrong]
        if misfits:
            task = "regression" if classifier is False else "classification"
            fitting = [m for m in METRICS if m not in wrong]
            raise ValueError(f"metrics {misfits} do not fit a {task} model; use some of {fitting}")
        watched = self.fit.early_stopping_metric
        if watched != "loss" and watched not in self.metrics:
            raise ValueError(f"fit.early_stopping_metric {watched!r} must be 'loss' or one of metrics {self.metrics}")
        if self.fit.keep_best and self.estimator.name is not None:
            raise ValueError(
                f"fit.keep_best needs estimator.model_fn: {self.estimator.name} cannot yet evaluate or predict with "
                "its best checkpoint (only its latest); drop keep_best, or use early stopping alone"
            )
        check_retrain_section(self)
        return self

    def check_retrainable(self) -> str:
        """What a retrain needs beyond what loading checks; returns the metric it judges models on.

        Raises:
            ConfigError: models are not logged (`tracking.log_model: false`), or there is no metric
                to judge on (a custom model_fn with neither `metrics` nor `estimator.task`).
        """
        if not self.tracking.log_model:
            raise ConfigError("a retrain compares logged models: set tracking.log_model: true")
        if self.retrain_metric is None:
            raise ConfigError(
                "a retrain needs a metric to judge the models on: set retrain.metric, metrics, or estimator.task"
            )
        return self.retrain_metric

    @property
    def registered_model_name(self) -> str:
        """The registered model this pipeline's models are versions of (`tracking.registered_model`,
        else the experiment's name)."""
        return self.tracking.registered_model or self.experiment

    @property
    def retrain_metric(self) -> str | None:
        """The metric a retrain judges models on (`flows.retrain_config.retrain_metric`)."""
        return retrain_metric(self)

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_yaml(cls, path: str | os.PathLike, overrides: list[str] | None = None) -> PipelineConfig:
        """Load a YAML file, apply `key.path=value` overrides (values parsed as YAML), validate."""
        return load_config(path, overrides)


def load_config(source: str | os.PathLike | dict[str, Any], overrides: list[str] | None = None) -> PipelineConfig:
    """A validated `PipelineConfig` from a YAML file or a dict, with `--set key.path=value` overrides.

    Raises:
        ConfigError: the file is missing or not YAML, an override is malformed, or the config is
            invalid; the message lists every problem as `field: what is wrong`.
    """
    import yaml

    if isinstance(source, dict):
        data, where = copy.deepcopy(source), "config"  # --set overrides must not change the caller's dict
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"{path}: no such config file")
        try:
            data = yaml_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(
                f"{path}: a pipeline config is a YAML mapping (key: value lines); got {type(data).__name__}"
            )
        where = str(path)
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected key.path=value, e.g. --set fit.epochs=5")
        try:
            value = yaml_load(raw)
        except yaml.YAMLError:
            value = raw
        _assign(data, key.strip().split("."), value)
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{where} is not a valid pipeline config:\n" + format_errors(exc)) from None


def _assign(data: dict[str, Any], keys: list[str], value: Any) -> None:
    for key in keys[:-1]:
        node = data.get(key)
        if node is None:
            node = data[key] = {}
        if not isinstance(node, dict):
            raise ConfigError(f"--set {'.'.join(keys)}: {key!r} is not a section (it holds {node!r})")
        data = node
    data[keys[-1]] = value


def check_source_string(source: str, field: str) -> None:
    """Check the form of a string source (a bundled data set's name, a demo table, or a path)."""
    scheme, sep, name = source.partition(":")
    if sep and scheme == "sklearn" and name not in SKLEARN_DATASETS:
        raise ValueError(f"{field} {source!r}: scikit-learn bundles {[f'sklearn:{n}' for n in SKLEARN_DATASETS]}")
    if sep and scheme == "demo" and name.split("?")[0] not in DEMO_TABLES:
        raise ValueError(f"{field} {source!r}: the demo tables are {[f'demo:{n}' for n in DEMO_TABLES]}")


def resolve_model_fn(path: str) -> Any:
    """The function "package.module:function" names (imported).

    Raises:
        ValueError: the path is malformed, the module does not import, or it has no such callable.
    """
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"estimator.model_fn {path!r} must be 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any import failure is the user's to see
        raise ValueError(
            f"estimator.model_fn {path!r}: module {module_name!r} does not import ({type(exc).__name__}: {exc})"
        ) from None
    fn = module
    for part in attr.split("."):
        fn = getattr(fn, part, None)
        if fn is None:
            raise ValueError(f"estimator.model_fn {path!r}: module {module_name!r} has no {attr!r}")
    if not callable(fn):
        raise ValueError(f"estimator.model_fn {path!r} is not callable")
    return fn
