"""The gateway's door: what every connection and request passes before a route sees it.

- ``Host`` must name this machine's loopback (``127.0.0.1``, ``localhost``, ``[::1]``): a web page
  whose name resolves to 127.0.0.1 (DNS rebinding) reaches nothing. So must a browser's ``Origin``:
  a web page elsewhere reaches no app (websockets included) and reads no answer.
- Request bodies are read by :func:`read_body` only: at most ``max_body`` bytes each, at most
  ``max_bodies`` bytes held by the gateway at once, counted as they arrive and given back when the
  request ends (at most half of them sent without the gateway's key), and a body that stays silent
  ``body_timeout`` seconds, or then arrives slower than ``min_body_rate``, is dropped.
- A connection that does not send its request line and headers within ``header_timeout`` seconds
  is closed (``serving.HttpProtocol``, the server loop's protocol): slowloris clients hold no
  connection.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from .. import wire
from .limits import Limits, variable
from .web import error, has_key

_RESERVED, _UNKEYED = "fal_notebook.body_bytes", "fal_notebook.unkeyed_body_bytes"
#: The share of ``max_bodies`` that bodies sent without the gateway's key (callers of public apps) may
#: hold at once: keyed calls always find the rest.
UNKEYED_SHARE = 0.5


class BodyRefused(Exception):
    """A request body the gateway will not take; ``response`` says why (413, 503, 408, 400)."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.response = error(status, detail, headers=headers)


class BodyBudget:
    """Bytes of request bodies the gateway holds now, against ``limit``: taken as they arrive, given
    back when their request ends. Bodies sent without the gateway's key hold at most
    :data:`UNKEYED_SHARE` of it."""

    def __init__(self, limit: int):
        self.limit, self.held, self.unkeyed = limit, 0, 0

    def take(self, scope: Scope, size: int, *, keyed: bool) -> None:
        full = self.held + size > self.limit
        if full or (not keyed and self.unkeyed + size > self.limit * UNKEYED_SHARE):
            share = "" if full else f"{UNKEYED_SHARE:.0%} of them without the gateway's key, "
            raise BodyRefused(
                503,
                f"The gateway holds {self.limit} bytes of request bodies already ({share}{variable('max_bodies')}); "
                "retry in a moment.",
                {wire.RETRY_AFTER: "1"},
            )
        self.held += size
        scope[_RESERVED] = scope.get(_RESERVED, 0) + size
        if not keyed:
            self.unkeyed += size
            scope[_UNKEYED] = scope.get(_UNKEYED, 0) + size

    def give_back(self, scope: Scope) -> None:
        self.held -= scope.pop(_RESERVED, 0)
        self.unkeyed -= scope.pop(_UNKEYED, 0)


@functools.lru_cache(maxsize=256)
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


def loopback_origin(origin: str) -> bool:
    """Whether an ``Origin`` header names a web page of this machine (``http(s)://`` a loopback host)."""
    scheme, _, host = origin.strip().partition("://")
    return scheme.lower() in ("http", "https") and "/" not in host and loopback_host(host)


def refusal(scope: Scope) -> tuple[int, str] | None:
    """Why the door refuses a request or a websocket (status, detail), None when it lets it in: its
    ``Host`` must name loopback (no DNS rebinding), and its ``Origin``, when a browser sends one, a
    page of this machine (a web page elsewhere neither calls an app nor reads its answers: browsers
    do not ask before they open a websocket, and an app's CORS answers would let them read)."""
    headers = {k.decode(): v.decode("latin-1") for k, v in scope["headers"] if k in (b"host", b"origin")}
    host, origin = headers.get("host"), headers.get("origin")
    if host is not None and not loopback_host(host):
        return 421, f"This gateway answers on loopback only, not for Host {host[:100]!r}."
    if origin is not None and not loopback_origin(origin):
        return 403, f"This gateway answers web pages of this machine only, not Origin {origin[:100]!r}."
    return None


class Door:
    """ASGI middleware: the Host and Origin checks (requests and websockets), and bodies' bytes given
    back when their request ends."""

    def __init__(self, app: ASGIApp, budget: BodyBudget):
        self.app, self.budget = app, budget

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        refused = refusal(scope)
        if refused is not None and scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": refused[1][:120]})  # 403, not accepted
            return
        if refused is not None:
            await error(*refused)(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.budget.give_back(scope)


async def read_body(request: Request) -> bytes:
    """The request's body within the gateway's limits, else BodyRefused (the error response to send).
    Its bytes count against the budget as they arrive (a declared length reserves nothing), and a
    body must keep coming: never silent ``body_timeout`` seconds, and once it has taken that long, at
    ``min_body_rate`` bytes a second on average (a slow sender holds no connection for long)."""
    limits: Limits = request.app.state.limits
    budget: BodyBudget = request.app.state.bodies
    keyed = has_key(request)
    declared = wire.parse_count(request.headers.get("content-length", ""))
    if declared is not None and declared > limits.max_body:
        raise _too_large(limits)
    loop = asyncio.get_running_loop()
    chunks, size, started, more = [], 0, loop.time(), True
    try:
        async with asyncio.timeout(limits.body_timeout) as silence:  # one timer, moved on by each chunk
            while more:
                message = await request.receive()
                if message["type"] == "http.disconnect":
                    raise BodyRefused(400, "The client went away before its body arrived.")
                chunk, more = message.get("body", b""), message.get("more_body", False)
                size += len(chunk)
                if size > limits.max_body:
                    raise _too_large(limits)
                took = loop.time() - started
                if took > limits.body_timeout and size < limits.min_body_rate * took:
                    raise BodyRefused(
                        408,
                        f"The request body arrives too slowly: {size} bytes in {took:.0f} s, under "
                        f"{limits.min_body_rate} bytes a second ({variable('min_body_rate')}).",
                    )
                budget.take(request.scope, len(chunk), keyed=keyed)
                chunks.append(chunk)
                if more:
                    silence.reschedule(loop.time() + limits.body_timeout)
    except TimeoutError:
        raise BodyRefused(408, f"The request body stopped arriving for {limits.body_timeout:g} s.") from None
    return b"".join(chunks)


def _too_large(limits: Limits) -> BodyRefused:
    return BodyRefused(413, f"Request body too large: the limit is {limits.max_body} bytes ({variable('max_body')}).")
