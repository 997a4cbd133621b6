"""Response models: every route declares one, so /docs shows the real answers."""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, Field


class Box(BaseModel):
    """xyxy in pixels of the uploaded image (after its EXIF rotation), continuous coordinates."""

    xmin: float
    ymin: float
    xmax: float
    ymax: float


class Detection(BaseModel):
    label: str
    score: float = Field(ge=0, le=1)
    box: Box


class ImageSize(BaseModel):
    width: int
    height: int


class Timing(BaseModel):
    """Milliseconds: reading the upload, decoding and preparing the image, waiting in the batch queue, the model
    call (shared by every image of its batch), and the whole request."""

    read: float
    decode: float
    queue: float
    inference: float
    total: float
    batch_size: int = Field(description="images in the model call that answered this request")

    @classmethod
    def of(cls, start: float, read: float, decoded: float, result: Any) -> Timing:
        """From ``time.perf_counter()`` marks (request start, upload read, image decoded) and the worker's Result."""
        return cls(
            read=(read - start) * 1000,
            decode=(decoded - read) * 1000,
            queue=result.queue_s * 1000,
            inference=result.inference_s * 1000,
            total=(time.perf_counter() - start) * 1000,
            batch_size=result.batch_size,
        )


class DetectResponse(BaseModel):
    model: str
    image: ImageSize
    detections: list[Detection]
    timing_ms: Timing


class Prediction(BaseModel):
    label: str
    score: float = Field(ge=0, le=1)


class ClassifyResponse(BaseModel):
    model: str
    image: ImageSize
    predictions: list[Prediction]
    timing_ms: Timing


class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ready"]
    models: list[str]


class ModelInfo(BaseModel):
    name: str
    task: Literal["detect", "classify"]
    kind: str
    classes: list[str]
    backbone: str | None
    device: str
    precision: str
    precision_reason: str = Field(
        description="why this precision: 'asked for', or what DETECTOR_API_PRECISION=auto saw (GPU bf16, CPU AMX)"
    )
    checkpoint: str
    default: bool
    display_score_threshold: float | None = Field(
        None, description="detectors: the score_threshold /detect uses when none is given"
    )
    metrics: dict[str, Any] = Field(
        description="what the checkpoint recorded about itself (e.g. validation mAP or top-1)"
    )


class ModelList(BaseModel):
    models: list[ModelInfo]
