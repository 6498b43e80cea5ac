"""Champion/challenger: which of two models serves, judged on the same fresh data, with the reason.

`score_model` scores a logged model's predictions of held-out rows (`score_predictions`: the same
code for champion and challenger, whatever estimator each is); `decide` compares the challenger's score with the champion's on one metric, knowing whether higher
or lower is better, and promotes only when the challenger wins by at least `min_delta`. The
`Decision` carries both scores and a sentence saying why, which the retraining flow records on the
challenger's MLflow run, on its model version and in a Prefect artifact.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "HIGHER_IS_BETTER",
    "LOWER_IS_BETTER",
    "Decision",
    "decide",
    "higher_is_better",
    "score_model",
    "score_predictions",
]

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


def score_predictions(predictions: pd.DataFrame, y: Any, metric: str) -> float:
    """`metric` of a logged model's predictions (the columns skflow's pyfunc gives: `classes`,
    `class_ids`, `probabilities_<i>`, or `predictions`) against the true values `y`.

    Raises:
        ValueError: a metric these predictions cannot give (e.g. `auc` without probabilities).
    """
    from sklearn import metrics as skm

    name = metric.removeprefix("eval_")
    y = np.asarray(y)
    if name in ("mse", "rmse", "mae", "r2"):
        column = "predictions" if "predictions" in predictions else predictions.columns[0]
        predicted = predictions[column].to_numpy(dtype=np.float64)
        if name == "r2":
            return float(skm.r2_score(y, predicted))
        if name == "mae":
            return float(skm.mean_absolute_error(y, predicted))
        mse = float(skm.mean_squared_error(y, predicted))
        return float(np.sqrt(mse)) if name == "rmse" else mse
    labels = pd.Series(y).astype(str).to_numpy()
    if "classes" in predictions:
        predicted = predictions["classes"].astype(str).to_numpy()
    elif "class_ids" in predictions:
        predicted = predictions["class_ids"].astype(str).to_numpy()
    else:
        raise ValueError(f"cannot score {metric!r}: the model's predictions {list(predictions)} hold no classes")
    if name == "accuracy":
        return float(skm.accuracy_score(labels, predicted))
    if name.startswith(("precision", "recall", "f1")):
        base, _, average = name.partition("_")
        score = {"precision": skm.precision_score, "recall": skm.recall_score, "f1": skm.f1_score}[base]
        if average:
            return float(score(labels, predicted, average=average, zero_division=0))
        return float(score(labels, predicted, pos_label=sorted(set(labels) | set(predicted))[-1], zero_division=0))
    if name in ("auc", "log_loss"):
        probability_columns = sorted(
            (c for c in predictions if str(c).startswith("probabilities_")), key=lambda c: int(str(c).split("_")[-1])
        )
        if not probability_columns:
            raise ValueError(
                f"cannot score {metric!r}: the model's predictions {list(predictions)} hold no probabilities"
            )
        probabilities = predictions[probability_columns].to_numpy(dtype=np.float64)
        ids = _class_ids(labels, predictions, len(probability_columns))
        if name == "log_loss":
            return float(skm.log_loss(ids, probabilities, labels=list(range(len(probability_columns)))))
        if len(probability_columns) == 2:
            return float(skm.roc_auc_score(ids == 1, probabilities[:, 1]))
        return float(
            skm.roc_auc_score(ids, probabilities, multi_class="ovr", labels=list(range(len(probability_columns))))
        )
    raise ValueError(f"cannot score {metric!r} from a model's predictions")


def _class_ids(labels: np.ndarray, predictions: pd.DataFrame, n_classes: int) -> np.ndarray:
    """The probability column of each true label: learned from the predictions' (classes, class_ids)
    pairs; labels never predicted are their own id when they are integers below `n_classes`."""
    mapping: dict[str, int] = {}
    if "classes" in predictions and "class_ids" in predictions:
        pairs = zip(predictions["classes"].astype(str), predictions["class_ids"].astype(int), strict=True)
        mapping = dict(pairs)
    ids = []
    for label in labels:
        if label in mapping:
            ids.append(mapping[label])
        elif label.lstrip("-").isdigit() and 0 <= int(label) < n_classes:
            ids.append(int(label))
        else:
            raise ValueError(f"cannot score probabilities: class {label!r} of the held-out rows is never predicted")
    return np.asarray(ids)


def score_model(
    model_uri: str | None,
    rows: pd.DataFrame,
    target: str,
    metric: str,
    tracking_uri: str | None = None,
    estimator: Any = None,
    features: list[str] | None = None,
) -> float:
    """Score `metric` of a model's predictions of `rows`: a logged model (`model_uri`, loaded), or an
    estimator in memory (`estimator` with its `features`: the weights a pipeline just logged, whose
    outputs `flows.prediction.estimator_predictor` names as the logged model names them). Either
    way the predictions are scored by `score_predictions`."""
    from flows.prediction import estimator_predictor, load_logged_model, model_predictor

    if estimator is not None:
        predict, columns = estimator_predictor(estimator, list(features or []))
    else:
        predict, columns = model_predictor(load_logged_model(model_uri, tracking_uri))
    inputs = rows[columns] if columns is not None else rows.drop(columns=[target])
    return score_predictions(predict(inputs), rows[target], metric)
