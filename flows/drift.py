"""How far new data has moved from the data a model was trained on, feature by feature.

`drift_report(reference, current)` compares two DataFrames column by column: for numeric columns the
population stability index (PSI) over the reference's deciles and the two-sample Kolmogorov-Smirnov
statistic, for categorical ones the PSI over the categories (new categories pooled into one bin).
The PSI reads as the industry's rule of thumb: below 0.1 no shift, 0.1-0.25 a moderate one, above
0.25 a major one. `check_schema(expected, current)` refuses data whose columns or kinds changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "DriftReport",
    "SchemaError",
    "check_kinds",
    "check_schema",
    "column_kinds",
    "drift_report",
    "dtype_kind",
    "population_stability_index",
]

PSI_MODERATE = 0.1
PSI_MAJOR = 0.25
_EPS = 1e-4  # floor of a bin's share, so an empty bin does not make the PSI infinite


class SchemaError(ValueError):
    """New data whose columns or column kinds differ from those the model was trained on."""


def column_kinds(frame: pd.DataFrame) -> dict[str, str]:
    """Column -> "numeric", "categorical", "bool" or "datetime" (the kinds a schema check compares)."""
    kinds = {}
    for name, dtype in frame.dtypes.items():
        if pd.api.types.is_bool_dtype(dtype):
            kinds[str(name)] = "bool"
        elif pd.api.types.is_datetime64_any_dtype(dtype):
            kinds[str(name)] = "datetime"
        elif pd.api.types.is_numeric_dtype(dtype):
            kinds[str(name)] = "numeric"
        else:
            kinds[str(name)] = "categorical"
    return kinds


def dtype_kind(dtype: str) -> str:
    """The kind ("numeric", "bool", "datetime" or "categorical") of a dtype as text: a pandas dtype
    ("float64", "object", "category"), an Arrow type ("double", "large_string", "timestamp[ns]") or an
    MLflow signature type ("float", "long", "string", "boolean")."""
    lowered = dtype.lower()
    if lowered.startswith("bool"):
        return "bool"
    if "date" in lowered or "time" in lowered:
        return "datetime"
    if lowered.startswith(("int", "uint", "float", "double", "long", "halffloat", "decimal")):
        return "numeric"
    return "categorical"


def check_schema(expected: Mapping[str, str], current: pd.DataFrame, where: str = "the new data") -> None:
    """Raise `SchemaError` naming every column the model expects that is missing from `current`,
    and every column whose kind changed (numeric -> categorical, ...). Extra columns are fine.

    Args:
        expected: column -> kind, as `column_kinds` gives them for the training data.
        current: the new data.
        where: how to call the new data in the message.
    """
    check_kinds(expected, column_kinds(current), where)


def check_kinds(expected: Mapping[str, str], kinds: Mapping[str, str], where: str = "the new data") -> None:
    """`check_schema` on column -> kind mappings (e.g. a source's schema through `dtype_kind`).

    Raises:
        SchemaError: naming the missing columns, the retyped ones (expected -> received kind) and the fix.
    """
    missing = [c for c in expected if c not in kinds]
    retyped = [f"{c!r} ({expected[c]} -> {kinds[c]})" for c in expected if c in kinds and kinds[c] != expected[c]]
    problems = []
    if missing:
        problems.append(f"column(s) {missing} are missing")
    if retyped:
        problems.append(f"column(s) changed kind: {', '.join(retyped)}")
    if problems:
        raise SchemaError(
            f"{where} does not match the champion model's training data: {'; '.join(problems)}. Fix the data "
            f"(or train a new model on the new schema with train_flow). Expected columns: {dict(expected)}."
        )


def population_stability_index(reference: np.ndarray, current: np.ndarray) -> float:
    """The PSI between two distributions given as bin counts (or shares) over the same bins."""
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    ref = np.maximum(ref / max(ref.sum(), 1.0), _EPS)
    cur = np.maximum(cur / max(cur.sum(), 1.0), _EPS)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def _numeric_psi(reference: pd.Series, current: pd.Series, bins: int) -> float:
    ref = reference.dropna().to_numpy(dtype=np.float64)
    cur = current.dropna().to_numpy(dtype=np.float64)
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1])) if len(ref) else np.array([])
    ref_counts = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=len(edges) + 1)
    cur_counts = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=len(edges) + 1)
    return population_stability_index(ref_counts, cur_counts)


def _categorical_psi(reference: pd.Series, current: pd.Series) -> float:
    ref = reference.astype("object").where(reference.notna(), "<missing>").astype(str)
    cur = current.astype("object").where(current.notna(), "<missing>").astype(str)
    categories = list(pd.unique(ref))
    ref_counts = ref.value_counts().reindex(categories, fill_value=0).to_numpy()
    known = cur.isin(categories)
    cur_counts = cur[known].value_counts().reindex(categories, fill_value=0).to_numpy()
    return population_stability_index(np.append(ref_counts, 0), np.append(cur_counts, int((~known).sum())))


def _ks(reference: pd.Series, current: pd.Series) -> float:
    from scipy.stats import ks_2samp

    ref, cur = reference.dropna().to_numpy(np.float64), current.dropna().to_numpy(np.float64)
    if not len(ref) or not len(cur):
        return float("nan")
    return float(ks_2samp(ref, cur).statistic)


@dataclass(frozen=True)
class DriftReport:
    """Per-feature drift between training data (reference) and new data (current).

    Attributes:
        table: one row per feature: `feature`, `kind`, `psi`, `ks` (numeric only), `shift`
            ("none", "moderate", "major"), sorted by PSI, largest first.
        reference_rows, current_rows: the row counts compared.
    """

    table: pd.DataFrame
    reference_rows: int
    current_rows: int

    @property
    def drifted(self) -> list[str]:
        """Features with a major shift (PSI above 0.25)."""
        return self.table.loc[self.table["shift"] == "major", "feature"].tolist()

    def to_markdown(self) -> str:
        """The table as Markdown, for a Prefect artifact or a run note."""
        lines = [
            f"Drift of {self.current_rows} new rows against {self.reference_rows} training rows "
            f"(PSI: < {PSI_MODERATE} none, < {PSI_MAJOR} moderate, else major).",
            "",
            "| feature | kind | PSI | KS | shift |",
            "|---|---|---:|---:|---|",
        ]
        for row in self.table.itertuples(index=False):
            ks = "" if np.isnan(row.ks) else f"{row.ks:.3f}"
            lines.append(f"| {row.feature} | {row.kind} | {row.psi:.3f} | {ks} | {row.shift} |")
        return "\n".join(lines)

    def to_records(self) -> list[dict[str, object]]:
        """The table as a list of dicts (a Prefect table artifact takes this)."""
        return [
            {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
            for r in self.table.to_dict("records")
        ]


def drift_report(
    reference: pd.DataFrame, current: pd.DataFrame, features: list[str] | None = None, bins: int = 10
) -> DriftReport:
    """Compare `current` with `reference` on every feature (default: their common columns).

    Args:
        reference: the data the model was trained on.
        current: the new data.
        features: the columns to compare. default: the columns both frames have.
        bins: quantile bins of numeric columns (the reference's deciles by default).

    Returns:
        A `DriftReport`.
    """
    names = features if features is not None else [c for c in reference.columns if c in current.columns]
    kinds = column_kinds(reference[names])
    rows = []
    for name in names:
        kind = kinds[name]
        if kind == "numeric":
            psi, ks = _numeric_psi(reference[name], current[name], bins), _ks(reference[name], current[name])
        elif kind == "datetime":
            as_days = lambda s: s.astype("int64") / 86_400e9  # noqa: E731
            psi = _numeric_psi(as_days(reference[name]), as_days(current[name]), bins)
            ks = _ks(as_days(reference[name]), as_days(current[name]))
        else:
            psi, ks = _categorical_psi(reference[name], current[name]), float("nan")
        shift = "major" if psi > PSI_MAJOR else "moderate" if psi > PSI_MODERATE else "none"
        rows.append({"feature": name, "kind": kind, "psi": psi, "ks": ks, "shift": shift})
    table = pd.DataFrame(rows, columns=["feature", "kind", "psi", "ks", "shift"])
    table = table.sort_values("psi", ascending=False, kind="stable").reset_index(drop=True)
    return DriftReport(table, len(reference), len(current))
