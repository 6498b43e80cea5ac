"""Drift between training data and new data, and the schema check before a retrain."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flows.drift import SchemaError, check_schema, column_kinds, drift_report, population_stability_index
from flows.sources import demo_churn


def test_the_same_distribution_shows_no_shift_and_a_moved_one_a_major_shift():
    reference = demo_churn(rows=3000, seed=0)
    same = demo_churn(rows=3000, seed=1)
    report = drift_report(reference, same, features=["age", "income", "city", "plan", "autopay"])
    assert set(report.table["shift"]) == {"none"} and report.drifted == []
    moved = same.assign(income=same["income"] * 3, city=pd.Categorical(["oslo"] * len(same)))
    report = drift_report(reference, moved, features=["age", "income", "city", "plan"])
    assert sorted(report.drifted) == ["city", "income"]
    row = report.table.set_index("feature").loc["income"]
    assert row["kind"] == "numeric" and row["psi"] > 1 and row["ks"] > 0.5
    assert "| income | numeric |" in report.to_markdown()
    assert report.to_records()[0]["feature"] in ("income", "city")


def test_psi_matches_its_definition_and_new_categories_count_as_drift():
    assert population_stability_index([50, 50], [50, 50]) == pytest.approx(0.0)
    expected = (0.7 - 0.5) * np.log(0.7 / 0.5) + (0.3 - 0.5) * np.log(0.3 / 0.5)
    assert population_stability_index([50, 50], [70, 30]) == pytest.approx(expected)
    reference = pd.DataFrame({"plan": ["basic", "pro"] * 50})
    current = pd.DataFrame({"plan": ["basic", "pro", "enterprise", "enterprise"] * 25})
    assert drift_report(reference, current).drifted == ["plan"]


def test_the_schema_check_names_missing_and_retyped_columns():
    reference = demo_churn(rows=50)
    expected = column_kinds(reference)
    check_schema(expected, reference.assign(extra=1))  # extra columns are fine
    changed = reference.drop(columns=["plan"]).assign(age=reference["age"].astype(str))
    with pytest.raises(
        SchemaError,
        match=r"column\(s\) \['plan'\] are missing; column\(s\) changed kind: 'age' \(numeric -> categorical\)",
    ):
        check_schema(expected, changed)
