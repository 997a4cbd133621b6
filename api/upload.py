"""Reading the image out of a request: the multipart field ``image``, or the whole body sent as ``image/*``."""

from __future__ import annotations

from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException

from api.errors import APIError

FIELD = "image"
# Raw bodies: any image/* type (the format is recognised by content anyway), or a plain octet stream.
RAW_TYPES = (
    "image/jpeg",
    "image/png",
    "image/webp",
    "image/bmp",
    "image/gif",
    "image/tiff",
    "application/octet-stream",
)

# OpenAPI for the request body (the route reads the body itself, so FastAPI cannot infer it).
REQUEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [FIELD],
                    "properties": {
                        FIELD: {
                            "type": "string",
                            "format": "binary",
                            "description": "JPEG, PNG, WebP, BMP, GIF or TIFF",
                        }
                    },
                }
            },
            **{media: {"schema": {"type": "string", "format": "binary"}} for media in RAW_TYPES},
        },
    }
}


async def read_image_bytes(request: Request) -> bytes:
    """The uploaded image's bytes (the size limit is enforced underneath, by BodySizeLimitMiddleware)."""
    content_type = request.headers.get("content-type", "")
    if content_type.lower().startswith("multipart/form-data"):
        try:
            form = await request.form(max_files=4, max_fields=16)
        except MultiPartException as exc:
            raise APIError(400, "bad_multipart", f"the multipart body cannot be parsed: {exc.message}") from None
        try:
            values = form.getlist(FIELD)
            if len(values) > 1:
                raise APIError(
                    422, "too_many_files", f"the multipart field {FIELD!r} holds {len(values)} files; send one image"
                )
            value = values[0] if values else None
            if value is None:
                got = ", ".join(repr(k) for k in form.keys()) or "none"
                raise APIError(
                    422,
                    "missing_field",
                    f"the multipart field {FIELD!r} is missing (fields sent: {got}); send the image as field {FIELD!r}",
                )
            if not isinstance(value, UploadFile):
                raise APIError(
                    422, "invalid_field", f"the multipart field {FIELD!r} must be a file upload, not a text value"
                )
            data = await value.read()
        finally:
            await form.close()
        if not data:
            raise APIError(422, "empty_image", f"the multipart field {FIELD!r} is empty (0 bytes)")
        return data
    data = await request.body()
    if not data:
        raise APIError(
            422,
            "missing_field",
            f"no image: send it as the multipart field {FIELD!r} or as the raw body with Content-Type image/*",
        )
    media = content_type.split(";")[0].strip().lower()
    if not (media.startswith("image/") or media == "application/octet-stream"):
        raise APIError(
            415,
            "unsupported_media_type",
            f"a raw body needs Content-Type image/* or application/octet-stream (got {media or 'none'}); "
            f"or send the image as the multipart field {FIELD!r}",
        )
    return data
