"""A sweep's search space: which config fields vary, and the trials drawn from it (no Prefect, no TF).

Fields are the dotted paths `--set` takes (`estimator.params.learning_rate`, `fit.batch_size`).

- `--grid KEY=V1,V2,...` lists the values of a field; values are YAML (`[8],[16,16]` is two lists).
  Without `--random`, the trials are every combination of the grids, in order.
- `--sample KEY=DIST` draws a field from `uniform(low,high)`, `loguniform(low,high)`,
  `int(low,high)` (both ends included) or `choice(a,b,...)`; it needs `--random N`.
- `--random N --seed S` draws N trials: each `--sample` from its distribution and each `--grid`
  field uniformly from its values, with Python's `random.Random(S)` (the same seed, the same trials).

Every trial's config is validated before anything starts (`plan_trials`): an unknown field or a
value the config refuses is a `ConfigError` naming the trial and the field.

Example::

    space = parse_space(["estimator.params.learning_rate=0.01,0.1", "fit.batch_size=16,32"], [])
    trials = draw_trials(space)            # 4 trials, every combination
    space = parse_space([], ["estimator.params.learning_rate=loguniform(1e-4,1e-1)"])
    trials = draw_trials(space, random=8, seed=0)
"""

from __future__ import annotations

import itertools
import json
import math
import random as _random
import re
from dataclasses import dataclass, field
from typing import Any

from flows.config import ConfigError, PipelineConfig, load_config, yaml_load

__all__ = [
    "Distribution",
    "SweepPlan",
    "SweepSpace",
    "Trial",
    "draw_trials",
    "metric_goal",
    "parse_space",
    "plan_trials",
    "prepare_sweep",
    "yaml_text",
]

DISTRIBUTIONS = "uniform(low,high), loguniform(low,high), int(low,high) or choice(a,b,...)"
MAX_TRIALS = 1000
LOWER_IS_BETTER = ("loss", "log_loss", "mse", "rmse", "mae")


@dataclass(frozen=True)
class Distribution:
    """A field's distribution in a random search.

    Attributes:
        kind: "uniform", "loguniform", "int" or "choice".
        args: (low, high), or the choices.
    """

    kind: str
    args: tuple[Any, ...]

    def draw(self, rng: _random.Random) -> Any:
        """One value (floats rounded to 4 significant digits, so run names stay readable)."""
        if self.kind == "choice":
            return rng.choice(self.args)
        low, high = self.args
        if self.kind == "int":
            return rng.randint(int(low), int(high))
        if self.kind == "uniform":
            value = rng.uniform(low, high)
        else:
            value = math.exp(rng.uniform(math.log(low), math.log(high)))
        return float(f"{value:.4g}")

    def __str__(self) -> str:
        return f"{self.kind}({', '.join(json.dumps(a) for a in self.args)})"


@dataclass(frozen=True)
class SweepSpace:
    """The fields a sweep varies: `grid` (field -> values) and `samples` (field -> Distribution)."""

    grid: dict[str, list[Any]] = field(default_factory=dict)
    samples: dict[str, Distribution] = field(default_factory=dict)

    def describe(self) -> dict[str, str]:
        """Each field and what it ranges over, as text (logged on the sweep's parent run)."""
        out = {k: json.dumps(v) for k, v in self.grid.items()}
        out.update({k: str(d) for k, d in self.samples.items()})
        return out


@dataclass(frozen=True)
class Trial:
    """One point of the space.

    Attributes:
        number: 1, 2, ... in the order drawn.
        values: field -> value, for the fields the sweep varies.
    """

    number: int
    values: dict[str, Any]

    @property
    def name(self) -> str:
        """A readable run name: `trial-2 learning_rate=0.1 batch_size=32` (the fields' last parts)."""
        shown = " ".join(f"{_short(k)}={_text(v)}" for k, v in self.values.items())
        return f"trial-{self.number} {shown}".strip()

    def overrides(self) -> list[str]:
        """The trial's values as `--set` overrides (YAML, as `--set` reads them)."""
        return [f"{k}={yaml_text(v)}" for k, v in self.values.items()]


def yaml_text(value: Any) -> str:
    """`value` as one line of YAML (`0.001`, `Adam`, `[16, 16]`), as `--set` reads it back."""
    import yaml

    return yaml.safe_dump(value, default_flow_style=True, width=10**6).removesuffix("\n...\n").strip()


