"""PASCAL VOC detection evaluation, reproducing the devkit's VOCevaldet.m and VOCap.m.

Boxes are ``xyxy`` in continuous pixel coordinates: a VOC box with 1-based inclusive corners
``xmin..xmax`` is ``[xmin - 1, ymin - 1, xmax, ymax]``. In that convention the plain IoU
(area = (x2 - x1) * (y2 - y1)) equals the devkit's inclusive-pixel IoU (area = (x2 - x1 + 1) * ...),
so no ``+ 1`` appears anywhere below.

Shapes: D detections of one class, G ground-truth boxes of one class in one image, K classes.

The devkit rules, per class:
- all detections of the class over all images are sorted by decreasing score. The sort is stable:
  equal scores keep their input order, as MATLAB's ``sort`` does in the devkit;
- each detection is compared only with the ground truth of its own image and class (difficult
  boxes included) and takes the box with the highest IoU (the first one on ties);
- IoU >= threshold: a difficult box makes the detection ignored (neither TP nor FP); an unmatched
  box makes it a TP and marks the box matched; an already matched box makes it a FP, even when
  another, unmatched box also overlaps enough;
- IoU < threshold, no box of the class in the image, or an image unknown to the ground truth: FP;
- positives are the non-difficult boxes only.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

METRICS = ("voc07", "voc12")


class Detection(NamedTuple):
    """One detection: ``label`` is a class name or a 1-based label; ``box`` is continuous xyxy."""

    image_id: str
    label: str | int
    score: float
    box: Sequence[float]


@dataclass
class EvalResult:
    """Per-class AP and the mAP over the classes that have at least one positive."""

    metric: str
    iou: float
    map: float | None
    ap: dict[str, float | None]
    num_positives: dict[str, int]
    num_detections: dict[str, int]
    # (recall, precision) per class with positives, one point per detection in score order.
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = field(repr=False)
    classes_without_positives: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "iou": self.iou,
            "map": self.map,
            "ap": dict(self.ap),
            "num_positives": dict(self.num_positives),
            "num_detections": dict(self.num_detections),
            "classes_without_positives": list(self.classes_without_positives),
        }

    def format_table(self) -> str:
        width = max([len("class"), *(len(name) for name in self.ap)])
        lines = [f"{'class':<{width}}  {'#pos':>6}  {'#det':>7}  {'AP %':>6}"]
        for name, ap in self.ap.items():
            ap_text = f"{100 * ap:6.2f}" if ap is not None else "   n/a  (no positives)"
            lines.append(f"{name:<{width}}  {self.num_positives[name]:>6}  {self.num_detections[name]:>7}  {ap_text}")
        counted = len(self.ap) - len(self.classes_without_positives)
        map_text = f"{100 * self.map:.2f}%" if self.map is not None else "n/a (no class has positives)"
        lines.append(f"mAP ({self.metric}, IoU >= {self.iou:g}, {counted} classes): {map_text}")
        return "\n".join(lines)


def metric_for_year(year: int) -> str:
    """The devkit's AP for a VOC year: 11-point before 2010, all-point from 2010 on."""
    return "voc07" if year < 2010 else "voc12"


def voc_ap(recall: np.ndarray, precision: np.ndarray, *, use_07_metric: bool) -> float:
    """Average precision of one class's curve, as VOCap.m (all-point) or VOCevaldet.m (11-point)."""
    rec = np.asarray(recall, dtype=np.float64)
    prec = np.asarray(precision, dtype=np.float64)
    if use_07_metric:
        # t / 10 rather than np.arange(0, 1.1, 0.1): the latter gives 0.30000000000000004, which a
        # recall of exactly 0.3 would fail to reach.
        total = 0.0
        for t in range(11):
            reached = prec[rec >= t / 10]
            total += float(reached.max()) if reached.size else 0.0
        return total / 11
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]  # precision envelope, taken from the right
    changed = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
    return float(np.sum((mrec[changed] - mrec[changed - 1]) * mpre[changed]))


