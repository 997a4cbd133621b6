"""Command line: evaluate detections on a VOC-format split with the PASCAL VOC devkit rules.

    python -m detector.evaluate --detections DETS.json --data ROOT --split test [--json OUT] [--plots DIR]
    python -m detector.evaluate --checkpoint PATH --data ROOT --split test [--json OUT] [--plots DIR]
    python -m detector.evaluate --task classify --checkpoint PATH --data ROOT --split test   (a classifier: top-1)

DETS.json is a list of {"image_id", "label", "score", "box"} objects with the box in the annotation
files' 1-based pixel convention. Detections come from one source (the mutually exclusive group in
build_parser); everything after that, evaluation and report(), is shared by every source.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from detector.core.checkpoint import CheckpointError
from detector.core.precision import CHOICES, resolve_precision
from detector.data.voc import VOCDetection
from detector.evaluation_plots import write_plots
from detector.voc_eval import (
    METRICS,
    Detection,
    EvalResult,
    evaluate_detections,
    ground_truth_from_dataset,
    load_detections_json,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m detector.evaluate",
        description="PASCAL VOC detection evaluation (per-class AP and mAP, devkit rules).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--task",
        choices=("detect", "classify"),
        default="detect",
        help="what to evaluate; '--task classify --help' lists the classification options",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--detections",
        type=Path,
        help='JSON list of {"image_id", "label", "score", "box": [xmin, ymin, xmax, ymax]} with 1-based '
        "pixel boxes, as in the annotation files",
    )
    source.add_argument("--checkpoint", type=Path, help="a detector checkpoint: run it over the split, then evaluate")
    parser.add_argument("--data", type=Path, required=True, help="root of the VOC-format dataset")
    parser.add_argument("--split", default="test", help="image set to evaluate on (ImageSets/Main/SPLIT.txt)")
    parser.add_argument(
        "--metric", choices=METRICS, default="voc07", help="voc07: 11-point AP; voc12: all-point AP (VOC2010+)"
    )
    parser.add_argument("--iou", type=float, default=0.5, help="IoU a detection needs to match a box")
    parser.add_argument("--json", type=Path, default=None, help="write the results as JSON to this file")
    parser.add_argument("--plots", type=Path, default=None, help="write precision-recall PNGs into this folder")
    model = parser.add_argument_group("with --checkpoint")
    model.add_argument("--device", default="auto", help="'auto' (CUDA when present), 'cpu', 'cuda'")
    model.add_argument("--batch-size", type=int, default=1, help="images per forward pass")
    model.add_argument(
        "--precision",
        choices=CHOICES,
        default="fp32",
        help="autocast dtype: bf16 on CPU or CUDA, fp16 on CUDA only; auto: bf16 on a GPU with bf16 or a CPU with AMX, else fp32",
    )
    model.add_argument("--workers", type=int, default=2, help="data-loading worker processes")
    model.add_argument(
        "--save-detections",
        type=Path,
        default=None,
        help="also write the model's detections as DETS.json (1-based boxes)",
    )
    model.add_argument(
        "--max-proposals",
        type=int,
        default=None,
        help="fast_rcnn / rcnn: score only the top N selective-search proposals per image (faster, usually less "
        "accurate; the report says how many were used); default: the checkpoint's",
    )
    model.add_argument(
        "--proposal-cache",
        type=Path,
        default=None,
        metavar="DIR",
        help="fast_rcnn / rcnn: the proposal cache (default: DATA/proposals/<settings>/)",
    )
    return parser


def load_dataset(args: argparse.Namespace) -> VOCDetection:
    """The split, with the checkpoint's class list when a model is evaluated (its labels index that list)."""
    classes = None
    if args.checkpoint is not None:
        from detector.core import checkpoint

        classes = checkpoint.load(args.checkpoint)[
            "class_names"
        ]  # read twice (here and in the model load): cheap next to inference
    return VOCDetection(args.data, args.split, classes=classes, keep_difficult=True)