def _short(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ""))


def _split(item: str, option: str, example: str) -> tuple[str, str]:
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key or not raw.strip() or not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*", key):
        raise ConfigError(f"{option} {item!r}: expected FIELD=..., e.g. {option} {example}")
    return key, raw.strip()


def _yaml_list(raw: str, what: str) -> list[Any]:
    import yaml

    try:
        return yaml_load(f"[{raw}]")  # 1e-4 is a float, as in configs
    except yaml.YAMLError:
        raise ConfigError(f"{what}: the values are not comma-separated YAML (quote strings holding commas)") from None


def parse_space(grid: list[str], samples: list[str]) -> SweepSpace:
    """Parse `--grid KEY=V1,V2` and `--sample KEY=DIST(...)` options into a `SweepSpace`.

    Raises:
        ConfigError: a malformed option, an empty or repeated field, an unknown distribution or
            bad bounds, naming the option and what is expected.
    """
    space = SweepSpace()
    for item in grid:
        key, raw = _split(item, "--grid", "estimator.params.learning_rate=0.01,0.1")
        values = _yaml_list(raw, f"--grid {item!r}")
        if key in space.grid:
            raise ConfigError(f"--grid {key} is given twice; list all its values in one --grid {key}=V1,V2")
        if len(values) != len({json.dumps(v, sort_keys=True) for v in values}):
            raise ConfigError(f"--grid {item!r} repeats a value")
        space.grid[key] = values
    for item in samples:
        key, raw = _split(item, "--sample", "estimator.params.learning_rate=loguniform(1e-4,1e-1)")
        if key in space.grid or key in space.samples:
            raise ConfigError(f"--sample {key}: the field is already swept; give it one --grid or one --sample")
        space.samples[key] = _distribution(key, raw)
    return space


def _distribution(key: str, raw: str) -> Distribution:
    where = f"--sample {key}={raw}"
    match = re.fullmatch(r"(\w+)\s*\((.*)\)", raw)
    if not match or match.group(1) not in ("uniform", "loguniform", "int", "choice"):
        raise ConfigError(f"{where}: expected one of {DISTRIBUTIONS}")
    kind, args = match.group(1), _yaml_list(match.group(2), where)
    if kind == "choice":
        if not args:
            raise ConfigError(f"{where}: choice needs at least one value")
        return Distribution(kind, tuple(args))
    numeric = all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args)
    if len(args) != 2 or not numeric or not args[0] < args[1]:
        raise ConfigError(f"{where}: {kind} needs two numbers low < high, e.g. {kind}(1, 10)")
    if kind == "loguniform" and args[0] <= 0:
        raise ConfigError(f"{where}: loguniform needs 0 < low < high")
    if kind == "int" and not all(float(a).is_integer() for a in args):
        raise ConfigError(f"{where}: int needs integer bounds")
    return Distribution(kind, (args[0], args[1]))


def draw_trials(space: SweepSpace, random: int | None = None, seed: int = 0) -> list[Trial]:
    """The trials: every combination of the grid (random=None), or `random` seeded draws.

    Raises:
        ConfigError: an empty space, `--sample` without `--random`, or more than 1000 trials.
    """
    if not space.grid and not space.samples:
        raise ConfigError("nothing to sweep: give --grid FIELD=V1,V2 and/or --random N with --sample FIELD=DIST")
    if random is None:
        if space.samples:
            raise ConfigError(f"--sample {next(iter(space.samples))} needs --random N (how many trials to draw)")
        keys = list(space.grid)
        combos = list(itertools.islice(itertools.product(*space.grid.values()), MAX_TRIALS + 1))
        if len(combos) > MAX_TRIALS:
            raise ConfigError(f"the grid has more than {MAX_TRIALS} combinations; use --random N to draw some")
        return [Trial(i, dict(zip(keys, combo, strict=True))) for i, combo in enumerate(combos, 1)]
    if not 1 <= random <= MAX_TRIALS:
        raise ConfigError(f"--random {random}: expected a number of trials from 1 to {MAX_TRIALS}")
    rng = _random.Random(seed)
    trials = []
    for number in range(1, random + 1):
        values = {k: rng.choice(v) for k, v in space.grid.items()}
        values.update({k: d.draw(rng) for k, d in space.samples.items()})
        trials.append(Trial(number, values))
    return trials


