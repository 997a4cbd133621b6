"""Anchors that fit a dataset: how well a set of anchors covers its boxes, and sizes and aspect ratios fitted to them.

Boxes are given at the training scale (the image resized as the detector resizes it) as ``xyxy`` pixels, with the
size (H, W) of that resized image. Shape shorthand: N boxes, A anchors per cell.

*Coverage* is the RPN's own view: the share of boxes whose best anchor on the real grid (stride ``stride``, the
anchors ``AnchorGenerator`` makes for that image) reaches IoU >= 0.7 (the RPN's positive rule) or >= 0.5; a box no
anchor reaches 0.7 is only learnt through the "best anchor of each box" rule, and badly.

*Fitting* is k-means with distance 1 - IoU over box shapes (centred boxes, as YOLO's anchor fitting does), under
the structure the RPN needs: every size with every aspect ratio. The ratios are k-means centres of log(h / w); the
sizes are then fitted by 1 - IoU k-means of each box against an anchor of its own nearest ratio, each size centre
the median sqrt(w h) of its boxes. Initial sizes are drawn with k-means++ from ``seed``, the best of a few restarts
(highest mean IoU) is kept: the same boxes and seed give the same anchors.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torchvision.ops import box_iou

from detector.models.anchors import AnchorGenerator

__all__ = ["anchor_coverage", "fit_anchors"]


def anchor_coverage(
    images: Sequence[tuple[tuple[int, int], np.ndarray]],
    sizes: Sequence[float],
    aspect_ratios: Sequence[float],
    stride: int,
) -> tuple[float, float]:
    """(share of boxes whose best anchor has IoU >= 0.5, share with >= 0.7) over ``images``: (resized (H, W), boxes
    [N, 4]) pairs. (0.0, 0.0) without boxes."""
    generator = AnchorGenerator(tuple(sizes), tuple(aspect_ratios), stride)
    best = []
    for (height, width), boxes in images:
        if len(boxes) == 0:
            continue
        anchors = generator((math.ceil(height / stride), math.ceil(width / stride)))
        best.append(box_iou(torch.as_tensor(boxes, dtype=torch.float32), anchors).max(dim=1).values)
    if not best:
        return 0.0, 0.0
    ious = torch.cat(best)
    return float((ious >= 0.5).float().mean()), float((ious >= 0.7).float().mean())


def _shape_iou(w: np.ndarray, h: np.ndarray, aw: np.ndarray, ah: np.ndarray) -> np.ndarray:
    """IoU of centred boxes (w, h) [N] against centred anchors (aw, ah) [K]: [N, K]."""
    inter = np.minimum(w[:, None], aw[None]) * np.minimum(h[:, None], ah[None])
    return inter / (w[:, None] * h[:, None] + aw[None] * ah[None] - inter)


def _kmeans_1d(values: np.ndarray, k: int, rng: np.random.Generator, iters: int = 50) -> np.ndarray:
    centres = np.quantile(values, (np.arange(k) + 0.5) / k) + rng.normal(0, 1e-6, k)
    for _ in range(iters):
        assign = np.abs(values[:, None] - centres[None]).argmin(1)
        centres = np.array([values[assign == j].mean() if (assign == j).any() else centres[j] for j in range(k)])
    return np.sort(centres)


def fit_anchors(
    shapes: np.ndarray, num_sizes: int, num_ratios: int, *, seed: int = 0, restarts: int = 5, iters: int = 100
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(sizes, aspect ratios h / w) for box ``shapes`` [N, 2] = (w, h) at the training scale; see the module
    docstring. Sizes are rounded to 0.1 px and ratios to 0.01, both ascending; equal ratios are kept once."""
    shapes = np.asarray(shapes, dtype=np.float64).reshape(-1, 2)
    shapes = shapes[(shapes > 0).all(1)]
    if len(shapes) < num_sizes * num_ratios:
        raise ValueError(f"{len(shapes)} boxes are too few to fit {num_sizes} x {num_ratios} anchors")
    rng = np.random.default_rng(seed)
    w, h = shapes[:, 0], shapes[:, 1]
    log_ratio = np.log(h / w)
    ratios = np.exp(_kmeans_1d(log_ratio, num_ratios, rng)) if num_ratios > 1 else np.exp([np.median(log_ratio)])
    own = np.abs(log_ratio[:, None] - np.log(ratios)[None]).argmin(1)  # each box's nearest ratio
    scale = np.sqrt(w * h)
    best_sizes, best_fit = None, -1.0
    for _ in range(restarts):
        sizes = _kmeans_pp(scale, num_sizes, rng)
        for _ in range(iters):
            root = np.sqrt(ratios[own])[:, None]  # [N, 1]: each box against anchors of its own ratio
            aw, ah = sizes[None] / root, sizes[None] * root  # [N, K]
            inter = np.minimum(w[:, None], aw) * np.minimum(h[:, None], ah)
            assign = (inter / ((w * h)[:, None] + aw * ah - inter)).argmax(1)
            new = np.array(
                [np.median(scale[assign == j]) if (assign == j).any() else sizes[j] for j in range(num_sizes)]
            )
            if np.allclose(new, sizes):
                break
            sizes = new
        fit = float(_anchor_iou(w, h, sizes, ratios).max(1).mean())
        if fit > best_fit:
            best_sizes, best_fit = np.sort(sizes), fit
    # Ratios that round alike (a dataset of two shapes asked for three ratios) are one anchor shape: kept once.
    unique_ratios = sorted({round(float(r), 2) for r in ratios})
    return tuple(round(float(s), 1) for s in best_sizes), tuple(unique_ratios)


def _anchor_iou(w: np.ndarray, h: np.ndarray, sizes: np.ndarray, ratios: np.ndarray) -> np.ndarray:
    """IoU of centred boxes against every centred anchor size x ratio: [N, sizes * ratios]."""
    aw = (sizes[None] / np.sqrt(ratios)[:, None]).reshape(-1)
    ah = (sizes[None] * np.sqrt(ratios)[:, None]).reshape(-1)
    return _shape_iou(w, h, aw, ah)


def _kmeans_pp(values: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k initial centres among ``values``, each drawn with probability growing with its distance (in log) from the
    centres already chosen."""
    logs = np.log(values)
    centres = [logs[rng.integers(len(logs))]]
    for _ in range(k - 1):
        distance = np.min(np.abs(logs[:, None] - np.array(centres)[None]), axis=1) ** 2
        total = distance.sum()
        index = rng.integers(len(logs)) if total == 0 else rng.choice(len(logs), p=distance / total)
        centres.append(logs[index])
    return np.exp(np.array(centres))
