"""What every HTTP handler of the gateway shares: its state, the key check, errors in fal's shape."""

from __future__ import annotations

import hmac
from typing import Any

from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse

from .. import wire
from ..config import is_public
from .core import Gateway


def gateway_of(request: HTTPConnection) -> Gateway:
    return request.app.state.gateway


def has_key(request: HTTPConnection) -> bool:
    sent = wire.key_of(request.headers.get(wire.AUTHORIZATION, ""))
    key: str = request.app.state.key
    return sent is not None and hmac.compare_digest(sent.encode(), key.encode())


def may_call(request: HTTPConnection, auth: str | None) -> bool:
    """Whether the caller may use an app of auth mode ``auth``: a public one, or with the gateway's key."""
    return is_public(auth) or has_key(request)


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
