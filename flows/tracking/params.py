"""A training's MLflow params: flattened, with stable dotted keys, the same scheme for every estimator.

| key | from |
|---|---|
| `estimator.class` | the estimator's class name (`Estimator`, `DNNClassifier`, ...) |
| `estimator.<name>` | its `get_params()` (nested dicts flattened: `estimator.params.hidden`; callables by qualified name) |
| `config.<field>` | its `RunConfig`'s constructor arguments (not `verbose`, `master`, `evaluation_master`: how a fit is shown or reached, not what it trains) |
| `batch_size`, `epochs`, `max_steps` | the fit (Keras autolog's names; `max_steps` is the global step the run's first fit trains to) |
| `opt_name`, `opt_learning_rate`, `opt_<key>` | the first optimizer's class and `get_config()`, as Keras autolog logs them |
| `feeder.<field>` | `TrainingContext.input_summary` (feeder kind, rows, shuffle, imputation) |
| `data.fingerprint` | the training data's SHA-256 (`TrainingContext.input_fingerprint`) |

Values are text (`str` of numbers, `repr`-like for tuples, qualified names for functions). A value
longer than MLflow's limit (6,000 characters) is truncated with a warning naming its key. A run's
params cannot change: `check_unchanged` says which would.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["PARAM_VALUE_LIMIT", "check_unchanged", "flatten", "training_params"]

logger = logging.getLogger("skflow")

PARAM_VALUE_LIMIT = 6000  # mlflow.utils.validation.MAX_PARAM_VAL_LENGTH
KEY_LIMIT = 250  # MAX_ENTITY_KEY_LENGTH
_CONFIG_SKIPPED = ("verbose", "master", "evaluation_master")
_BAD_KEY_CHARS = re.compile(r"[^A-Za-z0-9_\-. /]")


def training_params(context: Any, fingerprint: str | None = None) -> dict[str, str]:
    """The params of the fit `context` describes (a `TrainingContext`), as text.

    Args:
        context: the fit's `TrainingContext`.
        fingerprint: the data fingerprint to record instead of `context.input_fingerprint`
            (a content hash of files the caller computed, say). default=None.
    """
    estimator = context.estimator
    raw: dict[str, Any] = {"estimator.class": type(estimator).__name__}
    for name, value in sorted(estimator.get_params(deep=False).items()):
        if name != "config":
            raw[f"estimator.{name}"] = value
    config = context.config
    for name in inspect.signature(type(config)).parameters:
        if name not in _CONFIG_SKIPPED and hasattr(config, name):
            raw[f"config.{name}"] = getattr(config, name)
    summary = dict(context.input_summary)
    raw["batch_size"] = context.batch_size if context.batch_size is not None else summary.get("batch_size")
    if summary.get("epochs") is not None:
        raw["epochs"] = summary["epochs"]
    raw["max_steps"] = context.max_steps
    for key, value in summary.items():
        raw[f"feeder.{key}"] = value
    if context.optimizers:
        optimizer = context.optimizers[0]
        raw.update({f"opt_{k}": v for k, v in optimizer.get_config().items()})
        raw["opt_name"] = type(optimizer).__name__  # its config name gets a suffix per instance ("adam_2")
    raw["data.fingerprint"] = fingerprint or context.input_fingerprint
    return flatten(raw)


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """`{"a": {"b": 1}}` -> `{"a.b": "1"}`: nested mappings become dotted keys, values text.

    Keys lose characters MLflow refuses (anything but letters, digits, `_ - . /` and space become
    `_`); values over `PARAM_VALUE_LIMIT` characters are truncated with a warning naming the key.
    """
    out: dict[str, str] = {}
    for key, value in values.items():
        name = _BAD_KEY_CHARS.sub("_", f"{prefix}{key}")
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
            continue
        if len(name) > KEY_LIMIT:
            logger.warning("MLflow param key %r is longer than %d characters; not logged.", name[:80], KEY_LIMIT)
            continue
        text = as_text(value)
        if len(text) > PARAM_VALUE_LIMIT:
            logger.warning(
                "MLflow param %r is %d characters long; logging its first %d (MLflow's limit).",
                name,
                len(text),
                PARAM_VALUE_LIMIT,
            )
            text = text[:PARAM_VALUE_LIMIT]
        out[name] = text
    return out


def as_text(value: Any) -> str:
    """A stable text form: numbers and strings as `str`, functions and classes by qualified name,
    other objects (a `tf.distribute` strategy, say) by their class name."""
    if isinstance(value, float):
        return _float_text(value)
    if value is None or isinstance(value, (str, bool, int)):
        return str(value)
    if isinstance(value, (list, tuple)):
        items = ", ".join(as_text(v) for v in value)
        return f"[{items}]" if isinstance(value, list) else f"({items}{',' if len(value) == 1 else ''})"
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # numpy scalars
        return str(value.item())
    if inspect.isfunction(value) or inspect.isclass(value) or inspect.ismethod(value) or hasattr(value, "func"):
        target = getattr(value, "func", value)
        return f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', type(target).__name__)}"
    if callable(value) and not hasattr(value, "__qualname__"):
        return f"{type(value).__module__}.{type(value).__qualname__}"
    if type(value).__repr__ is object.__repr__:
        return f"{type(value).__module__}.{type(value).__qualname__}"  # no address: stable across processes
    return str(value)


def _float_text(value: float) -> str:
    """A float32 value (a Keras learning rate) as its shortest float32 text: 0.1, not 0.10000000149011612."""
    import numpy as np

    single = np.float32(value)
    return str(single) if np.isfinite(single) and float(single) == value else str(value)


def check_unchanged(logged: Mapping[str, str], params: Mapping[str, str], run_id: str) -> None:
    """Raise when a param already logged to run `run_id` would get another value.

    Raises:
        ValueError: naming each changed param with both values.
    """
    changed = [k for k in sorted(params) if k in logged and logged[k] != params[k]]
    if changed:
        details = "; ".join(f"{k!r} was {logged[k]!r}, this fit has {params[k]!r}" for k in changed)
        raise ValueError(
            f"This fit continues MLflow run {run_id}, whose params cannot change: {details}. Fit with the "
            "same settings to continue the run, or start a new one (MlflowMonitor(new_run=True), or another "
            "model_dir)."
        )
