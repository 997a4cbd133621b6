"""Dependencies the routes share, as ``Annotated`` aliases; tests swap them through ``dependency_overrides``."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from api.config import Settings
from api.errors import APIError
from api.metrics import ServiceMetrics
from api.registry import ModelRegistry

_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="needed only when the service sets DETECTOR_API_API_KEY")


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_registry(request: Request) -> ModelRegistry:
    return request.app.state.registry


def get_metrics(request: Request) -> ServiceMetrics:
    return request.app.state.metrics


def require_api_key(settings: Annotated[Settings, Depends(get_settings)], key: Annotated[str | None, Security(_api_key_header)] = None) -> None:
    if settings.api_key is None:
        return
    expected = settings.api_key.get_secret_value().encode()
    # compare_digest takes the same time wherever the strings differ, so the key cannot be guessed byte by byte.
    if key is None or not hmac.compare_digest(key.encode(), expected):
        raise APIError(401, "unauthorized", "a valid API key is needed in the X-API-Key header", headers={"WWW-Authenticate": "X-API-Key"})


SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]
APIKey = Depends(require_api_key)
