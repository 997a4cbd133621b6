"""Know your data: images and boxes per class, box sizes at the training scale, and how well anchors cover them.

    python -m detector.data.stats --data ROOT --split SPLIT [--format auto] [--min-size 600 --max-size 1000]
        [--backbone vgg16] [--anchor-sizes 128 256 512] [--aspect-ratios 0.5 1 2] [--json OUT] [--plot PNG]

Sizes are measured at the training scale: each image resized as the detector resizes it (shorter side
``--min-size``, longer at most ``--max-size``), since that is what the anchors meet. Anchor coverage is the share of
boxes whose best anchor, on the backbone's real grid, reaches IoU >= 0.5 and >= 0.7 (the RPN's positive rule), for
the given anchors and for anchors fitted to these boxes (``detector.models.anchor_fit``; ``detector.train
--anchor-sizes auto --aspect-ratios auto`` fits the same way). Difficult boxes are left out, as training leaves them.
``--json`` writes ``{"images", "boxes", "per_class", "box_sizes", "anchors": {"current": {"sizes", "aspect_ratios",
"coverage_05", "coverage_07"}, "fitted": {...}}}``; ``--plot`` the histograms of width, height and aspect ratio with
the anchors marked.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from detector.data.formats import FORMATS, open_detection
from detector.data.voc.base import AnnotatedDetection
from detector.models.anchor_fit import anchor_coverage, fit_anchors
from detector.models.backbones import STRIDES

DEFAULT_SIZES, DEFAULT_RATIOS = (128.0, 256.0, 512.0), (0.5, 1.0, 2.0)


def training_scale_boxes(
    dataset: AnnotatedDetection, min_size: int, max_size: int
) -> list[tuple[tuple[int, int], np.ndarray]]:
    """(resized (H, W), non-difficult boxes [N, 4] at that scale) per image, from the annotations alone."""
    images = []
    for i in range(len(dataset)):
        height, width = dataset.image_size(i)
        scale = min(min_size / min(height, width), max_size / max(height, width))
        target = dataset.target(i)
        boxes = target["boxes"][~target["difficult"]].numpy().astype(np.float64) * scale
        images.append(((max(1, int(height * scale)), max(1, int(width * scale))), boxes))
    return images


def anchor_report(images, sizes, ratios, stride: int) -> dict:
    cov05, cov07 = anchor_coverage(images, sizes, ratios, stride)
    return {"sizes": list(sizes), "aspect_ratios": list(ratios), "coverage_05": cov05, "coverage_07": cov07}


def dataset_stats(
    dataset: AnnotatedDetection,
    *,
    min_size: int = 600,
    max_size: int = 1000,
    stride: int = 16,
    sizes: Sequence[float] = DEFAULT_SIZES,
    ratios: Sequence[float] = DEFAULT_RATIOS,
    seed: int = 0,
) -> tuple[dict, tuple[np.ndarray, np.ndarray]]:
    """(the report the module docstring describes, the boxes' (widths, heights) at the training scale)."""
    images = training_scale_boxes(dataset, min_size, max_size)
    per_class = Counter()
    for i in range(len(dataset)):
        target = dataset.target(i)
        per_class.update(dataset.classes[int(label) - 1] for label in target["labels"][~target["difficult"]])
    boxes = np.concatenate([b for _, b in images]) if images else np.zeros((0, 4))
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    quantiles = (0.05, 0.25, 0.5, 0.75, 0.95)
    report = {
        "images": len(dataset),
        "boxes": int(len(boxes)),
        "per_class": {name: per_class.get(name, 0) for name in dataset.classes},
        "scale": {"min_size": min_size, "max_size": max_size, "stride": stride},
        "box_sizes": {
            name: dict(zip(("p5", "p25", "p50", "p75", "p95"), np.quantile(v, quantiles).round(2).tolist()))
            for name, v in (("width", w), ("height", h), ("aspect_h_over_w", h / np.maximum(w, 1e-9)))
        }
        if len(boxes)
        else {},  # fmt: skip
        "anchors": {"current": anchor_report(images, sizes, ratios, stride)},
    }
    if len(boxes) >= len(sizes) * len(ratios):
        fitted_sizes, fitted_ratios = fit_anchors(np.stack([w, h], 1), len(sizes), len(ratios), seed=seed)
        report["anchors"]["fitted"] = anchor_report(images, fitted_sizes, fitted_ratios, stride)
    return report, (w, h)


def plot_stats(report: dict, shapes: tuple[np.ndarray, np.ndarray], path: Path) -> None:
    """Histograms of box width, height (log scale) and aspect ratio at the training scale, anchors marked."""
    import matplotlib  # noqa: PLC0415 (only for --plot)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    w, h = shapes
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    bins = np.geomspace(max(1.0, min(w.min(), h.min())), max(w.max(), h.max()) * 1.1, 40)
    for ax, values, name in ((axes[0], w, "width"), (axes[1], h, "height")):
        ax.hist(values, bins=bins, color="#4c72b0")
        ax.set_xscale("log")
        ax.set_xlabel(f"box {name} at the training scale (px)")
        for key, style in (("current", "--"), ("fitted", "-")):
            for s in report["anchors"].get(key, {}).get("sizes", []):
                ax.axvline(s, color="black" if key == "current" else "#dd8452", linestyle=style, linewidth=1)
    axes[2].hist(h / np.maximum(w, 1e-9), bins=np.geomspace(0.1, 10, 40), color="#55a868")
    axes[2].set_xscale("log")
    axes[2].set_xlabel("aspect ratio h / w")
    for key, style in (("current", "--"), ("fitted", "-")):
        for r in report["anchors"].get(key, {}).get("aspect_ratios", []):
            axes[2].axvline(r, color="black" if key == "current" else "#dd8452", linestyle=style, linewidth=1)
    cur = report["anchors"]["current"]
    title = f"{report['boxes']} boxes; anchors current (dashed) IoU>=0.7 {cur['coverage_07']:.0%}"
    if "fitted" in report["anchors"]:
        title += f", fitted (solid) {report['anchors']['fitted']['coverage_07']:.0%}"
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m detector.data.stats", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--data", required=True, help="the dataset (any format detector.train reads)")
    p.add_argument("--split", default="trainval", help="the split to describe")
    p.add_argument("--format", choices=FORMATS, default="auto", help="the dataset's format (default: told by --data)")
    p.add_argument("--min-size", type=int, default=600, help="the training scale's shorter side")
    p.add_argument("--max-size", type=int, default=1000, help="the training scale's cap on the longer side")
    p.add_argument("--backbone", choices=sorted(STRIDES), default="vgg16", help="whose stride places the anchors")
    p.add_argument("--anchor-sizes", type=float, nargs="+", default=list(DEFAULT_SIZES), help="the current anchors")
    p.add_argument("--aspect-ratios", type=float, nargs="+", default=list(DEFAULT_RATIOS), help="their ratios h/w")
    p.add_argument("--seed", type=int, default=0, help="the anchor fit's seed")
    p.add_argument("--json", type=Path, default=None, help="write the report here")
    p.add_argument("--plot", type=Path, default=None, help="write the histograms here (PNG)")
    args = p.parse_args(argv)
    try:
        dataset = open_detection(args.data, args.split, format=args.format, keep_difficult=True)
        report, shapes = dataset_stats(
            dataset, min_size=args.min_size, max_size=args.max_size, stride=STRIDES[args.backbone],
            sizes=args.anchor_sizes, ratios=args.aspect_ratios, seed=args.seed,
        )  # fmt: skip
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{report['images']} images, {report['boxes']} boxes (difficult left out)")
    for name, count in report["per_class"].items():
        print(f"  {name:20s} {count}")
    for name, q in report["box_sizes"].items():
        print(f"{name} at {args.min_size}/{args.max_size}: " + ", ".join(f"{k} {v:g}" for k, v in q.items()))
    for key, a in report["anchors"].items():
        print(f"anchors {key}: sizes {a['sizes']}, ratios {a['aspect_ratios']}: "
              f"IoU >= 0.5 for {a['coverage_05']:.1%} of boxes, >= 0.7 for {a['coverage_07']:.1%}")  # fmt: skip
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if args.plot is not None and report["boxes"]:
        plot_stats(report, shapes, args.plot)
        print(f"histograms written to {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
