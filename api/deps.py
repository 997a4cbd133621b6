"""Dependencies the routes share, as ``Annotated`` aliases; tests swap them through ``dependency_overrides``."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from api.config import Settings
from api.errors import APIError
from api.metrics import ServiceMetrics
from api.registry import ModelRegistry

API_KEY_HEADER = "X-API-Key"


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_registry(request: Request) -> ModelRegistry:
    return request.app.state.registry


def get_metrics(request: Request) -> ServiceMetrics:
    return request.app.state.metrics


def require_api_key(request: Request, settings: Annotated[Settings, Depends(get_settings)]) -> None:
    """Read from the request rather than declared as a parameter: the OpenAPI schema shows the key only when one is
    configured (create_app adds the security scheme then), so clients and schema-driven tests see the real contract."""
    if settings.api_key is None:
        return
    key = request.headers.get(API_KEY_HEADER)
    expected = settings.api_key.get_secret_value().encode()
    # compare_digest takes the same time wherever the strings differ, so the key cannot be guessed byte by byte.
    if key is None or not hmac.compare_digest(key.encode(), expected):
        raise APIError(
            401,
            "unauthorized",
            "a valid API key is needed in the X-API-Key header",
            headers={"WWW-Authenticate": "X-API-Key"},
        )


SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]
APIKey = Depends(require_api_key)
