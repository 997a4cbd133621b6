"""Classification figures: the confusion matrix and the learning-rate range test.

Drawn on a ``matplotlib.figure.Figure`` with the Agg canvas, never through pyplot, so plotting needs no display
and leaves the process-wide backend alone (as ``detector.evaluation_plots``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from detector.classify.engine import LRFinderResult


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    FigureCanvasAgg(fig)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def plot_confusion_matrix(
    confusion: Sequence[Sequence[int]], class_names: Sequence[str], path: str | Path, *, title: str = "confusion matrix"
) -> Path:
    """Rows are the true classes, columns the predicted ones; each row is normalised to sum to 1 (a row of a class
    with no images stays 0) and the cells show the fraction, with the count below it."""
    counts = np.asarray(confusion, dtype=np.float64)
    k = len(class_names)
    totals = counts.sum(axis=1, keepdims=True)
    rates = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    side = max(4.0, 0.55 * k + 2.5)
    fig = Figure(figsize=(side + 1.0, side))
    ax = fig.add_subplot()
    im = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    ax.set_xticks(range(k), labels=list(class_names), rotation=45, ha="right")
    ax.set_yticks(range(k), labels=list(class_names))
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    if k <= 30:
        for i in range(k):
            for j in range(k):
                colour = "white" if rates[i, j] > 0.5 else "black"
                ax.text(
                    j, i, f"{rates[i, j]:.2f}\n{int(counts[i, j])}", ha="center", va="center", fontsize=7, color=colour
                )
    return _save(fig, path)


def plot_lr_finder(result: LRFinderResult, path: str | Path) -> Path:
    """Loss against learning rate (log x): each step's loss faintly, the smoothed loss, and the suggestion."""
    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    ax.plot(result.lrs, result.losses, color="0.75", linewidth=0.8, label="loss")
    ax.plot(result.lrs, result.smoothed, color="C0", linewidth=1.5, label="smoothed loss")
    y = result.smoothed[int(np.argmin(np.abs(np.asarray(result.lrs) - result.suggestion)))]
    ax.axvline(result.suggestion, color="C3", linestyle="--", linewidth=1)
    ax.plot([result.suggestion], [y], "o", color="C3", label=f"suggestion {result.suggestion:.2g} ({result.method})")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title("learning-rate range test")
    # The divergence at the end would flatten the interesting part of the curve.
    low = min(result.smoothed)
    high = max(result.smoothed[: int(np.argmin(result.smoothed)) + 1])
    pad = max(0.1 * (high - low), 0.05 * abs(high), 1e-3)
    ax.set_ylim(low - pad, high + 2 * pad)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return _save(fig, path)
