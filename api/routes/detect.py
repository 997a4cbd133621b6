"""POST /detect: an image in, boxes with labels and scores out (JSON), or the image with them drawn (PNG)."""

from __future__ import annotations

import asyncio
import io
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from api.deps import APIKey, RegistryDep, SettingsDep
from api.errors import error_responses
from api.pipeline import predict
from api.schemas import Box, Detection, DetectResponse, ImageSize
from api.upload import REQUEST_BODY
from detector.core.visualize import draw_detections

router = APIRouter()


def wants_png(request: Request, fmt: str | None) -> bool:
    if fmt is not None:
        return fmt == "png"
    accept = request.headers.get("accept", "")
    return "image/png" in accept and "application/json" not in accept


@router.post(
    "/detect",
    response_model=DetectResponse,
    dependencies=[APIKey],
    openapi_extra=REQUEST_BODY,
    responses={
        200: {"content": {"image/png": {}}, "description": "detections (JSON), or the image with them drawn (PNG)"}
    }
    | error_responses(400, 401, 404, 413, 415, 422, 503, 504),
    summary="Detect objects in an image",
)
async def detect(
    request: Request,
    registry: RegistryDep,
    settings: SettingsDep,
    score_threshold: Annotated[
        float | None, Query(ge=0, le=1, description="lowest score returned (default: the model's display threshold)")
    ] = None,
    max_detections: Annotated[
        int,
        Query(
            ge=1,
            le=1000,
            description="most detections returned (the model itself keeps at most its own limit, 100 by default)",
        ),
    ] = 100,
    model: Annotated[
        str | None,
        Query(min_length=1, max_length=200, description="model name (GET /models); default: the default detector"),
    ] = None,
    tta: Annotated[
        Literal["none", "flip"], Query(description="test-time augmentation: the image and its mirror, merged by NMS")
    ] = "none",
    format: Annotated[
        Literal["json", "png"] | None, Query(description="answer as JSON (default) or as a PNG with the boxes drawn")
    ] = None,
):
    served = registry.get("detect", model)
    answer = await predict(request, served, settings, tta=tta)
    image = answer.decoded
    if wants_png(request, format):
        # Drawn on the image as decoded for the model (a huge upload was decoded smaller), so in its pixels.
        found = served.predictor.detections(
            answer.result.value, score_threshold=score_threshold, max_detections=max_detections
        )
        drawn = await asyncio.to_thread(_png, image.image, found, served.class_names)
        return Response(
            drawn, media_type="image/png", headers={"X-Model": served.name, "X-Detections": str(len(found))}
        )
    found = served.predictor.detections(
        answer.result.value, score_threshold=score_threshold, max_detections=max_detections, scale=image.scale
    )
    return DetectResponse(
        model=served.name,
        image=ImageSize(width=image.width, height=image.height),
        detections=[
            Detection(
                label=d.label,
                score=min(max(d.score, 0.0), 1.0),
                box=Box(xmin=d.box[0], ymin=d.box[1], xmax=d.box[2], ymax=d.box[3]),
            )
            for d in found
        ],
        timing_ms=answer.timing,
    )


def _png(image, found, class_names) -> bytes:
    buf = io.BytesIO()
    boxes, names, scores = [d.box for d in found], [d.label for d in found], [d.score for d in found]
    draw_detections(image, boxes, names, scores, class_names=class_names).save(buf, format="PNG")
    return buf.getvalue()
