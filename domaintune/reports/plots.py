"""Matplotlib figures for the run report, returned as inline ``data:image/png;base64`` URIs.

matplotlib is imported inside each function (about 0.5 s): training and the CLI never pay for it
unless a report is written. The Agg backend draws without a display.
"""

from __future__ import annotations

import base64
import io
from typing import Any

WIDTH, HEIGHT, DPI = 7.0, 3.2, 100


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _encode(figure: Any) -> str:
    """The figure as a base64 PNG data URI (closing it)."""
    plt = _pyplot()
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=DPI)
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def loss_curve(train: list[dict[str, Any]]) -> str | None:
    """Training loss (left axis) and learning rate (right axis) against the optimizer step."""
    points = [r for r in train if isinstance(r.get("loss"), (int, float))]
    if not points:
        return None
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(WIDTH, HEIGHT))
    steps = [r["step"] for r in points]
    axis.plot(steps, [r["loss"] for r in points], color="tab:blue", label="train loss")
    axis.set_xlabel("step")
    axis.set_ylabel("loss", color="tab:blue")
    axis.grid(alpha=0.3)
    if any("lr" in r for r in points):
        right = axis.twinx()
        right.plot(steps, [r.get("lr", 0.0) for r in points], color="tab:orange", alpha=0.8)
        right.set_ylabel("learning rate", color="tab:orange")
        right.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    axis.set_title("training loss and learning rate")
    return _encode(figure)


def metric_curves(evals: list[dict[str, Any]], main: str) -> str | None:
    """Validation metrics against the step; the selection metric drawn thicker."""
    skip = {"step", "epoch", "event"}
    names = sorted({k for r in evals for k, v in r.items() if k not in skip and _number(v)})
    if not evals or not names:
        return None
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(WIDTH, HEIGHT))
    # The summary metrics only: per-average precision/recall variants would crowd the plot.
    shown = [n for n in names if n == main or not n.startswith(("precision_", "recall_"))][:8]
    for name in shown:
        points = [(r["step"], r[name]) for r in evals if _number(r.get(name))]
        axis.plot(
            [s for s, _ in points],
            [v for _, v in points],
            marker="o",
            linewidth=2.5 if name == main else 1.0,
            label=name,
        )
    axis.set_xlabel("step")
    axis.set_title("validation metrics")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="best")
    return _encode(figure)


def confusion_matrix(labels: list[str], matrix: list[list[int]]) -> str:
    """A confusion-matrix heat map with counts (rows: true label, columns: predicted)."""
    plt = _pyplot()
    size = min(12.0, 2.5 + 0.45 * len(labels))
    figure, axis = plt.subplots(figsize=(size, size * 0.85))
    image = axis.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=axis, fraction=0.046)
    ticks = list(range(len(labels)))
    axis.set_xticks(ticks, labels=labels, rotation=45, ha="right", fontsize=8)
    axis.set_yticks(ticks, labels=labels, fontsize=8)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    peak = max((max(row) for row in matrix if row), default=0)
    if len(labels) <= 30:
        for i, row in enumerate(matrix):
            for j, value in enumerate(row):
                colour = "white" if peak and value > peak / 2 else "black"
                axis.text(j, i, str(value), ha="center", va="center", color=colour, fontsize=8)
    axis.set_title("confusion matrix (test)")
    return _encode(figure)


def bar_chart(counts: dict[str, int | float], title: str, limit: int = 30) -> str | None:
    """Horizontal bars, largest first (at most ``limit``), e.g. a label distribution."""
    if not counts:
        return None
    items = sorted(counts.items(), key=lambda kv: -kv[1])[:limit]
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(WIDTH, min(8.0, 1.2 + 0.3 * len(items))))
    axis.barh([k for k, _ in items][::-1], [v for _, v in items][::-1], color="tab:green")
    axis.set_title(title)
    axis.grid(axis="x", alpha=0.3)
    return _encode(figure)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
