"""Champion/challenger: which of two models serves, judged on the same fresh data, with the reason.

`decide` compares the challenger's score with the champion's on one metric, knowing whether higher
or lower is better, and promotes only when the challenger wins by at least `min_delta`. The
`Decision` carries both scores and a sentence saying why, which the retraining flow records on the
challenger's MLflow run, on its model version and in a Prefect artifact.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

__all__ = ["HIGHER_IS_BETTER", "LOWER_IS_BETTER", "Decision", "decide", "higher_is_better"]

HIGHER_IS_BETTER = frozenset(
    {
        "accuracy",
        "auc",
        "r2",
        *(f"{m}{a}" for m in ("precision", "recall", "f1") for a in ("", "_macro", "_micro", "_weighted")),
    }
)
LOWER_IS_BETTER = frozenset({"loss", "log_loss", "mse", "rmse", "mae"})


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of `metric` is better (an `eval_`/`val_` prefix is ignored).

    Raises:
        ValueError: a metric whose direction is unknown, naming the known ones.
    """
    name = metric.removeprefix("eval_").removeprefix("val_")
    if name in HIGHER_IS_BETTER:
        return True
    if name in LOWER_IS_BETTER:
        return False
    raise ValueError(
        f"Cannot judge models on metric {metric!r}: its direction is unknown. Higher is better for "
        f"{sorted(HIGHER_IS_BETTER)}; lower for {sorted(LOWER_IS_BETTER)}."
    )


@dataclass(frozen=True)
class Decision:
    """The outcome of a champion/challenger comparison.

    Attributes:
        promote: whether the challenger replaces the champion.
        metric: the metric compared.
        champion_score, challenger_score: their values on the same held-out data (the champion's
            is None when there is no champion yet).
        delta: the challenger's improvement, in the metric's better direction (positive: better).
        min_delta: the improvement required.
        reason: one sentence saying why.
    """

    promote: bool
    metric: str
    champion_score: float | None
    challenger_score: float
    delta: float | None
    min_delta: float
    reason: str

    def as_tags(self, prefix: str = "skflow.promotion") -> dict[str, str]:
        """The decision as MLflow tags (`skflow.promotion.decision` = promoted / kept champion, ...)."""
        values = {k: v for k, v in asdict(self).items() if v is not None}
        values["decision"] = "promoted" if self.promote else "kept champion"
        del values["promote"]
        return {f"{prefix}.{k}": str(v) for k, v in values.items()}

    def to_markdown(self) -> str:
        """A short Markdown summary (for a Prefect artifact)."""
        champion = "—" if self.champion_score is None else f"{self.champion_score:.6g}"
        verdict = "**Promoted** the challenger to champion." if self.promote else "**Kept** the champion."
        return (
            f"{verdict}\n\n| | {self.metric} |\n|---|---:|\n| champion | {champion} |\n"
            f"| challenger | {self.challenger_score:.6g} |\n\n{self.reason}"
        )


def decide(metric: str, champion_score: float | None, challenger_score: float, min_delta: float = 0.0) -> Decision:
    """Promote the challenger only when it beats the champion on `metric` by at least `min_delta`.

    Args:
        metric: the metric both were evaluated on (its direction is known: see `higher_is_better`).
        champion_score: the champion's score on the same data, or None without a champion (then the
            challenger is promoted: the first model becomes champion).
        challenger_score: the challenger's score.
        min_delta: the improvement required, in the metric's units (>= 0). default=0.

    Raises:
        ValueError: an unknown metric direction, a negative `min_delta`, or a challenger score that
            is not a finite number.
    """
    if min_delta < 0:
        raise ValueError(f"Invalid value for argument `min_delta`. Received: min_delta={min_delta!r}. Expected >= 0.")
    higher = higher_is_better(metric)
    if not math.isfinite(challenger_score):
        raise ValueError(f"The challenger's {metric} is {challenger_score}: it cannot be compared.")
    if champion_score is None:
        return Decision(
            True,
            metric,
            None,
            challenger_score,
            None,
            min_delta,
            "There was no champion: the first model becomes champion.",
        )
    delta = (challenger_score - champion_score) if higher else (champion_score - challenger_score)
    better = "higher" if higher else "lower"
    if not math.isfinite(champion_score):
        return Decision(
            True,
            metric,
            champion_score,
            challenger_score,
            None,
            min_delta,
            f"The champion's {metric} is {champion_score}: the challenger replaces it.",
        )
    if delta > 0 and delta >= min_delta - 1e-12:  # 0.6 - 0.5 is 0.0999...: a win by exactly min_delta counts
        reason = (
            f"The challenger's {metric} {challenger_score:.6g} is {abs(delta):.4g} {better} than the champion's "
            f"{champion_score:.6g}, at least the required {min_delta:g}."
        )
        return Decision(True, metric, champion_score, challenger_score, delta, min_delta, reason)
    if delta > 0:
        how = f"only {delta:.4g} {better}"
    elif delta < 0:
        how = f"{abs(delta):.4g} {'lower' if higher else 'higher'} (worse)"
    else:
        how = "no better"
    reason = (
        f"The challenger's {metric} {challenger_score:.6g} is {how} than the champion's {champion_score:.6g}; "
        f"promotion needs an improvement of at least {min_delta:g}."
    )
    return Decision(False, metric, champion_score, challenger_score, delta, min_delta, reason)
