"""Reporting evaluations: the printed tables, the JSON files and the plots that ``detector.evaluate`` and the
trainers write."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from detector.evaluation.classification import format_per_class
from detector.evaluation.detection import DetectionMetrics
from detector.evaluation.plots import plot_confusion_matrix, write_plots
from detector.evaluation.voc import Detection, EvalResult


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


def _write_json(payload: dict, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"results written to {path}")


def report_detection(
    result: EvalResult | DetectionMetrics,
    *,
    json_path: str | Path | None = None,
    plots_dir: str | Path | None = None,
    run: dict | None = None,
) -> None:
    """Print the per-class AP table and mAP (VOC's, COCO's or both); optionally write the JSON results (with
    ``run``, what produced the detections, under "model") and the precision-recall plots."""
    print(result.format_table())
    if json_path is not None:
        payload = result.to_json()
        if run is not None:
            payload["model"] = run
        _write_json(payload, json_path)
    if plots_dir is not None:
        voc = result.voc if isinstance(result, DetectionMetrics) else result
        if voc is None:
            print("no precision-recall plots: they draw the VOC curves (--metric voc07, voc12 or all)")
            return
        paths = write_plots(voc, plots_dir)
        print(f"{len(paths)} plots written to {plots_dir}")


def report_classification(
    result: dict, *, json_path: str | Path | None = None, plots_dir: str | Path | None = None
) -> None:
    """Prints top-1 / top-k and the per-class table; optionally writes the JSON and the confusion matrix."""
    where = f"{result['checkpoint']} on {result['data']}/{result['split']}"
    print(
        f"{where} ({result['images']} images, tta {result['tta']}): "
        f"top-1 {result['top1']:.4f}, top-{result['topk']} {result['top5']:.4f}"
    )
    print(format_per_class(result))
    if json_path is not None:
        _write_json(result, json_path)
    if plots_dir is not None:
        path = Path(plots_dir) / "confusion_matrix.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        title = f"confusion matrix ({result['split']}, tta {result['tta']})"
        plot_confusion_matrix(result["confusion"], result["classes"], path, title=title)
        print(f"confusion matrix written to {path}")
