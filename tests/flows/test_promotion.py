"""Champion/challenger decisions: direction per metric, min_delta, and the reason on record."""

from __future__ import annotations

import pytest

from flows.promotion import decide, higher_is_better


@pytest.mark.parametrize(
    ("metric", "champion", "challenger", "min_delta", "promote"),
    [
        ("accuracy", 0.90, 0.92, 0.01, True),
        ("accuracy", 0.90, 0.905, 0.01, False),  # better, but by less than min_delta
        ("accuracy", 0.90, 0.85, 0.0, False),
        ("eval_accuracy", 0.90, 0.90, 0.0, False),  # a tie keeps the champion
        ("loss", 0.30, 0.20, 0.05, True),  # lower is better
        ("eval_rmse", 10.0, 11.0, 0.0, False),
        ("f1_macro", 0.5, 0.6, 0.1, True),
        ("r2", 0.5, 0.55, 0.0, True),
    ],
)
def test_the_challenger_wins_only_by_at_least_min_delta_in_the_metrics_direction(
    metric, champion, challenger, min_delta, promote
):
    decision = decide(metric, champion, challenger, min_delta)
    assert decision.promote is promote
    assert f"{challenger:.6g}" in decision.reason and f"{champion:.6g}" in decision.reason
    tags = decision.as_tags()
    assert tags["skflow.promotion.decision"] == ("promoted" if promote else "kept champion")
    assert tags["skflow.promotion.champion_score"] == str(champion)


def test_the_first_model_becomes_champion_and_the_markdown_says_so():
    decision = decide("accuracy", None, 0.8)
    assert decision.promote and "first model becomes champion" in decision.reason
    assert "**Promoted**" in decision.to_markdown() and "| champion | — |" in decision.to_markdown()


def test_unknown_directions_and_bad_arguments_are_errors():
    assert higher_is_better("val_auc") and not higher_is_better("eval_mae")
    with pytest.raises(ValueError, match=r"direction is unknown.*Higher is better for"):
        decide("mean_prediction", 1.0, 2.0)
    with pytest.raises(ValueError, match=r"min_delta=-0.1"):
        decide("accuracy", 0.5, 0.6, -0.1)
    with pytest.raises(ValueError, match=r"challenger's accuracy is nan"):
        decide("accuracy", 0.5, float("nan"))