def evaluate_detections(
    detections: Iterable[Detection | Mapping[str, Any] | Sequence[Any]],
    ground_truth: Mapping[str, Mapping[str, Any]],
    classes: Sequence[str],
    *,
    iou_threshold: float = 0.5,
    metric: str = "voc07",
) -> EvalResult:
    """Evaluate detections against ground truth with the VOC devkit rules (see the module docstring).

    detections: records ``(image_id, label, score, box)`` (Detection, tuple or mapping with those keys).
    ground_truth: image_id -> {"boxes": [G, 4], "labels": [G] in 1..K, "difficult": [G] bool},
    numpy arrays or torch tensors; a missing "difficult" means none is difficult.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if not 0.0 <= iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in [0, 1], got {iou_threshold}")
    classes = tuple(classes)
    num_classes = len(classes)
    class_index = {name: i for i, name in enumerate(classes)}

    gt, num_positives = _ground_truth_per_class(ground_truth, num_classes)
    per_class = _detections_per_class(detections, ground_truth, class_index, num_classes)

    ap: dict[str, float | None] = {}
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for c, name in enumerate(classes):
        if num_positives[c] == 0:
            ap[name] = None
            continue
        recall, precision = _class_curve(per_class[c], gt[c], num_positives[c], iou_threshold)
        curves[name] = (recall, precision)
        ap[name] = voc_ap(recall, precision, use_07_metric=metric == "voc07")

    scored = [value for value in ap.values() if value is not None]
    return EvalResult(
        metric=metric,
        iou=float(iou_threshold),
        map=float(np.mean(scored)) if scored else None,
        ap=ap,
        num_positives=dict(zip(classes, num_positives)),
        num_detections={name: len(per_class[c]) for c, name in enumerate(classes)},
        curves=curves,
        classes_without_positives=[name for name in classes if ap[name] is None],
    )


def _ground_truth_per_class(
    ground_truth: Mapping[str, Mapping[str, Any]], num_classes: int
) -> tuple[list[dict[str, tuple[np.ndarray, np.ndarray]]], list[int]]:
    """Per class: image_id -> (boxes [G, 4], difficult [G]); and the class's count of non-difficult boxes."""
    gt: list[dict[str, tuple[np.ndarray, np.ndarray]]] = [{} for _ in range(num_classes)]
    num_positives = [0] * num_classes
    for image_id, target in ground_truth.items():
        boxes = _as_numpy(target["boxes"], np.float64).reshape(-1, 4)
        labels = _as_numpy(target["labels"], np.int64).reshape(-1)
        difficult = target.get("difficult")
        difficult = np.zeros(len(labels), dtype=bool) if difficult is None else _as_numpy(difficult, bool).reshape(-1)
        if not len(boxes) == len(labels) == len(difficult):
            raise ValueError(
                f"ground truth of image {image_id!r}: boxes, labels and difficult have different lengths "
                f"({len(boxes)}, {len(labels)}, {len(difficult)})"
            )
        if len(labels) and (labels.min() < 1 or labels.max() > num_classes):
            raise ValueError(f"ground truth of image {image_id!r}: labels must be in 1..{num_classes}, got {labels}")
        for c in np.unique(labels):
            keep = labels == c
            gt[c - 1][image_id] = (boxes[keep], difficult[keep])
            num_positives[c - 1] += int((~difficult[keep]).sum())
    return gt, num_positives


def _detections_per_class(
    detections: Iterable[Any], ground_truth: Mapping[str, Any], class_index: dict[str, int], num_classes: int
) -> list[list[tuple[str, float, Sequence[float]]]]:
    """Detections grouped per class, in input order (the order ties keep); warns about unknown images."""
    per_class: list[list[tuple[str, float, Sequence[float]]]] = [[] for _ in range(num_classes)]
    unknown_images: set[str] = set()
    num_unknown = 0
    for i, record in enumerate(detections):
        image_id, label, score, box = unpack_detection(record, i)
        c = class_position(label, class_index, num_classes, i)
        per_class[c].append((image_id, float(score), box))
        if image_id not in ground_truth:
            unknown_images.add(image_id)
            num_unknown += 1
    if num_unknown:
        example = sorted(unknown_images)[0]
        warnings.warn(
            f"{num_unknown} detections refer to {len(unknown_images)} images absent from the ground truth "
            f"(e.g. {example!r}); they count as false positives",
            stacklevel=3,
        )
    return per_class


