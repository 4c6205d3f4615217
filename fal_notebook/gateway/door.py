"""The gateway's door: what every connection and request passes before a route sees it.

- ``Host`` must name this machine's loopback (``127.0.0.1``, ``localhost``, ``[::1]``): a web page
  whose name resolves to 127.0.0.1 (DNS rebinding) reaches nothing.
- Request bodies are read by :func:`read_body` only: at most ``max_body`` bytes each, at most
  ``max_bodies`` bytes held by the gateway at once (given back when the request ends), and a body
  that stays silent ``body_timeout`` seconds is dropped.
- A connection that does not send its request line and headers within ``header_timeout`` seconds
  is closed (``serving.HttpProtocol``, the server loop's protocol): slowloris clients hold no
  connection.
"""

from __future__ import annotations

import asyncio
import ipaddress

from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from .. import wire
from .limits import Limits, variable
from .web import error

_RESERVED = "fal_notebook.body_bytes"


class BodyRefused(Exception):
    """A request body the gateway will not take; ``response`` says why (413, 503, 408, 400)."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.response = error(status, detail, headers=headers)


class BodyBudget:
    """Bytes of request bodies the gateway holds now, against ``limit``."""

    def __init__(self, limit: int):
        self.limit, self.held = limit, 0

    def take(self, scope: Scope, size: int) -> None:
        if self.held + size > self.limit:
            raise BodyRefused(
                503,
                f"The gateway holds {self.limit} bytes of request bodies already ({variable('max_bodies')}); "
                "retry in a moment.",
                {wire.RETRY_AFTER: "1"},
            )
        self.held += size
        scope[_RESERVED] = scope.get(_RESERVED, 0) + size

    def give_back(self, scope: Scope) -> None:
        self.held -= scope.pop(_RESERVED, 0)


def loopback_host(host: str) -> bool:
    """Whether a ``Host`` header names this machine's loopback (any port)."""
    name = host.strip().lower()
    if name.startswith("["):
        name = name[1 : name.find("]")] if "]" in name else ""
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class Door:
    """ASGI middleware: the Host check, and bodies' bytes given back when their request ends."""

    def __init__(self, app: ASGIApp, budget: BodyBudget):
        self.app, self.budget = app, budget

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), None)
        if host is not None and not loopback_host(host):
            response = error(421, f"This gateway answers on loopback only, not for Host {host[:100]!r}.")
            await response(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.budget.give_back(scope)


async def read_body(request: Request) -> bytes:
    """The request's body within the gateway's limits, else BodyRefused (the error response to send)."""
    limits: Limits = request.app.state.limits
    budget: BodyBudget = request.app.state.bodies
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit():
        if int(declared) > limits.max_body:
            raise _too_large(limits)
        budget.take(request.scope, int(declared))
    chunks, size = [], 0
    stream = request.stream()
    while True:
        try:
            async with asyncio.timeout(limits.body_timeout):  # (no task per chunk, as wait_for makes)
                chunk = await anext(stream)
        except StopAsyncIteration:
            break
        except TimeoutError:
            raise BodyRefused(408, f"The request body stopped arriving for {limits.body_timeout:g} s.") from None
        except ClientDisconnect:
            raise BodyRefused(400, "The client went away before its body arrived.") from None
        size += len(chunk)
        if size > limits.max_body:
            raise _too_large(limits)
        if not declared:
            budget.take(request.scope, len(chunk))
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limits: Limits) -> BodyRefused:
    return BodyRefused(413, f"Request body too large: the limit is {limits.max_body} bytes ({variable('max_body')}).")
