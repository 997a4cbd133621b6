"""Request-body size limit enforced while the body streams in, before any parser buffers it.

A declared ``Content-Length`` over the limit is refused at once; a chunked upload (no length) is counted chunk by
chunk and refused as soon as it passes the limit. Either way the answer is 413 in the service's error shape.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import APIError, error_response


class _BodyTooLarge(APIError):
    """Raised from ``receive``; an APIError so that whichever layer catches it first answers 413."""

    def __init__(self, max_bytes: int):
        super().__init__(
            413,
            "payload_too_large",
            f"the request body is over {max_bytes} bytes (counted while streaming); the limit is {max_bytes} bytes",
        )


class BodySizeLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    def _refuse(self, size: str) -> object:
        return error_response(
            413, "payload_too_large", f"the request body is {size}; the limit is {self.max_bytes} bytes"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                declared = -1
            if declared > self.max_bytes:
                return await self._refuse(f"{declared} bytes")(scope, receive, send)

        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await self._refuse(f"over {self.max_bytes} bytes (counted while streaming)")(scope, receive, send)