def plan_trials(
    config: str | dict[str, Any], overrides: list[str], trials: list[Trial], fixed: list[str] | None = None
) -> list[tuple[Trial, PipelineConfig]]:
    """Each trial's validated config: the file, then `overrides` (`--set`), then the trial's values,
    then `fixed` (what the sweep itself sets).

    Raises:
        ConfigError: a trial's config is invalid (the message names the trial and the field).
    """
    import copy

    planned = []
    for trial in trials:
        source = copy.deepcopy(config) if isinstance(config, dict) else config  # load_config edits a dict in place
        try:
            planned.append((trial, load_config(source, [*overrides, *trial.overrides(), *(fixed or [])])))
        except ConfigError as exc:
            raise ConfigError(f"{trial.name}: {exc}") from None
    return planned


@dataclass
class SweepPlan:
    """A checked sweep: the base config, the space, and each trial with its validated config.

    Attributes:
        config: the base config (file and `--set`). space, trials: the space and each trial's config.
        mode: "grid" or "random". seed: the random draws' seed (None for a grid).
        metric, goal: what ranks the trials ("eval_accuracy", "max"); None: the primary metric
            the trials' runs record (tag `skflow.primary_metric`, as `skflow runs` sorts by).
        model_name: the registered model the best trial's model joins (None: not registered).
    """

    config: PipelineConfig
    space: SweepSpace
    trials: list[tuple[Trial, PipelineConfig]]
    mode: str
    seed: int | None
    metric: str | None
    goal: str | None
    model_name: str | None


def metric_goal(metric: str) -> str:
    """ "min" for a loss or error metric, else "max" (an `eval_` prefix is ignored)."""
    return "min" if metric.removeprefix("eval_") in LOWER_IS_BETTER else "max"


def prepare_sweep(
    config: str | dict[str, Any],
    overrides: list[str] | None = None,
    grid: list[str] | None = None,
    samples: list[str] | None = None,
    random: int | None = None,
    seed: int = 0,
    metric: str | None = None,
    model_name: str | None = None,
    register: bool = True,
) -> SweepPlan:
    """Parse and check a sweep without starting anything: the space, the trials, every trial's config.

    Args:
        config: the pipeline's YAML file (or a dict). overrides: `--set` overrides for every trial.
        grid: `FIELD=V1,V2` items. samples: `FIELD=DIST` items (with `random`).
        random: draw this many trials (None: every grid combination). seed: the draws' seed. default=0.
        metric: the metric ranking the trials, e.g. "accuracy" or "eval_loss" (default: the primary
            metric each trial's run records, as `skflow runs` sorts by).
        model_name: the registered model the best trial joins (default: `tracking.registered_model`,
            else the experiment's name). register: register the best trial's model. default=True.

    Returns:
        a `SweepPlan`. Each trial logs its model when registering (the registry needs one), does
        not register it itself, skips the config's `predict` section (trials would overwrite one
        file) and shows no progress bar (trials print at once).

    Raises:
        ConfigError: a bad option, field or value, naming it.
    """
    import copy

    from flows.sources import check_columns

    overrides = list(overrides or [])
    base = load_config(copy.deepcopy(config) if isinstance(config, dict) else config, overrides)
    space = parse_space(grid or [], samples or [])
    trials = draw_trials(space, random=random, seed=seed)
    chosen = None
    if metric is not None:
        chosen = metric.strip() if metric.strip().startswith("eval_") else f"eval_{metric.strip()}"
        if chosen == "eval_":
            raise ConfigError("--metric '': expected a metric name, e.g. --metric accuracy")
    name = (model_name or base.tracking.registered_model or base.experiment) if register else None
    fixed = ["tracking.registered_model=null", "predict=null"]
    if register:
        fixed.append("tracking.log_model=true")
    if "verbose" not in base.estimator.config:
        fixed.append("estimator.config.verbose=0")
    planned = plan_trials(config, overrides, trials, fixed)
    for _, trial_config in planned:
        check_columns(trial_config)
    goal = None if chosen is None else metric_goal(chosen)
    mode = "random" if random else "grid"
    return SweepPlan(base, space, planned, mode, seed if random else None, chosen, goal, name)
