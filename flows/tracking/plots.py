"""PNG figures a run carries: the loss curve and, for classifiers, the confusion matrix.

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no display, safe in a background
thread). The loss curve is drawn from the run's *delivered* metric history, so a resumed run's
curve covers every fit, and a curve drawn after an outage covers the steps the outage held back.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["confusion_matrix_figure", "log_figure", "log_metric_plot", "metric_figure"]

PLOTS_DIR = "plots"


def metric_figure(histories: Mapping[str, Sequence[tuple[int, float]]], title: str = "Training") -> Any:
    """A line per metric: `{"loss": [(step, value), ...], "val_loss": [...]}` against the global step."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0), dpi=100)
    ax = fig.add_subplot()
    for key, points in histories.items():
        if points:
            steps, values = zip(*sorted(points))
            ax.plot(steps, values, label=key, marker="." if len(points) < 30 else None)
    ax.set_xlabel("global step")
    ax.set_ylabel("value")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if any(histories.values()):
        ax.legend()
    fig.tight_layout()
    return fig


def confusion_matrix_figure(y_true: Any, y_pred: Any, labels: Sequence[Any] | None = None) -> Any:
    """The confusion matrix of `y_pred` against `y_true` (rows: true labels), counts in the cells."""
    import numpy as np
    from matplotlib.figure import Figure
    from sklearn.metrics import confusion_matrix

    labels = (
        list(labels)
        if labels is not None
        else sorted(set(np.asarray(y_true).tolist()) | set(np.asarray(y_pred).tolist()))
    )
    matrix = confusion_matrix(y_true, y_pred, labels=labels)
    size = min(3.0 + 0.5 * len(labels), 14.0)
    fig = Figure(figsize=(size, size), dpi=100)
    ax = fig.add_subplot()
    ax.imshow(matrix, cmap="Blues")
    ticks = range(len(labels))
    ax.set_xticks(ticks, [str(v) for v in labels], rotation=45 if len(labels) > 4 else 0)
    ax.set_yticks(ticks, [str(v) for v in labels])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if len(labels) <= 30:
        threshold = matrix.max() / 2 if matrix.size else 0
        for i in ticks:
            for j in ticks:
                color = "white" if matrix[i, j] > threshold else "black"
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", color=color, fontsize=8)
    ax.set_title("Confusion matrix")
    fig.tight_layout()
    return fig


def log_figure(client: Any, run_id: str, fig: Any, name: str) -> None:
    """Render `fig` as PNG and log it as `plots/<name>` of run `run_id`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    with tempfile.TemporaryDirectory(prefix="skflow_plot_") as tmp:
        path = os.path.join(tmp, name)
        fig.savefig(path, format="png")
        client.log_artifact(run_id, path, PLOTS_DIR)


def log_metric_plot(client: Any, run_id: str, keys: Sequence[str], name: str = "loss_curve.png") -> None:
    """Draw the delivered history of metrics `keys` of run `run_id` and log it as `plots/<name>`."""
    histories = {key: [(m.step, m.value) for m in client.get_metric_history(run_id, key)] for key in keys}
    log_figure(client, run_id, metric_figure({k: v for k, v in histories.items() if v}), name)
