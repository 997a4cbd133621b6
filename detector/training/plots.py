"""Training figures: the curves of ``metrics.jsonl`` (losses per step, the validation metric per epoch) and the
learning-rate range test.

Drawn on a ``matplotlib.figure.Figure`` with an Agg canvas, never through pyplot: plotting needs no display and
leaves the process-wide backend alone (as ``detector.evaluation.plots``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from detector.evaluation.plots import figure
from detector.training.lr_finder import LRFinderResult


def read_metrics(path: str | Path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _ema(values, alpha: float = 0.1) -> list[float]:
    """Exponential moving average, started at the first value."""
    out, avg = [], values[0]
    for v in values:
        avg = alpha * v + (1 - alpha) * avg
        out.append(avg)
    return out


def plot_training_curves(metrics_path: str | Path, out_path: str | Path, *, metric_key: str = "map") -> Path:
    """Left: every ``loss*`` series of the step records against the iteration (log scale). Right: the epoch
    records' ``metric_key`` (validation mAP for detection, accuracy for classification)."""
    records = read_metrics(metrics_path)
    steps = [r for r in records if r.get("type") == "step"]
    epochs = [r for r in records if r.get("type") == "epoch" and r.get(metric_key) is not None]
    fig = figure((12, 4.5))
    ax_loss, ax_metric = fig.subplots(1, 2)
    keys = sorted({k for r in steps for k in r if k.startswith("loss")})
    for key in keys:
        pts = [(r["iteration"], r[key]) for r in steps if key in r]
        if pts:
            xs, ys = zip(*pts)
            # Per-step losses are noisy (a few images each): draw them faintly and their moving average on top.
            (line,) = ax_loss.plot(xs, ys, linewidth=0.6, alpha=0.25)
            ax_loss.plot(xs, _ema(ys), label=key, color=line.get_color(), linewidth=1.6 if key == "loss" else 1.1)
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("iteration")
    ax_loss.set_ylabel("loss")
    ax_loss.set_title("training losses")
    ax_loss.grid(alpha=0.3)
    if keys:
        ax_loss.legend(fontsize=8)
    if epochs:
        ax_metric.plot([r["epoch"] for r in epochs], [r[metric_key] for r in epochs], marker="o")
        best = max(epochs, key=lambda r: r[metric_key])
        ax_metric.annotate(
            f"best {best[metric_key]:.3f}",
            (best["epoch"], best[metric_key]),
            textcoords="offset points",
            xytext=(0, 8),
            ha="center",
        )
    ax_metric.set_xlabel("epoch")
    ax_metric.set_ylabel(metric_key)
    ax_metric.set_ylim(0, 1)
    ax_metric.set_title(f"validation {metric_key}")
    ax_metric.grid(alpha=0.3)
    out_path = Path(out_path)
    fig.savefig(out_path, dpi=110)
    return out_path


def plot_lr_finder(result: LRFinderResult, path: str | Path) -> Path:
    """Loss against learning rate (log x): each step's loss faintly, the smoothed loss, and the suggestion."""
    fig = figure((7, 4.5))
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
    fig.savefig(path, dpi=110)
    return Path(path)
