"""The models a service answers with: each loaded from its self-describing checkpoint, put on the device, warmed
up, and given its own batching inference worker.

Data flow of one request, after decoding (api/images.py):
    detection: RGB image -> float tensor [3, H, W] in [0, 1] -> worker batch -> model (transform, backbone,
               proposals, RoI pooling, heads, postprocess) -> boxes in original-image pixels
    classification: RGB image -> the checkpoint's evaluation transform [3, S, S] -> worker batch -> softmax [K]
Boxes are xyxy floats in the pixel coordinates of the uploaded image (after its EXIF rotation).
"""

from __future__ import annotations

import logging
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image
from torch import nn

from api.batching import BatchWorker
from api.config import Settings
from api.errors import APIError
from api.metrics import ServiceMetrics
from detector.classify.engine import tta_sizes, tta_source_transform
from detector.classify.models import ANY_SIZE_CLASSIFIERS, CLASSIFIER_KIND, classifier_from_checkpoint
from detector.core import checkpoint
from detector.core import precision as precisions
from detector.core.devices import device_from_name
from detector.core.precision import Precision, precision_autocast
from detector.data.augment import classification_transform
from detector.models.factory import DETECTOR_KINDS, detector_from_checkpoint
from detector.models.inference import prepare_for_inference
from detector.tta import classify_tta, detect_flip_tta

log = logging.getLogger("api")

Task = Literal["detect", "classify"]


class ModelLoadError(RuntimeError):
    """A configured checkpoint cannot be served; the message names the file and what to do."""


def resolve_device(name: str) -> torch.device:
    try:
        return device_from_name(name)
    except ValueError as exc:
        raise ModelLoadError(f"DETECTOR_API_DEVICE={exc}") from None


def resolve_precision(name: str, device: torch.device) -> Precision:
    """DETECTOR_API_PRECISION on ``device``: ``auto`` follows the hardware (detector.precision), with the reason."""
    try:
        return precisions.resolve_precision(name, device)
    except ValueError as exc:
        raise ModelLoadError(f"DETECTOR_API_PRECISION={name}: {exc}") from None


@dataclass
class ServedModel:
    name: str
    task: Task
    kind: str
    model: nn.Module
    class_names: tuple[str, ...]
    device: torch.device
    precision: str
    checkpoint: Path
    meta: dict[str, Any]  # the checkpoint without its weights
    precision_reason: str = "asked for"  # why this precision: "asked for", or what ``auto`` saw in the hardware
    worker: BatchWorker | None = None
    transforms: dict[str, Any] = field(default_factory=dict)  # classification: tta mode -> evaluation transform

    # --- what the API shows

    def info(self) -> dict[str, Any]:
        config = self.meta.get("model_config") or {}
        backbone = config.get("backbone") or config.get("name")
        return {
            "name": self.name,
            "task": self.task,
            "kind": self.kind,
            "classes": list(self.class_names),
            "backbone": backbone,
            "device": str(self.device),
            "precision": self.precision,
            "precision_reason": self.precision_reason,
            "checkpoint": str(self.checkpoint),
            "display_score_threshold": self.display_threshold if self.task == "detect" else None,
            "metrics": _jsonable(self.meta.get("metrics") or {}),
        }

    @property
    def display_threshold(self) -> float:
        return float(getattr(getattr(self.model, "config", None), "display_score_threshold", 0.5))

    # --- inference (runs in the worker's thread)

    def prepare(self, image: Image.Image, tta: str = "none") -> torch.Tensor:
        """CPU work done off the event loop before queueing: the model's input tensor for one image."""
        array = np.array(image, dtype=np.uint8)  # a writable copy: torch.from_numpy shares it
        if self.task == "detect":
            return torch.from_numpy(array).permute(2, 0, 1).float().div_(255)  # [3, H, W]; the model resizes
        return self.transforms[tta](array)  # [3, S, S] (or [3, R, R], the TTA views' source)

    @torch.inference_mode()
    def run_batch(self, items: list[torch.Tensor], key: Hashable) -> list[Any]:
        with precision_autocast(self.device, self.precision):
            if self.task == "detect":
                images = [x.to(self.device, non_blocking=True) for x in items]
                outputs = detect_flip_tta(self.model, images) if key == "flip" else self.model(images)
                return [
                    {k: (v.float() if v.is_floating_point() else v).cpu() for k, v in out.items()} for out in outputs
                ]
            if key == "none":
                batch = torch.stack(items).to(self.device, non_blocking=True)
                return list(self.model(batch).float().softmax(dim=1).cpu())
            size = self.input_size
            sizes = tta_sizes(size)
            return [
                classify_tta(
                    self.model, x.to(self.device), str(key), resize=sizes["resize"], crop=size, scales=sizes["scales"]
                )
                .float()
                .cpu()
                for x in items
            ]

    @property
    def fixed_input_size(self) -> bool:
        """softmax, mlp and lenet5 flatten an input of their training size; the others pool to any size."""
        return self.task == "classify" and (self.meta.get("model_config") or {}).get("name") not in ANY_SIZE_CLASSIFIERS

    @property
    def input_size(self) -> int:
        return int((self.meta.get("model_config") or {}).get("input_size", [3, 224, 224])[-1])

    def warm_up(self) -> None:
        blank = Image.new("RGB", (320, 240), (127, 127, 127))
        self.run_batch([self.prepare(blank)], "none")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, (np.generic,)):
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def load_served_model(
    name: str, path: Path, device: torch.device, precision: str, precision_reason: str = "asked for"
) -> ServedModel:
    """Rebuild a detector or classifier from its checkpoint alone; errors name the file and the fix."""
    if not path.is_file():
        hint = {
            "default-detector.pt": " (make default-detector trains it)",
            "default-classifier.pt": " (make default-classifier trains it)",
        }.get(path.name, "")
        raise ModelLoadError(
            f"model {name!r}: checkpoint {path} does not exist{hint}; set DETECTOR_API_MODELS to serve other files"
        )
    try:
        ckpt = checkpoint.load(path)  # read once; its "kind" says which rebuild applies
        kind = ckpt.get("kind")
        if kind in DETECTOR_KINDS:
            model, meta = detector_from_checkpoint(ckpt, device, source=path)
            prepare_for_inference(model, precision)  # channels-last; bf16/fp16 weights: run_batch autocasts to match
            task: Task = "detect"
        elif kind == CLASSIFIER_KIND:
            model, meta = classifier_from_checkpoint(ckpt, device, source=path)
            task = "classify"
        else:
            raise ModelLoadError(f"model {name!r}: {path} holds a {kind!r} model, which the service cannot serve")
    except checkpoint.CheckpointError as exc:
        raise ModelLoadError(f"model {name!r}: {exc}") from None
    served = ServedModel(
        name,
        task,
        kind,
        model,
        tuple(model.class_names),
        device,
        precision,
        path,
        meta,
        precision_reason=precision_reason,
    )
    if task == "classify":
        preset = (meta.get("train_config") or {}).get("augment", "none")
        served.transforms = {"none": classification_transform(preset, train=False, size=served.input_size)}
        source = tta_source_transform(preset, input_size=served.input_size)
        served.transforms.update({"10crop": source, "multiscale": source})
    return served


