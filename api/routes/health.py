"""Liveness, readiness, the served models and the Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.deps import APIKey, MetricsDep, RegistryDep, SettingsDep, require_api_key
from api.errors import APIError, error_responses
from api.schemas import Health, ModelInfo, ModelList, Ready

router = APIRouter()


@router.get("/healthz", response_model=Health, summary="The process is alive")
async def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", response_model=Ready, responses=error_responses(503), summary="Models are loaded and warmed up")
async def readyz(registry: RegistryDep) -> Ready:
    if not registry.ready:
        raise APIError(503, "not_ready", "models are still loading", headers={"Retry-After": "1"})
    return Ready(status="ready", models=list(registry.models))


@router.get(
    "/models",
    response_model=ModelList,
    dependencies=[APIKey],
    responses=error_responses(401, 503),
    summary="The served models",
)
async def models(registry: RegistryDep) -> ModelList:
    if not registry.ready:
        raise APIError(503, "not_ready", "models are still loading", headers={"Retry-After": "1"})
    return ModelList(
        models=[ModelInfo(**m.info(), default=registry.defaults[m.task] == name) for name, m in registry.models.items()]
    )


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text format"}
    },
    summary="Prometheus metrics",
)
async def metrics(request: Request, service_metrics: MetricsDep, settings: SettingsDep) -> Response:
    # The model names and traffic are the service's business: with an API key set, /metrics needs it too, unless
    # DETECTOR_API_METRICS_PUBLIC opens it for a scraper.
    if not settings.metrics_public:
        require_api_key(request, settings)
    return Response(service_metrics.render(), media_type=service_metrics.content_type)
