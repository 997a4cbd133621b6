"""Detection metrics by name: VOC's (``voc07``, ``voc12``; ``detector.evaluation.voc``), COCO's (``coco``;
``detector.evaluation.coco``, by pycocotools) or both (``all``), from the same detections and ground truth.

``DetectionMetrics.to_json()`` keeps ``map`` as the primary metric: VOC's when a VOC metric was asked for (``all``
adds COCO's figures under ``"coco"``, leaving the VOC ones exactly as they are), COCO's AP@[.5:.95] for ``coco``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from detector.evaluation.coco import CocoResult, evaluate_coco
from detector.evaluation.voc import Detection, EvalResult, evaluate_detections

METRICS = ("voc07", "voc12", "coco", "all")


@dataclass
class DetectionMetrics:
    """The VOC result (None for ``coco``) and the COCO result (None for ``voc07``/``voc12``)."""

    voc: EvalResult | None
    coco: CocoResult | None

    @property
    def metric(self) -> str:
        """The primary metric's name: the VOC one when computed, else ``coco``."""
        return self.voc.metric if self.voc is not None else "coco"

    @property
    def map(self) -> float | None:
        """The primary metric: VOC mAP when computed, else COCO AP@[.5:.95]."""
        return self.voc.map if self.voc is not None else self.coco.map

    @property
    def ap(self) -> dict[str, float | None]:
        return self.voc.ap if self.voc is not None else self.coco.ap

    def to_json(self) -> dict[str, Any]:
        if self.voc is None:
            return self.coco.to_json()
        payload = self.voc.to_json()
        if self.coco is not None:
            payload["coco"] = self.coco.to_json()
        return payload

    def format_table(self) -> str:
        return "\n".join(r.format_table() for r in (self.voc, self.coco) if r is not None)


def evaluate_metric(
    detections: Sequence[Detection],
    ground_truth: Mapping[str, Mapping[str, Any]],
    classes: Sequence[str],
    *,
    metric: str = "voc07",
    iou_threshold: float = 0.5,
) -> DetectionMetrics:
    """``metric`` (one of METRICS) of ``detections``; ``iou_threshold`` is VOC's (COCO's thresholds are fixed)."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    voc = coco = None
    if metric != "coco":
        voc_metric = "voc07" if metric == "all" else metric
        voc = evaluate_detections(detections, ground_truth, classes, iou_threshold=iou_threshold, metric=voc_metric)
    if metric in ("coco", "all"):
        coco = evaluate_coco(detections, ground_truth, classes)
    return DetectionMetrics(voc, coco)