class ModelRegistry:
    """Name -> ServedModel, plus the default model of each task. ``ready`` turns true once all are warmed up."""

    def __init__(self, settings: Settings, metrics: ServiceMetrics):
        self.settings = settings
        self.metrics = metrics
        self.models: dict[str, ServedModel] = {}
        self.ready = False
        self.defaults: dict[str, str | None] = {
            "detect": settings.default_detector,
            "classify": settings.default_classifier,
        }

    def load_all(self) -> None:
        device = resolve_device(self.settings.device)
        chosen = resolve_precision(self.settings.precision, device)
        log.info("precision: %s", chosen)
        for name, path in self.settings.models.items():
            served = load_served_model(name, Path(path), device, chosen.name, chosen.reason)
            if self.settings.warmup:
                served.warm_up()
            self.models[name] = served
            log.info(
                "loaded %s (%s %s, %d classes) from %s on %s/%s",
                name,
                served.task,
                served.kind,
                len(served.class_names),
                path,
                device,
                chosen.name,
            )
        for task in ("detect", "classify"):
            name = self.defaults[task]
            if name is not None and self.models[name].task != task:
                raise ModelLoadError(
                    f"default {'detector' if task == 'detect' else 'classifier'} {name!r} is a {self.models[name].task} model"
                )
            if name is None:
                self.defaults[task] = next((n for n, m in self.models.items() if m.task == task), None)

    def start_workers(self) -> list[BatchWorker]:
        """One worker per model on the running event loop; returns them so the same lifespan can drain them."""
        s = self.settings
        for name, served in self.models.items():
            served.worker = BatchWorker(
                name,
                served.run_batch,
                max_batch_size=s.max_batch_size,
                max_wait_s=s.max_wait_ms / 1000,
                queue_size=s.queue_size,
                retry_after_s=s.retry_after_s,
                on_batch=lambda size, seconds, n=name: (
                    self.metrics.batch_size.labels(n).observe(size),
                    self.metrics.inference.labels(n).observe(seconds),
                ),
                on_queue=lambda depth, n=name: self.metrics.queue_depth.labels(n).set(depth),
            )
            served.worker.start()
        return [served.worker for served in self.models.values()]

    async def drain(self, workers: list[BatchWorker]) -> None:
        for worker in workers:
            await worker.drain(self.settings.request_timeout_s)

    def get(self, task: Task, name: str | None) -> ServedModel:
        if not self.ready:
            raise APIError(
                503,
                "not_ready",
                "models are still loading; retry shortly",
                headers={"Retry-After": str(self.settings.retry_after_s)},
            )
        wanted = name or self.defaults[task]
        available = sorted(n for n, m in self.models.items() if m.task == task)
        if wanted is None:
            raise APIError(
                404, "unknown_model", f"no {'detection' if task == 'detect' else 'classification'} model is configured"
            )
        served = self.models.get(wanted)
        if served is None or served.task != task:
            raise APIError(
                404,
                "unknown_model",
                f"no {'detection' if task == 'detect' else 'classification'} model named {wanted!r}; available: {', '.join(available) or 'none'}",
            )
        return served
