"""One error shape for every failure the client can cause: ``{"error": {"code", "message"}}``.

Routes raise ``APIError``; FastAPI's own validation errors (422) and HTTP errors (404, 405, ...) are rewritten into
the same shape by the handlers installed in ``install_error_handlers``, so no client ever sees FastAPI's ``detail``.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("api")


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


class APIError(Exception):
    def __init__(self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": {"code": code, "message": message}}, headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = [str(x) for x in err.get("loc", ()) if x not in ("body",)]
        where = ".".join(loc[1:]) if loc and loc[0] in ("query", "header", "path") else ".".join(loc)
        parts.append(
            f"{loc[0] if loc else 'request'} field {where!r}: {err.get('msg', 'invalid')}"
            if where
            else err.get("msg", "invalid")
        )
    return "; ".join(parts) or "invalid request"


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, "invalid_request", _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(
            exc.status_code,
            _STATUS_CODES.get(exc.status_code, f"http_{exc.status_code}"),
            str(exc.detail),
            getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:  # a bug: log it, answer in the same shape
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        # Starlette re-raises an unhandled exception after this answer and uvicorn then closes the connection:
        # say so, or a keep-alive client's next request fails with a reset instead of reaching a healthy server.
        return error_response(
            500,
            "internal_error",
            "the server failed to answer this request; the error is in its log",
            headers={"Connection": "close"},
        )


# OpenAPI: the error answers each route can give, all with the one shape.
def error_responses(*codes: int) -> dict[int, dict]:
    text = {
        400: "corrupt or truncated image",
        401: "missing or wrong API key",
        404: "unknown model",
        406: "cannot answer in an accepted format",
        413: "upload or pixel count over the limit",
        415: "not an accepted image format",
        422: "missing field, empty body or invalid query value",
        503: "queue full or models not loaded (see Retry-After)",
        504: "waited past the request timeout",
    }
    return {c: {"model": ErrorResponse, "description": text.get(c, "error")} for c in codes}
