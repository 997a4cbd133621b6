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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from api.batching import BatchWorker
from api.config import Settings
from api.errors import APIError
from api.images import Decoded, decode_image, scale_to_cover
from api.memory import release_free_memory
from api.metrics import ServiceMetrics
from detector.classify.torchvision_imagenet import fetch_hint
from detector.core import checkpoint
from detector.core import precision as precisions
from detector.core.devices import device_from_name
from detector.core.precision import Precision
from detector.inference.predictor import ClassificationPredictor, DetectionPredictor, load_predictor

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
    """DETECTOR_API_PRECISION on ``device``: ``auto`` follows the hardware (``detector.core.precision``), and the
    result says why."""
    try:
        return precisions.resolve_precision(name, device)
    except ValueError as exc:
        raise ModelLoadError(f"DETECTOR_API_PRECISION={name}: {exc}") from None


_LARGE = 4_000_000  # pixels: above this a decode's freed buffers are worth returning at once


@dataclass
class ServedModel:
    """A model the service answers with: its name, its predictor (detector.inference.predictor: image -> model input
    -> answer) and, once the app runs, its batching worker."""

    name: str
    predictor: DetectionPredictor | ClassificationPredictor
    checkpoint: Path
    worker: BatchWorker | None = None

    @property
    def task(self) -> Task:
        return self.predictor.task

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.predictor.class_names

    def info(self) -> dict[str, Any]:
        """What ``GET /models`` shows."""
        p = self.predictor
        return {
            **p.info(),
            "name": self.name,
            "checkpoint": str(self.checkpoint),
            "display_score_threshold": p.display_threshold if self.task == "detect" else None,
            "metrics": _jsonable(p.meta.get("metrics") or {}),
        }

    def decode_and_prepare(self, data: bytes, settings: Settings, tta: str = "none") -> tuple[Decoded, torch.Tensor]:
        """CPU work done off the event loop before queueing: the upload decoded no larger than the model needs, and
        the model's input tensor for it. Decoding errors are the upload's (4xx); a failure to prepare a decoded
        image is the server's (500, logged)."""
        short, long = self.predictor.decode_bounds
        decoded = decode_image(
            data, allowed_formats=settings.allowed_formats, max_pixels=settings.max_image_pixels,
            target=scale_to_cover(short, long),
        )  # fmt: skip
        if decoded.width * decoded.height > _LARGE:
            release_free_memory()  # the full-size decode is gone; give its pages back now
        try:
            return decoded, self.predictor.to_input(decoded.image, tta)
        except Exception:
            log.exception("model %r could not prepare a %d x %d image", self.name, decoded.width, decoded.height)
            raise APIError(
                500, "prepare_failed", f"model {self.name!r} could not prepare this image; see the log"
            ) from None

    def run_batch(self, items: list[torch.Tensor], key: Hashable) -> list[Any]:
        """The worker's call (in its thread): one batch of inputs with the same TTA ``key``."""
        return self.predictor.predict_batch(items, key)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def load_served_model(name: str, path: Path, device: torch.device, precision: Precision) -> ServedModel:
    """Rebuild a detector or classifier from its checkpoint alone; errors name the file and the fix."""
    if not path.is_file():
        fetch = fetch_hint(path)  # torchvision's ImageNet files: the command that downloads them
        hint = {
            "default-detector.pt": " (make default-detector trains it)",
            "default-classifier.pt": " (make default-classifier trains it)",
        }.get(path.name, f" ({fetch})" if fetch else "")
        raise ModelLoadError(
            f"model {name!r}: checkpoint {path} does not exist{hint}; set DETECTOR_API_MODELS to serve other files"
        )
    try:
        predictor = load_predictor(path, device=device, precision=precision)
    except checkpoint.CheckpointError as exc:
        raise ModelLoadError(f"model {name!r}: {exc}") from None
    return ServedModel(name, predictor, path)


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
            served = load_served_model(name, Path(path), device, chosen)
            if self.settings.warmup:
                served.predictor.warm_up()
            self.models[name] = served
            log.info(
                "loaded %s (%s %s, %d classes) from %s on %s/%s",
                name,
                served.task,
                served.predictor.meta.get("kind"),
                len(served.class_names),
                path,
                device,
                chosen.name,
            )
        for task in ("detect", "classify"):
            name = self.defaults[task]
            if name is not None and self.models[name].task != task:
                raise ModelLoadError(
                    f"default {'detector' if task == 'detect' else 'classifier'} {name!r} is a "
                    f"{self.models[name].task} model"
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
                max_queue_bytes=s.max_queue_mb * 2**20,
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
                f"no {'detection' if task == 'detect' else 'classification'} model named {wanted!r}; available: "
                f"{', '.join(available) or 'none'}",
            )
        return served
