"""Compare MLflow runs at a glance: the parameters that differ, the metrics, their curves overlaid.

`compare_runs(run_ids)` reads the runs through MLflow's client (what the MLflow UI shows), keeps
the parameters whose values differ between them, takes each run's latest value of every metric,
draws the training loss and validation curves of all runs on one figure (saved as a PNG and logged
to each run as `compare/<runs>.png`), and gives the MLflow UI URL that compares the same runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pandas as pd

from flows.tracking.store import bounded_requests, get_client, resolve_store

__all__ = ["Comparison", "compare_runs", "compare_url", "curve_keys", "describe", "print_comparison"]

DEFAULT_UI = "http://127.0.0.1:5000"
_CURVES = ("loss", "val_loss")


@dataclass(frozen=True)
class Comparison:
    """What `compare_runs` found.

    Attributes:
        runs: one row per run: run id, name, status, experiment id.
        params: parameters whose values differ between the runs (rows: params; columns: run names).
        metrics: every metric's latest value (rows: metrics; columns: run names).
        plot_path: the PNG overlaying the runs' curves.
        ui_url: the MLflow UI page comparing these runs.
    """

    runs: pd.DataFrame
    params: pd.DataFrame
    metrics: pd.DataFrame
    plot_path: str
    ui_url: str


def curve_keys(metric_names: list[str]) -> list[str]:
    """The metrics drawn as curves: the training loss and every validation metric (`val_*`)."""
    return [k for k in metric_names if k in _CURVES or k.startswith("val_")]


def compare_url(run_ids: list[str], experiment_ids: list[str], ui_base: str) -> str:
    """The MLflow UI's compare page for these runs (`#/compare-runs?runs=[...]&experiments=[...]`)."""
    runs = quote(json.dumps(list(run_ids)), safe="")
    experiments = quote(json.dumps(sorted(set(experiment_ids))), safe="")
    return f"{ui_base.rstrip('/')}/#/compare-runs?runs={runs}&experiments={experiments}"


def compare_runs(
    run_ids: list[str],
    tracking_uri: str | None = None,
    output_dir: str | None = None,
    ui_base: str | None = None,
    log_plot: bool = True,
) -> Comparison:
    """Compare runs by id.

    Args:
        run_ids: two or more run ids (one works too: its metrics and curves).
        tracking_uri: default: `MLFLOW_TRACKING_URI`, else the embedded store.
        output_dir: where the PNG goes. default: a new temporary directory.
        ui_base: the MLflow UI's address. default: the tracking server for an http(s) tracking URI,
            else http://127.0.0.1:5000 (`skflow ui`).
        log_plot: also log the PNG to every compared run as `compare/<runs>.png`. default=True.

    Raises:
        ValueError: no run id, or a run id the store does not have (naming it).
    """
    if not run_ids:
        raise ValueError("compare_runs needs at least one run id.")
    store = resolve_store(tracking_uri)
    client = get_client(store.tracking_uri)
    runs = []
    with bounded_requests():
        for run_id in run_ids:
            try:
                runs.append(client.get_run(run_id))
            except Exception as exc:  # noqa: BLE001 - MLflow raises its own error kinds per store
                raise ValueError(f"No run {run_id!r} in {store.tracking_uri}: {exc}") from None
    names = _unique([r.info.run_name or r.info.run_id[:8] for r in runs])
    table = pd.DataFrame(
        {
            "run_id": [r.info.run_id for r in runs],
            "name": names,
            "status": [r.info.status for r in runs],
            "experiment_id": [r.info.experiment_id for r in runs],
        }
    )
    params = pd.DataFrame({n: pd.Series(r.data.params, dtype=object) for n, r in zip(names, runs, strict=True)})
    if len(runs) > 1 and not params.empty:
        params = params[params.astype(str).nunique(axis=1, dropna=False) > 1]
    metrics = pd.DataFrame({n: pd.Series(r.data.metrics, dtype=float) for n, r in zip(names, runs, strict=True)})
    keys = curve_keys(sorted(metrics.index))
    with bounded_requests():
        histories = {
            (name, key): [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)]
            for name, run in zip(names, runs, strict=True)
            for key in keys
        }
    digest = hashlib.sha1("".join(run_ids).encode(), usedforsecurity=False).hexdigest()[:10]
    directory = output_dir or tempfile.mkdtemp(prefix="skflow_compare_")
    os.makedirs(directory, exist_ok=True)
    plot_path = os.path.join(directory, f"compare-{digest}.png")
    _draw(histories, plot_path)
    if log_plot:
        with bounded_requests():
            for run in runs:
                client.log_artifact(run.info.run_id, plot_path, "compare")
    base = ui_base or (store.tracking_uri if store.is_remote else DEFAULT_UI)
    url = compare_url(list(run_ids), list(table["experiment_id"]), base)
    return Comparison(table, params.sort_index(), metrics.sort_index(), plot_path, url)


def _draw(histories: dict[tuple[str, str], list[tuple[int, float]]], path: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    keys = sorted({key for _, key in histories}, key=lambda k: (k != "loss", k))
    fig = Figure(figsize=(6.4 * max(len(keys), 1) / 1.6, 4.0), dpi=100)
    for i, key in enumerate(keys or ["loss"]):
        ax = fig.add_subplot(1, max(len(keys), 1), i + 1)
        for (name, k), points in histories.items():
            if k == key and points:
                steps, values = zip(*sorted(points))
                ax.plot(steps, values, label=name, marker="." if len(points) < 30 else None)
        ax.set_title(key)
        ax.set_xlabel("global step")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.tight_layout()
    FigureCanvasAgg(fig)
    fig.savefig(path, format="png")


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return out


def describe(comparison: Comparison) -> dict[str, Any]:
    """A JSON-friendly summary (for `skflow compare --json` and tests)."""
    return {
        "runs": comparison.runs.to_dict("records"),
        "params": comparison.params.astype(object).where(comparison.params.notna(), None).to_dict(),
        "metrics": comparison.metrics.astype(object).where(comparison.metrics.notna(), None).to_dict(),
        "plot": comparison.plot_path,
        "url": comparison.ui_url,
    }


def print_comparison(comparison: Comparison) -> None:
    """Print a comparison (`skflow compare`): the runs, the params that differ, the metrics, the PNG, the URL."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console = console if console.is_terminal else Console(width=200)  # a pipe or a log: no folded tables
    names = list(comparison.runs["name"])
    runs = Table(title="runs")
    for column in ("name", "run_id", "status"):
        runs.add_column(column)
    for row in comparison.runs.itertuples():
        runs.add_row(row.name, row.run_id, row.status)
    console.print(runs)
    for title, frame, fmt in (
        ("parameters that differ", comparison.params, str),
        ("metrics (latest value)", comparison.metrics, lambda v: f"{v:.6g}"),
    ):
        table = Table(title=title)
        table.add_column("")
        for name in names:
            table.add_column(name, justify="right")
        for key, row in frame.iterrows():
            table.add_row(str(key), *("" if pd.isna(v) else fmt(v) for v in row.tolist()))
        if frame.empty:
            console.print(f"{title}: none")
        else:
            console.print(table)
    console.print(f"curves: {comparison.plot_path}")
    console.print(f"MLflow UI: {comparison.ui_url}")
