"""POST /classify: an image in, the top-k classes with their probabilities out."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request

from api.deps import APIKey, RegistryDep, SettingsDep
from api.errors import APIError, error_responses
from api.images import decode_image
from api.schemas import ClassifyResponse, ImageSize, Prediction, Timing
from api.upload import REQUEST_BODY, read_image_bytes

router = APIRouter()


@router.post(
    "/classify",
    response_model=ClassifyResponse,
    dependencies=[APIKey],
    openapi_extra=REQUEST_BODY,
    responses=error_responses(400, 401, 404, 413, 415, 422, 503, 504),
    summary="Classify an image",
)
async def classify(
    request: Request,
    registry: RegistryDep,
    settings: SettingsDep,
    top_k: Annotated[
        int, Query(ge=1, le=1000, description="how many classes to return (at most the model's number of classes)")
    ] = 5,
    model: Annotated[
        str | None,
        Query(min_length=1, max_length=200, description="model name (GET /models); default: the default classifier"),
    ] = None,
    tta: Annotated[
        Literal["none", "10crop", "multiscale"],
        Query(description="test-time augmentation: 10 crops or several scales, probabilities averaged"),
    ] = "none",
):
    start = time.perf_counter()
    served = registry.get("classify", model)
    if tta == "multiscale" and served.predictor.fixed_input_size:
        size = served.predictor.input_size
        raise APIError(
            422,
            "unsupported_tta",
            f"model {served.name!r} takes only {size} px inputs; multiscale TTA needs a network that accepts any size",
        )
    data = await read_image_bytes(request)
    t_read = time.perf_counter()
    image = await asyncio.to_thread(
        decode_image, data, allowed_formats=settings.allowed_formats, max_pixels=settings.max_image_pixels
    )
    tensor = await asyncio.to_thread(served.prepare, image, tta)
    t_decode = time.perf_counter()
    result = await served.worker.submit(tensor, key=tta, timeout_s=settings.request_timeout_s)
    top = served.predictor.top_k(result.value, top_k)
    return ClassifyResponse(
        model=served.name,
        image=ImageSize(width=image.width, height=image.height),
        predictions=[Prediction(label=name, score=min(max(p, 0.0), 1.0)) for name, p in top],
        timing_ms=Timing.of(start, t_read, t_decode, result),
    )