def _class_curve(
    dets: list[tuple[str, float, Sequence[float]]],
    gt: dict[str, tuple[np.ndarray, np.ndarray]],
    num_positives: int,
    iou_threshold: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Recall and precision after each of one class's D detections, in decreasing score order."""
    num_dets = len(dets)
    scores = np.array([score for _, score, _ in dets], dtype=np.float64)
    boxes = np.array([box for _, _, box in dets], dtype=np.float64).reshape(num_dets, 4)

    # Best IoU and best box for every detection, computed per image. Which box a detection compares
    # with does not depend on the order; only whether that box is already taken does.
    best_iou = np.full(num_dets, -np.inf)
    best_box = np.zeros(num_dets, dtype=np.int64)
    rows_per_image: dict[str, list[int]] = {}
    for d, (image_id, _, _) in enumerate(dets):
        rows_per_image.setdefault(image_id, []).append(d)
    for image_id, rows in rows_per_image.items():
        if image_id not in gt:
            continue
        iou = _devkit_iou(boxes[rows], gt[image_id][0])  # [D_img, G]
        best_box[rows] = iou.argmax(axis=1)  # first maximum, like the devkit's strict `ov > ovmax`
        best_iou[rows] = iou.max(axis=1)

    taken = {image_id: np.zeros(len(difficult), dtype=bool) for image_id, (_, difficult) in gt.items()}
    tp = np.zeros(num_dets)
    fp = np.zeros(num_dets)
    order = np.argsort(-scores, kind="stable")
    for rank, d in enumerate(order):
        if best_iou[d] >= iou_threshold:
            image_id, j = dets[d][0], best_box[d]
            if gt[image_id][1][j]:
                continue  # difficult: neither TP nor FP
            if not taken[image_id][j]:
                tp[rank] = 1
                taken[image_id][j] = True
            else:
                fp[rank] = 1
        else:
            fp[rank] = 1
    tp, fp = np.cumsum(tp), np.cumsum(fp)
    recall = tp / num_positives
    precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    return recall, precision


def _devkit_iou(boxes: np.ndarray, gt_boxes: np.ndarray) -> np.ndarray:
    """IoU [D, G]; pairs that do not intersect get -inf, as the devkit never considers them."""
    x1 = np.maximum(boxes[:, None, 0], gt_boxes[None, :, 0])
    y1 = np.maximum(boxes[:, None, 1], gt_boxes[None, :, 1])
    x2 = np.minimum(boxes[:, None, 2], gt_boxes[None, :, 2])
    y2 = np.minimum(boxes[:, None, 3], gt_boxes[None, :, 3])
    iw, ih = x2 - x1, y2 - y1
    inter = iw * ih
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    gt_area = (gt_boxes[:, 2] - gt_boxes[:, 0]) * (gt_boxes[:, 3] - gt_boxes[:, 1])
    union = area[:, None] + gt_area[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / union
    return np.where((iw > 0) & (ih > 0), iou, -np.inf)


def _as_numpy(x: Any, dtype: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def unpack_detection(record: Any, index: int) -> tuple[str, Any, float, Sequence[float]]:
    """(image_id, label, score, box) of a Detection, a tuple or a mapping with those keys (``index``: for errors)."""
    if isinstance(record, Mapping):
        try:
            return record["image_id"], record["label"], record["score"], record["box"]
        except KeyError as e:
            raise ValueError(f"detection {index}: missing field {e.args[0]!r}") from None
    image_id, label, score, box = record
    return image_id, label, score, box


def class_position(label: Any, class_index: dict[str, int], num_classes: int, index: int) -> int:
    """0-based class position of a class name or a 1-based label."""
    if isinstance(label, str):
        if label not in class_index:
            raise ValueError(f"detection {index}: unknown class {label!r}; known classes: {list(class_index)}")
        return class_index[label]
    if hasattr(label, "item"):
        label = label.item()
    if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or not 1 <= label <= num_classes:
        raise ValueError(f"detection {index}: label must be a class name or an int in 1..{num_classes}, got {label!r}")
    return int(label) - 1


def ground_truth_from_dataset(dataset: Any) -> dict[str, dict[str, np.ndarray]]:
    """Ground truth for evaluate_detections from a VOCDetection, without decoding any image."""
    if getattr(dataset, "keep_difficult", True) is False:
        raise ValueError(
            "the dataset was built with keep_difficult=False, but VOC evaluation needs the difficult boxes "
            "(detections on them are ignored, not counted as false positives); build it with keep_difficult=True"
        )
    ground_truth: dict[str, dict[str, np.ndarray]] = {}
    for i in range(len(dataset)):
        target = dataset.target(i)
        image_id = str(target["image_id"])
        if image_id in ground_truth:
            raise ValueError(f"image id {image_id!r} appears twice in the dataset; image ids must be unique")
        ground_truth[image_id] = {
            "boxes": _as_numpy(target["boxes"], np.float64).reshape(-1, 4),
            "labels": _as_numpy(target["labels"], np.int64).reshape(-1),
            "difficult": _as_numpy(target["difficult"], bool).reshape(-1),
        }
    return ground_truth


def load_detections_json(path: str | Path, classes: Sequence[str]) -> list[Detection]:
    """Read a DETS.json file: a list of {"image_id", "label", "score", "box"} objects.

    "label" is a class name and "box" is [xmin, ymin, xmax, ymax] in the annotation files' own 1-based
    pixel convention (as in devkit result files); boxes are returned in continuous xyxy.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of detections, got {type(data).__name__}")
    class_set = set(classes)
    detections = []
    for i, entry in enumerate(data):
        where = f"{path}: entry {i}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected an object, got {type(entry).__name__}")
        for key in ("image_id", "label", "score", "box"):
            if key not in entry:
                raise ValueError(f'{where}: missing field "{key}"')
        image_id, label, score, box = entry["image_id"], entry["label"], entry["score"], entry["box"]
        if not isinstance(image_id, str):
            raise ValueError(f'{where}: field "image_id" must be a string such as "000001", got {image_id!r}')
        if not isinstance(label, str) or label not in class_set:
            raise ValueError(f'{where}: field "label" is {label!r}, not one of the classes {list(classes)}')
        if not _is_number(score):
            raise ValueError(f'{where}: field "score" must be a finite number, got {score!r}')
        if not isinstance(box, list) or len(box) != 4:
            raise ValueError(f'{where}: field "box" must be a list [xmin, ymin, xmax, ymax], got {box!r}')
        if not all(_is_number(v) for v in box):
            raise ValueError(f'{where}: field "box" must hold finite numbers, got {box!r}')
        xmin, ymin, xmax, ymax = (float(v) for v in box)
        detections.append(Detection(image_id, label, float(score), (xmin - 1.0, ymin - 1.0, xmax, ymax)))
    return detections


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