def load_detections(args: argparse.Namespace, dataset: VOCDetection) -> tuple[list[Detection], dict | None]:
    """Detections from the source chosen on the command line: a DETS.json file, or a model run. With a model
    also returns what ran: ``{"kind", "checkpoint", "proposals": {"source", "per_image"}, "seconds_per_image"}``
    (one schema for every detector kind)."""
    if args.detections is not None:
        return load_detections_json(args.detections, dataset.classes), None
    import time

    from detector.engine import predict_dataset
    from detector.models.factory import EXTERNAL_PROPOSAL_KINDS, load_detector, proposals_per_image, set_max_proposals
    from detector.models.inference import prepare_for_inference
    from detector.train import resolve_device

    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)  # before the (slow) model load
    if args.precision == "auto":
        print(f"precision: {precision}")
    model, _ = load_detector(args.checkpoint, device)
    if args.max_proposals is not None:
        set_max_proposals(model, args.max_proposals)
    if model.kind in EXTERNAL_PROPOSAL_KINDS:
        from detector.data.with_proposals import with_cached_proposals

        dataset = with_cached_proposals(dataset, model.config, cache_dir=args.proposal_cache, workers=args.workers)
    prepare_for_inference(model, precision.name)
    start = time.perf_counter()
    detections = predict_dataset(
        model, dataset, device=device, batch_size=args.batch_size, workers=args.workers, precision=precision.name
    )
    seconds = (time.perf_counter() - start) / max(len(dataset), 1)
    if args.save_detections is not None:
        save_detections_json(detections, dataset.classes, args.save_detections)
    source = "selective_search" if model.kind in EXTERNAL_PROPOSAL_KINDS else "rpn"
    run = {
        "kind": model.kind,
        "checkpoint": str(args.checkpoint),
        "precision": precision.name,
        "proposals": {"source": source, "per_image": proposals_per_image(model)},
        "seconds_per_image": seconds,
    }
    cached = " (cached; selective search time not included)" if source == "selective_search" else ""
    print(
        f"{model.kind}: at most {run['proposals']['per_image']} {source} proposals per image{cached}, {seconds:.3f} s per image"
    )
    return detections, run


def save_detections_json(detections: Sequence[Detection], classes: Sequence[str], path: str | Path) -> None:
    """Writes DETS.json: class names and 1-based boxes, as the devkit's result files (and --detections) use."""
    records = [
        {
            "image_id": d.image_id,
            "label": classes[d.label - 1] if isinstance(d.label, int) else d.label,
            "score": round(float(d.score), 6),
            "box": [round(d.box[0] + 1, 2), round(d.box[1] + 1, 2), round(d.box[2], 2), round(d.box[3], 2)],
        }
        for d in detections
    ]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(records))


def report(
    result: EvalResult,
    *,
    json_path: str | Path | None = None,
    plots_dir: str | Path | None = None,
    run: dict | None = None,
) -> None:
    """Print the per-class AP table and mAP; optionally write the JSON results (with ``run``, what produced the
    detections, under "model") and the PR plots."""
    print(result.format_table())
    if json_path is not None:
        json_path = Path(json_path)
        json_path.parent.mkdir(parents=True, exist_ok=True)
        payload = result.to_json()
        if run is not None:
            payload["model"] = run
        json_path.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"results written to {json_path}")
    if plots_dir is not None:
        paths = write_plots(result, plots_dir)
        print(f"{len(paths)} plots written to {plots_dir}")


def main(argv: Sequence[str] | None = None) -> int:
    from detector.train import _task

    argv = sys.argv[1:] if argv is None else list(argv)
    if _task(argv) == "classify":  # its own parser: a classifier is scored on class folders, not boxes
        from detector.classify.evaluate import main as classify_main

        return classify_main(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 0.0 < args.iou <= 1.0:
        parser.error(f"--iou must be in (0, 1], got {args.iou}")
    try:
        dataset = load_dataset(args)
        detections, run = load_detections(args, dataset)
        ground_truth = ground_truth_from_dataset(dataset)
        result = evaluate_detections(
            detections, ground_truth, dataset.classes, iou_threshold=args.iou, metric=args.metric
        )
        report(result, json_path=args.json, plots_dir=args.plots, run=run)
    except (OSError, ValueError, CheckpointError) as e:
        # Users' mistakes (missing files, malformed JSON or XML): one line, no traceback.
        message = str(e)
        if isinstance(e, OSError) and e.strerror and e.filename:
            message = f"{e.filename}: {e.strerror}"  # not "[Errno 2] No such file or directory: '...'"
        raise SystemExit(f"error: {message}") from None
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
