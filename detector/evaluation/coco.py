"""COCO detection metrics (AP@[.5:.95], AP50, AP75, AP by object size, AR@100), computed by pycocotools.

The same detections and ground truth as the VOC evaluation (``detector.evaluation.voc``) are handed to
pycocotools' ``COCOeval`` rather than re-implemented, so the numbers are the ones torchvision's references,
detectron2 and ultralytics report. What has to be decided on the way in:

- boxes: our continuous ``xyxy`` becomes COCO's ``[x, y, width, height]`` with the same origin; the plain IoU is the
  same in both conventions;
- a box's area, which decides small (< 32^2), medium and large (> 96^2), is the box's width x height: the datasets
  read here have boxes, not COCO's segmentation masks (COCO's own ``area`` is the mask's, a little smaller);
- VOC's ``difficult`` boxes become COCO's ``iscrowd=1``: ignored regions, so a detection on one is neither a true
  nor a false positive (COCO matches crowd regions by the share of the detection they cover, not by IoU);
- image ids become 1..N in the ground truth's order, class labels 1..K become category ids 1..K.

Shapes: K classes; ``COCOeval.eval["precision"]`` is [T=10 IoU thresholds, R=101 recall points, K, A=4 area
ranges, M=3 max-detection settings].
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from detector.data.convert import coco_annotation
from detector.evaluation.voc import Detection, class_position, unpack_detection

# COCOeval.stats, in its order: the keys our JSON gives them (AR@1 and AR@10 and AR by size are not reported).
_STATS = {0: "map", 1: "map50", 2: "map75", 3: "map_small", 4: "map_medium", 5: "map_large", 8: "ar100"}


@dataclass
class CocoResult:
    """COCO metrics: ``map`` is AP@[.5:.95]; ``ap`` per class, AP@[.5:.95] over all sizes (None: no box of the
    class). A value pycocotools leaves at -1 (no box of that size at all) is None."""

    map: float | None
    map50: float | None
    map75: float | None
    map_small: float | None
    map_medium: float | None
    map_large: float | None
    ar100: float | None
    ap: dict[str, float | None]
    num_detections: int

    def to_json(self) -> dict[str, Any]:
        return {"metric": "coco", **{k: getattr(self, k) for k in _STATS.values()}, "ap": dict(self.ap),
                "num_detections": self.num_detections}  # fmt: skip

    def format_table(self) -> str:
        def pct(value: float | None) -> str:
            return "   n/a" if value is None else f"{100 * value:6.2f}"

        width = max([len("class"), *(len(name) for name in self.ap)])
        lines = [f"{'class':<{width}}  {'AP@[.5:.95] %':>13}"]
        lines += [f"{name:<{width}}  {pct(ap):>13}" for name, ap in self.ap.items()]
        lines.append(
            f"COCO AP@[.5:.95] {pct(self.map).strip()}%, AP50 {pct(self.map50).strip()}, AP75 {pct(self.map75).strip()}"
            f", AP small/medium/large {pct(self.map_small).strip()}/{pct(self.map_medium).strip()}/"
            f"{pct(self.map_large).strip()}, AR@100 {pct(self.ar100).strip()}"
        )
        return "\n".join(lines)


def coco_ground_truth(
    ground_truth: Mapping[str, Mapping[str, Any]],
    classes: Sequence[str],
    image_sizes: Mapping[str, tuple[int, int]] | None = None,
) -> dict[str, Any]:
    """The ground truth as a COCO annotation file's content (``images``, ``annotations``, ``categories``).

    ground_truth: image_id -> {"boxes": [G, 4] xyxy, "labels": [G] in 1..K, "difficult": [G] bool} (as for the VOC
    evaluation); image_sizes: image_id -> (height, width), written when given (COCOeval does not need them)."""
    images, annotations = [], []
    for number, (image_id, target) in enumerate(ground_truth.items(), start=1):
        image = {"id": number, "file_name": str(image_id)}
        if image_sizes is not None and image_id in image_sizes:
            image["height"], image["width"] = (int(v) for v in image_sizes[image_id])
        images.append(image)
        boxes = np.asarray(target["boxes"], dtype=np.float64).reshape(-1, 4)
        labels = np.asarray(target["labels"], dtype=np.int64).reshape(-1)
        difficult = target.get("difficult")
        difficult = np.zeros(len(labels), bool) if difficult is None else np.asarray(difficult, bool).reshape(-1)
        annotations += [
            coco_annotation(len(annotations) + k, number, int(label), box, iscrowd=crowd)
            for k, (box, label, crowd) in enumerate(zip(boxes.tolist(), labels.tolist(), difficult.tolist()), start=1)
        ]
    categories = [{"id": k, "name": name} for k, name in enumerate(classes, start=1)]
    return {"images": images, "annotations": annotations, "categories": categories}


def coco_results(
    detections: Iterable[Detection | Mapping[str, Any] | Sequence[Any]], gt: Mapping[str, Any], classes: Sequence[str]
) -> list[dict[str, Any]]:
    """Detections as a COCO results file's content, against the image numbers of ``gt`` (``coco_ground_truth``).
    Detections on images absent from the ground truth are dropped (COCO cannot score them)."""
    numbers = {image["file_name"]: image["id"] for image in gt["images"]}
    class_index = {name: i for i, name in enumerate(classes)}
    results = []
    for i, record in enumerate(detections):
        image_id, label, score, box = unpack_detection(record, i)
        if str(image_id) not in numbers:
            continue
        x1, y1, x2, y2 = (float(v) for v in box)
        category = class_position(label, class_index, len(classes), i) + 1
        results.append(
            {"image_id": numbers[str(image_id)], "category_id": category, "bbox": [x1, y1, x2 - x1, y2 - y1],
             "score": float(score)}
        )  # fmt: skip
    return results


def evaluate_coco_json(gt: Mapping[str, Any], results: list[dict[str, Any]], classes: Sequence[str]) -> CocoResult:
    """pycocotools' bbox evaluation of ``results`` against ``gt`` (both in COCO's JSON layout), quietly."""
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress and table
        truth = COCO()
        truth.dataset = json.loads(json.dumps(gt))  # its own copy: loadRes and createIndex add keys
        truth.createIndex()
        evaluation = COCOeval(truth, _load_results(truth, results), iouType="bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    stats = {key: _value(evaluation.stats[i]) for i, key in _STATS.items()}
    precision = evaluation.eval["precision"]  # [T, R, K, A, M]
    category_ids = evaluation.params.catIds  # sorted: 1..K
    ap = {}
    for k, name in enumerate(classes, start=1):
        curve = precision[:, :, category_ids.index(k), 0, -1] if k in category_ids else np.array([-1.0])
        valid = curve[curve > -1]
        ap[name] = float(valid.mean()) if valid.size else None
    return CocoResult(**stats, ap=ap, num_detections=len(results))


def evaluate_coco(
    detections: Iterable[Detection | Mapping[str, Any] | Sequence[Any]],
    ground_truth: Mapping[str, Mapping[str, Any]],
    classes: Sequence[str],
) -> CocoResult:
    """COCO metrics of ``detections`` against ``ground_truth`` (the VOC evaluation's arguments)."""
    gt = coco_ground_truth(ground_truth, classes)
    return evaluate_coco_json(gt, coco_results(detections, gt, classes), classes)


def save_coco_files(
    detections: Sequence[Detection],
    ground_truth: Mapping[str, Mapping[str, Any]],
    classes: Sequence[str],
    path: str | Path,
    image_sizes: Mapping[str, tuple[int, int]] | None = None,
) -> tuple[Path, Path]:
    """Writes PATH_STEM.coco.json (the detections as COCO results) and PATH_STEM.coco_gt.json (the ground truth as a
    COCO annotation file), the two files pycocotools needs to reproduce the numbers by hand. Returns their paths."""
    path = Path(path)
    gt = coco_ground_truth(ground_truth, classes, image_sizes)
    stem = path.with_suffix("") if path.suffix == ".json" else path
    results_path, gt_path = Path(f"{stem}.coco.json"), Path(f"{stem}.coco_gt.json")
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(coco_results(detections, gt, classes)))
    gt_path.write_text(json.dumps(gt))
    return results_path, gt_path


def _value(stat: float) -> float | None:
    return None if stat < 0 else float(stat)


def _load_results(truth: COCO, results: list[dict[str, Any]]) -> COCO:
    """``truth.loadRes(results)``; for no detections at all (which loadRes cannot take) an empty results set, so
    that pycocotools itself scores it (0 wherever there are boxes, -1 elsewhere)."""
    if results:
        return truth.loadRes(list(results))
    empty = COCO()
    empty.dataset = {"images": list(truth.dataset["images"]), "categories": list(truth.dataset["categories"]),
                     "annotations": []}  # fmt: skip
    empty.createIndex()
    return empty
