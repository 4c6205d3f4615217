"""WebSocket endpoints of an app through the gateway: ``@fal.realtime`` (``/local/<name>/realtime``) and
a ``fal.App``'s websocket endpoints (``/local/<name>/<path>``), over the plain and the HTTPS listener.

A connection takes a runner slot for its lifetime, as a realtime session takes a runner on fal; frames
go both ways unchanged; either side's close ends both. The app sees the headers a call would give it
(``headers.app_headers``). A handshake the gateway refuses (unknown app, missing key, the app's own
refusal) is answered with an HTTP error in fal's shape.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from urllib.parse import urlencode

from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.typing import Subprotocol

from .. import wire
from ..wire import ErrorType
from .app import AppRuntime, Unavailable
from .headers import app_headers, caller_id, endpoint_of, kept_headers
from .web import error, gateway_of, has_key, may_call, unauthorized

#: Query parameters of fal's realtime URLs that are the platform's, not the app's.
_PLATFORM_PARAMS = ("fal_jwt_token",)
OPEN_TIMEOUT = 30.0


async def proxy(websocket: WebSocket) -> None:
    name = websocket.path_params["name"]
    runtime = gateway_of(websocket).serving(name)
    if runtime is None:
        await deny(websocket, error(404, f"Application '{wire.local_app(name)}' not found: deploy it first."))
        return
    if not may_call(websocket, runtime.auth):
        await deny(websocket, unauthorized())
        return
    request_id = str(uuid.uuid4())
    try:
        runner = await runtime.queue.acquire(request_id)
    except Unavailable as exc:
        await deny(websocket, error(503, str(exc), ErrorType.RUNNER_SCHEDULING_FAILURE))
        return
    try:
        await session(websocket, runtime, runner.url, request_id)
    finally:
        runtime.queue.release(runner, request_id)


async def session(websocket: WebSocket, runtime: AppRuntime, runner_url: str, request_id: str) -> None:
    path = "/" + websocket.path_params["path"].lstrip("/")
    params = [(k, v) for k, v in websocket.query_params.multi_items() if k not in _PLATFORM_PARAMS]
    target = runner_url.replace("http://", "ws://", 1) + path + ("?" + urlencode(params) if params else "")
    kept = kept_headers(websocket.headers, caller=caller_id(gateway_of(websocket).key) if has_key(websocket) else None)
    headers = {
        k: v
        for k, v in app_headers(
            kept, request_id=request_id, endpoint=endpoint_of(wire.local_app(runtime.name), path)
        ).items()
        if not k.startswith("sec-websocket-")
    }
    subprotocols = [p.strip() for p in websocket.headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
    try:
        upstream = await connect(
            target,
            additional_headers=headers,
            subprotocols=[Subprotocol(p) for p in subprotocols] or None,
            max_size=None,
            open_timeout=OPEN_TIMEOUT,
            ping_interval=None,
        )
    except InvalidStatus as exc:
        answer = exc.response
        detail = f"The app refused the websocket handshake of {path} ({answer.status_code} {answer.reason_phrase})."
        await deny(websocket, error(answer.status_code, detail))
        return
    except (OSError, TimeoutError, WebSocketException) as exc:
        detail = f"The app's websocket endpoint {path} did not answer ({type(exc).__name__})."
        await deny(websocket, error(503, detail, ErrorType.RUNNER_DISCONNECTED))
        return
    async with upstream:
        await websocket.accept(subprotocol=upstream.subprotocol)
        runtime.log.event(f"WebSocket {path} opened (request {request_id}).")
        await relay(websocket, upstream)
        runtime.log.event(f"WebSocket {path} closed (request {request_id}).")


async def relay(websocket: WebSocket, upstream: ClientConnection) -> None:
    """Frames both ways until either side closes; the other side is closed with the same code."""

    async def from_caller() -> None:
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    await upstream.close(message.get("code") or 1000)
                    return
                await upstream.send(message["bytes"] if message.get("bytes") is not None else message["text"])
        except (WebSocketDisconnect, ConnectionClosed):
            await upstream.close()

    async def from_app() -> None:
        try:
            async for message in upstream:
                if isinstance(message, bytes):
                    await websocket.send_bytes(message)
                else:
                    await websocket.send_text(message)
        except ConnectionClosed:
            pass
        with contextlib.suppress(RuntimeError, WebSocketDisconnect, OSError):  # the caller may be gone already
            await websocket.close(upstream.close_code or 1000, upstream.close_reason or None)

    tasks = [asyncio.ensure_future(from_caller()), asyncio.ensure_future(from_app())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await upstream.close()


async def deny(websocket: WebSocket, response: Response) -> None:
    """Refuse a handshake with an HTTP answer (a plain close where the server cannot send one)."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(response)
    else:
        await websocket.close(1008)
