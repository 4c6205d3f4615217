"""What every HTTP handler of the gateway shares: its state, the key check, errors in fal's shape."""

from __future__ import annotations

import hmac
import os
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from .. import wire
from .core import Gateway

MAX_BODY_VARIABLE = "FAL_NOTEBOOK_GATEWAY_MAX_BODY"
DEFAULT_MAX_BODY = 100 * 1024 * 1024


class BodyTooLarge(Exception):
    pass


def max_body() -> int:
    raw = os.environ.get(MAX_BODY_VARIABLE, "")
    return int(raw) if raw.isdigit() else DEFAULT_MAX_BODY


def gateway_of(request: Request) -> Gateway:
    return request.app.state.gateway


def has_key(request: Request) -> bool:
    sent = wire.key_of(request.headers.get(wire.AUTHORIZATION, ""))
    key: str = request.app.state.key
    return sent is not None and hmac.compare_digest(sent.encode(), key.encode())


def error(
    status: int, detail: Any, error_type: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    """An error in fal's shape: ``{"detail": ...}`` (+ ``error_type`` and ``X-Fal-Error-Type``)."""
    headers = {**(headers or {}), **({wire.ERROR_TYPE: error_type} if error_type else {})}
    return JSONResponse(wire.encode_error(detail, error_type), status, headers=headers)


def unauthorized(what: str = "this app is private") -> JSONResponse:
    return error(
        401,
        f"Unauthorized: {what}. Send `{wire.AUTHORIZATION}: {wire.key_header('<id>:<secret>')}` with the key in "
        f"<FAL_NOTEBOOK_HOME>/{wire.GATEWAY_KEY_FILE} (fal_notebook.gateway.gateway_key()).",
    )


async def read_body(request: Request) -> bytes:
    """The request body, refused (BodyTooLarge) beyond the gateway's limit without reading it all."""
    limit: int = request.app.state.max_body
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def too_large(request: Request) -> JSONResponse:
    limit = request.app.state.max_body
    return error(413, f"Request body too large: the limit is {limit} bytes ({MAX_BODY_VARIABLE}).")
