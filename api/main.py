"""The detection and classification service.

    uvicorn api.main:app                      # default settings (DETECTOR_API_* environment variables)
    python -m api --host 0.0.0.0 --port 8000  # the same, with the settings printed and uvicorn's options

``create_app(settings)`` builds an app; nothing is loaded at import time. Models load in the lifespan (from their
self-describing checkpoints), are warmed up, get one batching inference worker each, and only then does /readyz
answer 200. On shutdown the workers finish the requests already queued.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse

from api.config import Settings
from api.deps import API_KEY_HEADER
from api.errors import install_error_handlers
from api.images import raise_pillow_limit
from api.limits import BodySizeLimitMiddleware
from api.metrics import MetricsMiddleware, ServiceMetrics
from api.registry import ModelRegistry
from api.routes import classify, detect, health

STATIC = Path(__file__).parent / "static"
log = logging.getLogger("api")


def create_app(settings: Settings | None = None) -> FastAPI:
    """The FastAPI app for ``settings`` (default: read from the environment)."""
    settings = settings or Settings()
    metrics = ServiceMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        reg = app.state.registry
        # Loading and warming up take seconds of CPU work: off the event loop, so /healthz answers meanwhile.
        await asyncio.to_thread(reg.load_all)
        workers = reg.start_workers()
        reg.ready = True
        log.info("ready: %s", ", ".join(f"{n} ({m.task})" for n, m in reg.models.items()))
        try:
            yield
        finally:
            reg.ready = False
            await reg.drain(workers)
            app.state.decode_pool.shutdown(wait=False)

    app = FastAPI(
        title="detector",
        summary="Object detection (Faster R-CNN) and image classification",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.registry = ModelRegistry(settings, metrics)
    app.state.decode_pool = ThreadPoolExecutor(settings.decode_workers, thread_name_prefix="decode")
    raise_pillow_limit(settings.max_image_pixels)
    install_error_handlers(app)
    app.include_router(detect.router)
    app.include_router(classify.router)
    app.include_router(health.router)

    if settings.api_key is not None:
        _document_api_key(app, PROTECTED if settings.metrics_public else (*PROTECTED, "/metrics"))

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    # Outermost last: the size limit wraps everything, metrics count even refused requests.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_upload_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"], allow_headers=["*"]
        )
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


PROTECTED = ("/detect", "/classify", "/models")


def _document_api_key(app: FastAPI, protected: tuple[str, ...]) -> None:
    """Declare the X-API-Key scheme on the routes that check it (only when a key is configured)."""
    plain_openapi = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = plain_openapi()
            schema.setdefault("components", {}).setdefault("securitySchemes", {})["APIKey"] = {
                "type": "apiKey",
                "in": "header",
                "name": API_KEY_HEADER,
            }
            for path in protected:
                for operation in schema["paths"].get(path, {}).values():
                    operation["security"] = [{"APIKey": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi


def __getattr__(name: str):
    # ``uvicorn api.main:app`` builds the default app on first access rather than at import, so importing this
    # module (tests, tools) never reads the environment or touches a checkpoint.
    if name == "app":
        global app
        if not log.handlers:  # the service's own lines ("loaded ...", "ready: ...") next to uvicorn's
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter("%(levelname)s:     [api] %(message)s"))
            log.addHandler(handler)
            log.setLevel(logging.INFO)
        app = create_app()
        return app
    raise AttributeError(name)
