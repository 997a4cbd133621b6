"""Evaluation figures: precision-recall plots of a detection EvalResult, a classifier's confusion matrix.

Figures are built with ``matplotlib.figure.Figure`` and an Agg canvas, never through pyplot, so
plotting neither needs a display nor changes the process-wide pyplot backend.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from detector.evaluation.voc import EvalResult


def write_plots(result: EvalResult, out_dir: str | Path) -> list[Path]:
    """Write ``pr_{class}.png`` for every class and ``summary.png`` into out_dir; return the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in result.ap:
        path = out_dir / f"pr_{_safe_filename(name)}.png"
        plot_pr_curve(result, name, path)
        paths.append(path)
    path = out_dir / "summary.png"
    plot_summary(result, path)
    paths.append(path)
    return paths


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
    fig = figure((side + 1.0, side))
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
    fig.savefig(path, dpi=110)
    return Path(path)


def plot_pr_curve(result: EvalResult, class_name: str, path: str | Path) -> None:
    """One class: the raw precision-recall curve and the interpolation its AP integrates."""
    fig = figure(figsize=(5.5, 5))
    ax = fig.add_subplot()
    ap = result.ap[class_name]
    if ap is None:
        ax.set_title(f"{class_name}: no ground-truth positives, AP undefined")
        ax.text(0.5, 0.5, "no positives", ha="center", va="center", transform=ax.transAxes)
    else:
        recall, precision = result.curves[class_name]
        ax.plot(recall, precision, color="tab:blue", lw=1, alpha=0.6, label="precision")
        if result.metric == "voc07":
            thresholds = np.arange(11) / 10
            points = [precision[recall >= t].max() if (recall >= t).any() else 0.0 for t in thresholds]
            ax.plot(thresholds, points, "o", color="tab:red", ms=4, label="11-point interpolation")
        else:
            mrec = np.concatenate(([0.0], recall, [1.0]))
            mpre = np.maximum.accumulate(np.concatenate(([0.0], precision, [0.0]))[::-1])[::-1]
            ax.step(mrec, mpre, where="pre", color="tab:red", lw=1.5, label="precision envelope")
        ax.legend(loc="lower left")
        ax.set_title(f"{class_name}: AP = {100 * ap:.2f}%  ({result.metric}, IoU {result.iou:g})")
    _pr_axes(ax)
    fig.savefig(path)


def plot_summary(result: EvalResult, path: str | Path) -> None:
    """Per-class AP bars with the mAP line, next to all classes' precision-recall curves overlaid."""
    names = list(result.ap)
    fig = figure(figsize=(max(10.0, 4 + 0.45 * len(names) + 5.5), 5))
    bars, curves = fig.subplots(1, 2, gridspec_kw={"width_ratios": [max(1.0, 0.45 * len(names) / 4), 1.4]})

    values = [100 * ap if ap is not None else 0.0 for ap in result.ap.values()]
    colors = ["tab:blue" if ap is not None else "lightgray" for ap in result.ap.values()]
    bars.bar(range(len(names)), values, color=colors)
    bars.set_xticks(range(len(names)), names, rotation=60, ha="right")
    for x, ap in enumerate(result.ap.values()):
        if ap is None:
            bars.text(x, 1, "n/a", ha="center", va="bottom", fontsize=7, rotation=90)
    if result.map is not None:
        bars.axhline(100 * result.map, color="tab:red", ls="--", label=f"mAP {100 * result.map:.2f}%")
        bars.legend(loc="upper right")
    bars.set_ylim(0, 100)
    bars.set_ylabel("AP (%)")
    bars.set_title(f"Per-class AP ({result.metric}, IoU {result.iou:g})")

    for name, (recall, precision) in result.curves.items():
        curves.plot(recall, precision, lw=1, label=f"{name} ({100 * result.ap[name]:.1f})")
    if result.curves:
        curves.legend(loc="lower left", fontsize=6, ncols=2 if len(result.curves) > 10 else 1)
    curves.set_title("Precision-recall, all classes")
    _pr_axes(curves)
    fig.savefig(path)


def figure(figsize: tuple[float, float]) -> Figure:
    """A figure on an Agg canvas with constrained layout (every plot of the package is made on one)."""
    fig = Figure(figsize=figsize, dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _pr_axes(ax) -> None:
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.grid(alpha=0.3)


def _safe_filename(name: str) -> str:
    """Class names come from labels.txt and may hold characters a filename should not."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)
