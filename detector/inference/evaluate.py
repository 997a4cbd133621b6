"""A predictor over a whole dataset: detections and VOC mAP, or classification accuracy. Used by
``detector.evaluate``, by validation during training and by the tools.

Detection datasets yield (image [3, H, W] float in [0, 1], target with ``image_id`` and, for the selective-search
kinds, cached ``proposals`` [P, 4]); boxes are ``xyxy`` in continuous pixels of the original image. Classification
datasets yield (image [3, S, S] transformed as for the model, label in 0..K-1).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from tqdm import tqdm

from detector.data.folder import ImageFolderDataset
from detector.data.formats import open_detection
from detector.data.transforms import collate
from detector.data.with_proposals import with_cached_proposals
from detector.evaluation.classification import accuracy_report
from detector.evaluation.coco import save_coco_files
from detector.evaluation.detection import DetectionMetrics, evaluate_metric
from detector.evaluation.report import save_detections_json
from detector.evaluation.voc import (
    Detection,
    ground_truth_from_dataset,
    load_detections_json,
)
from detector.inference.predictor import ClassificationPredictor, DetectionPredictor
from detector.inference.tta import TTA_MODES, tta_sizes


def predict_dataset(
    predictor: DetectionPredictor, dataset, *, batch_size: int = 1, workers: int = 0, progress: bool = True
) -> list[Detection]:
    """Every detection of ``predictor`` on ``dataset``, with its 1-based label and box in original-image pixels."""
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=collate
    )
    detections: list[Detection] = []
    for images, targets in tqdm(loader, desc="eval", disable=not progress, leave=False, unit="batch"):
        # External proposals (Fast R-CNN, R-CNN) come with the targets when the dataset carries them.
        proposals = [t["proposals"] for t in targets] if "proposals" in targets[0] else None
        outputs = predictor.predict_batch(list(images), proposals=proposals)
        for out, target in zip(outputs, targets):
            boxes, labels, scores = out["boxes"].tolist(), out["labels"].tolist(), out["scores"].tolist()
            detections.extend(
                Detection(target["image_id"], int(lbl), float(s), b) for b, lbl, s in zip(boxes, labels, scores)
            )
    return detections


def evaluate_detector(
    predictor: DetectionPredictor,
    dataset,
    *,
    metric: str = "voc07",
    iou_threshold: float = 0.5,
    batch_size: int = 1,
    workers: int = 0,
    progress: bool = True,
) -> tuple[DetectionMetrics, float]:
    """``metric`` (voc07, voc12, coco, all) of ``predictor`` on ``dataset`` (built with ``keep_difficult=True``).
    Returns (result, seconds per image)."""
    start = time.perf_counter()
    detections = predict_dataset(predictor, dataset, batch_size=batch_size, workers=workers, progress=progress)
    seconds = (time.perf_counter() - start) / max(len(dataset), 1)
    truth = ground_truth_from_dataset(dataset)
    result = evaluate_metric(detections, truth, dataset.classes, iou_threshold=iou_threshold, metric=metric)
    return result, seconds


def evaluate_classifier(
    predictor: ClassificationPredictor,
    dataset,
    *,
    tta: str = "none",
    batch_size: int = 64,
    workers: int = 0,
    progress: bool = False,
) -> dict:
    """Accuracy of ``predictor`` on ``dataset``: ``detector.evaluation.classification.accuracy_report`` plus
    ``tta``. With ``tta`` "10crop" or "multiscale" the dataset must yield the views' larger source images
    (``predictor.transforms[tta]``), one at a time; classes are named by ``dataset.classes``."""
    if tta not in TTA_MODES:
        raise ValueError(f"unknown TTA mode {tta!r}; choose one of {', '.join(TTA_MODES)}")
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size if tta == "none" else 1, shuffle=False, num_workers=workers
    )
    probs, labels = [], []
    desc = "eval" if tta == "none" else f"eval ({tta})"
    for images, batch_labels in tqdm(loader, desc=desc, disable=not progress, leave=False, unit="batch"):
        probs.extend(predictor.predict_batch(list(images), tta))
        labels.append(batch_labels)
    report = accuracy_report(torch.stack(probs), torch.cat(labels), getattr(dataset, "classes", ()))
    return {**report, "tta": tta}


def evaluate_classifier_checkpoint(
    checkpoint: str | Path,
    data: str | Path,
    split: str = "test",
    *,
    tta: str = "none",
    device: str | torch.device = "cpu",
    batch_size: int = 64,
    workers: int = 0,
    progress: bool = False,
) -> dict:
    """Accuracy of the classifier in ``checkpoint`` on ``data/split/<class>/*``, its images prepared as its
    training prepared its validation images (or as the TTA views' sources): :func:`evaluate_classifier`'s dict
    plus ``checkpoint``, ``data``, ``split``, ``classes``, ``input_size``, ``preset`` (and ``tta_sizes``).

    The class folders must be among the checkpoint's classes (label i is its class i). Raises ``CheckpointError``
    for a missing or non-classifier file, ``FileNotFoundError`` / ``ValueError`` for a missing split or an unknown
    class folder, ``ValueError`` for ``tta="multiscale"`` with a fixed-size model.
    """
    if tta not in TTA_MODES:
        raise ValueError(f"unknown TTA mode {tta!r}; choose one of {', '.join(TTA_MODES)}")
    predictor = ClassificationPredictor.from_checkpoint(checkpoint, device=device)
    if tta == "multiscale" and predictor.fixed_input_size:
        raise ValueError(
            f"--tta multiscale feeds images of several sizes; {predictor.name} takes only its input size. "
            "Use --tta 10crop or none"
        )
    classes = list(predictor.class_names)
    dataset = ImageFolderDataset(data, split, classes=classes, transform=predictor.transforms[tta])
    result = evaluate_classifier(predictor, dataset, tta=tta, batch_size=batch_size, workers=workers, progress=progress)
    size = predictor.input_size
    preset = (predictor.meta.get("train_config") or {}).get("augment", "none")
    result.update(
        checkpoint=str(checkpoint), data=str(data), split=split, classes=classes, input_size=size, preset=preset
    )
    if tta != "none":
        result["tta_sizes"] = {k: list(v) if isinstance(v, tuple) else v for k, v in tta_sizes(size).items()}
    return result


def evaluate_detector_checkpoint(
    checkpoint: str | Path,
    data: str | Path,
    split: str = "test",
    *,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    metric: str = "voc07",
    iou_threshold: float = 0.5,
    batch_size: int = 1,
    workers: int = 0,
    max_proposals: int | None = None,
    proposal_cache: str | Path | None = None,
    save_detections: str | Path | None = None,
    progress: bool = True,
    data_options: dict | None = None,
) -> tuple[DetectionMetrics, dict]:
    """``metric`` (voc07, voc12, coco or all: ``detector.evaluation.detection``) of the detector in ``checkpoint`` on
    the VOC-format ``data``/``split`` (difficult boxes ignored, as the devkit does). Selective-search kinds read
    their proposals from the cache (filled first when incomplete). Returns (result, what ran: ``{"kind",
    "checkpoint", "precision", "proposals": {"source", "per_image"}, "seconds_per_image"}``, one schema for every
    kind). ``save_detections``: also write them as DETS.json (and, for coco or all, as COCO results beside it with
    the ground truth they were scored against). ``data_options``: ``open_detection``'s (format, val_ratio, ...)."""
    predictor = DetectionPredictor.from_checkpoint(
        checkpoint, device=device, precision=precision, max_proposals=max_proposals
    )
    dataset = open_detection(data, split, classes=predictor.class_names, keep_difficult=True, **(data_options or {}))
    model = predictor.model
    if model.config.external_proposals:
        dataset = with_cached_proposals(dataset, model.config, cache_dir=proposal_cache, workers=workers)
    start = time.perf_counter()
    detections = predict_dataset(predictor, dataset, batch_size=batch_size, workers=workers, progress=progress)
    seconds = (time.perf_counter() - start) / max(len(dataset), 1)
    truth = ground_truth_from_dataset(dataset)
    if save_detections is not None:
        save_detections_json(detections, dataset.classes, save_detections)
        if metric in ("coco", "all"):
            sizes = {str(dataset.target(i)["image_id"]): dataset.image_size(i) for i in range(len(dataset))}
            files = save_coco_files(detections, truth, dataset.classes, save_detections, image_sizes=sizes)
            print(f"detections also written as COCO results: {files[0]} (ground truth: {files[1]})")
    result = evaluate_metric(detections, truth, dataset.classes, iou_threshold=iou_threshold, metric=metric)
    run = {
        "kind": model.kind,
        "checkpoint": str(checkpoint),
        "precision": predictor.precision.name,
        "proposals": {"source": model.proposal_source, "per_image": model.max_proposals},
        "seconds_per_image": seconds,
    }
    cached = " (cached; selective search time not included)" if model.config.external_proposals else ""
    print(
        f"{model.kind}: at most {model.max_proposals} {model.proposal_source} proposals per image{cached}, "
        f"{seconds:.3f} s per image"
    )
    return result, run


def evaluate_saved_detections(
    path: str | Path,
    data: str | Path,
    split: str = "test",
    *,
    metric: str = "voc07",
    iou_threshold: float = 0.5,
    data_options: dict | None = None,
) -> DetectionMetrics:
    """``metric`` of the detections in DETS.json (``{"image_id", "label", "score", "box"}`` records, 1-based boxes)."""
    dataset = open_detection(data, split, keep_difficult=True, **(data_options or {}))
    detections = load_detections_json(path, dataset.classes)
    truth = ground_truth_from_dataset(dataset)
    return evaluate_metric(detections, truth, dataset.classes, iou_threshold=iou_threshold, metric=metric)
