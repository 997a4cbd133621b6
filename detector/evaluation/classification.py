"""Classification metrics from predicted probabilities: top-1 and top-k accuracy, cross-entropy, per-class
accuracy and the confusion matrix. Shape shorthand: M images, K classes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor


def accuracy_report(probs: Tensor, labels: Tensor, classes: Sequence[str] = ()) -> dict[str, Any]:
    """probs [M, K] (rows sum to 1), labels [M] in 0..K-1 ->
    ``{"top1", "top5", "topk" (the k of "top5": min(5, K)), "loss" (mean cross-entropy of the probabilities),
    "images", "per_class": {class: {"accuracy", "correct", "images"}}, "confusion"}``, where ``confusion[i][j]``
    counts images of class i predicted as j. Classes without a name are named by their index."""
    num_classes = probs.shape[1]
    classes = list(classes) or [str(i) for i in range(num_classes)]
    k = min(5, num_classes)
    topk = probs.topk(k, dim=1).indices
    pred = topk[:, 0]
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)
    confusion.index_put_((labels, pred), torch.ones_like(labels), accumulate=True)
    per_class = {}
    for i, name in enumerate(classes):
        n, hits = int(confusion[i].sum()), int(confusion[i, i])
        per_class[name] = {"accuracy": hits / n if n else None, "correct": hits, "images": n}
    return {
        "top1": float((pred == labels).float().mean()),
        "top5": float((topk == labels[:, None]).any(dim=1).float().mean()),
        "topk": k,
        "loss": float(-probs.gather(1, labels[:, None]).clamp_min(1e-12).log().mean()),
        "images": len(labels),
        "per_class": per_class,
        "confusion": confusion.tolist(),
    }


def format_per_class(report: dict) -> str:
    """The per-class accuracy table of :func:`accuracy_report`, with the overall top-1 last."""
    rows = [("class", "images", "accuracy")]
    for name, v in report["per_class"].items():
        rows.append((name, str(v["images"]), "-" if v["accuracy"] is None else f"{v['accuracy']:.3f}"))
    rows.append(("all", str(report["images"]), f"{report['top1']:.3f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(
        "  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r)) for r in rows
    )
