"""POST /classify: an image in, the top-k classes with their probabilities out."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request

from api.deps import APIKey, RegistryDep, SettingsDep
from api.errors import APIError, error_responses
from api.pipeline import predict
from api.schemas import ClassifyResponse, ImageSize, Prediction
from api.upload import REQUEST_BODY

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
    served = registry.get("classify", model)
    if tta == "multiscale" and served.predictor.fixed_input_size:
        size = served.predictor.input_size
        raise APIError(
            422,
            "unsupported_tta",
            f"model {served.name!r} takes only {size} px inputs; multiscale TTA needs a network that accepts any size",
        )
    answer = await predict(request, served, settings, tta=tta)
    top = served.predictor.top_k(answer.result.value, top_k)
    return ClassifyResponse(
        model=served.name,
        image=ImageSize(width=answer.decoded.width, height=answer.decoded.height),
        predictions=[Prediction(label=name, score=min(max(p, 0.0), 1.0)) for name, p in top],
        timing_ms=answer.timing,
    )
