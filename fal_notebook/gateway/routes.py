"""The gateway's routes of fal's protocol for ``local/<name>`` (spec/fal-platform.md section 7; the
layout, headers and bodies come from ``wire.py``)::

POST /local/<name>[/<path>]                       sync call (streamed through; /stream is SSE)
GET  /local/<name>/openapi.json                   the app's schema
POST /queue/local/<name>[/<path>]                 submit
GET  /queue/local/<name>/requests/<id>/status     [?logs=1]  202 queued/running, 200 completed
GET  /queue/local/<name>/requests/<id>/status/stream           server-sent status events
GET  /queue/local/<name>/requests/<id>            the result, with the app's status code
PUT  /queue/local/<name>/requests/<id>/cancel
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .. import wire
from .apps import AppRuntime, Outcome, Unavailable, forwarded_headers
from .core import QueueFull, stored_headers
from .door import BodyRefused, read_body
from .runners import Runner
from .upstream import Response as UpstreamResponse
from .upstream import UpstreamError
from .web import error, gateway_of, has_key, unauthorized

#: Sync answers up to this size (with a Content-Length) are relayed in one piece; others stream.
BUFFERED_BODY = 1024 * 1024
_RESPONSE_SKIP = {"content-length", "connection", "transfer-encoding", "keep-alive", "date", "server"}


def lookup(request: Request) -> AppRuntime | Response:
    """The serving app named in the path, if the caller may use it; else the error response."""
    name = request.path_params["name"]
    runtime = gateway_of(request).serving(name)
    if runtime is None:
        return error(404, f"Application '{wire.local_app(name)}' not found: deploy it first (%fal_deploy {name}).")
    if runtime.auth != "public" and not has_key(request):
        return unauthorized()
    return runtime


async def lookup_with_body(request: Request) -> tuple[AppRuntime, bytes] | Response:
    """The serving app and the request's body, or the error response (404, 401, 413, 503, 408)."""
    runtime = lookup(request)
    if isinstance(runtime, Response):
        return runtime
    try:
        return runtime, await read_body(request)
    except BodyRefused as refused:
        return refused.response


def start_timeout(request: Request) -> float | None | Response:
    """``X-Fal-Request-Timeout``: seconds a request may wait before a runner starts it."""
    raw = request.headers.get(wire.REQUEST_TIMEOUT)
    if raw is None:
        return None
    value = wire.request_timeout(raw)
    if value is None:
        return error(
            400,
            f"{wire.REQUEST_TIMEOUT} must be seconds above {wire.MIN_REQUEST_TIMEOUT:g}, got {raw!r}.",
            wire.BAD_REQUEST,
        )
    return value


def app_path(request: Request) -> str:
    """The path for the app, percent-encoded again (the route decoded it): a ``%3F``, ``%23`` or
    ``%00`` the client sent reaches the app as such, never as a query, a fragment or a NUL."""
    return "/" + quote(request.path_params["path"].lstrip("/"), safe="/!$&'()*+,;=:@-._~")


def app_query(request: Request) -> str:
    """The query string for the app (``?a=1``, or empty): scalar endpoint parameters travel in it.
    ``fal_webhook`` is the queue's own parameter, never the app's."""
    params = [(k, v) for k, v in request.query_params.multi_items() if k != wire.WEBHOOK_PARAM]
    return "?" + urlencode(params) if params else ""


# -- sync -------------------------------------------------------------------------------------
async def run_sync(request: Request) -> Response:
    found = await lookup_with_body(request)
    if isinstance(found, Response):
        return found
    runtime, body = found
    timeout = start_timeout(request)
    if isinstance(timeout, Response):
        return timeout
    request_id = str(uuid.uuid4())
    try:
        runner = await runtime.acquire(request_id, deadline=time.time() + timeout if timeout else None)
    except Unavailable as exc:
        return error(503, str(exc), wire.RUNNER_SCHEDULING_FAILURE, {wire.REQUEST_ID: request_id})
    except TimeoutError as exc:
        return error(504, str(exc), wire.REQUEST_TIMEOUT_ERROR, {wire.REQUEST_TIMEOUT_TYPE: "user"})
    path = app_path(request) + app_query(request)
    headers = forwarded_headers(dict(request.headers), request_id)
    try:
        upstream = await runtime.send(runner, request.method, path, body, headers, stream=True)
    except BaseException:  # the slot goes back on every way out (relay gives it back after the answer)
        runtime.release(runner, request_id, served=False)
        raise
    if isinstance(upstream, Outcome):
        runtime.release(runner, request_id, served=False)
        headers = {wire.REQUEST_ID: request_id}
        if upstream.error_type:
            headers[wire.ERROR_TYPE] = upstream.error_type
        return Response(upstream.body, upstream.status, media_type=upstream.content_type, headers=headers)
    return await relay(runtime, runner, request_id, upstream)


async def relay(runtime: AppRuntime, runner: Runner, request_id: str, upstream: UpstreamResponse) -> Response:
    """The runner's answer to the caller: small ones in one piece, others (SSE...) as they come.
    The runner's slot is released when the answer is through, or the caller went away."""
    headers = {k: v for k, v in upstream.headers.items() if k.lower() not in _RESPONSE_SKIP}
    headers[wire.REQUEST_ID] = request_id
    timeout = runtime.current.settings.request_timeout if runtime.current else None
    loop = asyncio.get_running_loop()
    ends = loop.time() + timeout if timeout else None

    def timed_out() -> None:
        runtime.retire(runner, f"Request timed out after request_timeout={timeout:g} s mid-response.")

    declared = upstream.headers.get("content-length", "")
    if declared.isdigit() and int(declared) <= BUFFERED_BODY:
        try:
            async with asyncio.timeout_at(ends):
                content = b"".join([chunk async for chunk in upstream.aiter_raw()])
        except TimeoutError:
            timed_out()
            return error(504, "Request timed out.", wire.REQUEST_TIMEOUT_ERROR)
        except UpstreamError:
            return error(503, f"Runner {runner.id} disconnected during the response.", wire.RUNNER_DISCONNECTED)
        finally:
            await upstream.aclose()
            runtime.release(runner, request_id)
        return Response(content, upstream.status_code, headers=headers)

    async def chunks() -> AsyncIterator[bytes]:
        raw = upstream.aiter_raw()
        try:
            while True:
                try:
                    chunk = await asyncio.wait_for(anext(raw), ends - loop.time() if ends else None)
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    timed_out()
                    return
                except UpstreamError:
                    return
                yield chunk
        finally:
            await upstream.aclose()
            runtime.release(runner, request_id)

    return StreamingResponse(chunks(), upstream.status_code, headers=headers)


# -- queue ------------------------------------------------------------------------------------
def request_url(request: Request, name: str, request_id: str) -> str:
    """The request's URL as this caller reaches the gateway."""
    _, app_queue_url = wire.app_urls(str(request.base_url), wire.local_app(name))
    return wire.request_url(app_queue_url, request_id)


def invalid_json(body: bytes) -> list[dict[str, Any]] | None:
    """pydantic's detail for a body that is not JSON (what the app would answer), else None."""
    try:
        json.loads(body or b"null")
    except RecursionError:  # nested deeper than Python's parser goes
        problem, position = "nested too deeply", 0
    except ValueError as exc:
        problem, position = getattr(exc, "msg", str(exc)), getattr(exc, "pos", 0)
    else:
        return None
    return [
        {
            "type": "json_invalid",
            "loc": ["body", position],
            "msg": "JSON decode error",
            "input": {},
            "ctx": {"error": problem},
        }
    ]


async def submit(request: Request) -> Response:
    found = await lookup_with_body(request)
    if isinstance(found, Response):
        return found
    runtime, body = found
    if "json" in request.headers.get("content-type", "application/json"):
        detail = invalid_json(body)
        if detail is not None:
            return error(422, detail)
    timeout = start_timeout(request)
    if isinstance(timeout, Response):
        return timeout
    priority = 1 if wire.low_priority(request.headers.get(wire.QUEUE_PRIORITY, "")) else 0
    gateway = gateway_of(request)
    try:
        request_id = await gateway.submit(
            runtime,
            app_path(request) + app_query(request),
            body,
            stored_headers(request.headers),
            priority=priority,
            timeout=timeout,
        )
    except Unavailable as exc:
        return error(503, str(exc), wire.RUNNER_SCHEDULING_FAILURE)
    except QueueFull as exc:
        return error(429, str(exc))
    url = request_url(request, runtime.name, request_id)
    row = gateway.store.get(request_id)
    position = gateway.store.queue_position(row) if row["status"] == wire.IN_QUEUE else 0
    return JSONResponse(wire.encode_submit(request_id, url, position), headers={wire.REQUEST_ID: request_id})


def find_request(request: Request) -> tuple[AppRuntime | None, Any] | Response:
    name, request_id = request.path_params["name"], request.path_params["request_id"]
    gateway = gateway_of(request)
    row = gateway.store.get(request_id)
    if row is None or row["app"] != name:
        return error(404, f"Request {request_id} of {wire.local_app(name)} not found (results are kept for one hour).")
    runtime = gateway.apps.get(name)
    if (runtime is None or runtime.auth != "public") and not has_key(request):
        return unauthorized()
    return runtime, row


def wants_logs(request: Request) -> bool:
    return wire.wants_logs(request.query_params.get(wire.LOGS_PARAM, ""))


async def status(request: Request) -> Response:
    found = find_request(request)
    if isinstance(found, Response):
        return found
    _, row = found
    url = request_url(request, row["app"], row["id"])
    logs = wants_logs(request)
    state = gateway_of(request).status(row, with_logs=logs)
    body = wire.encode_status(state, response_url=url, with_logs=logs)
    return JSONResponse(body, wire.status_code(state), headers={wire.REQUEST_ID: row["id"]})


async def status_stream(request: Request) -> Response:
    found = find_request(request)
    if isinstance(found, Response):
        return found
    _, row = found
    gateway, request_id, logs = gateway_of(request), row["id"], wants_logs(request)
    url = request_url(request, row["app"], request_id)

    async def events() -> AsyncIterator[str]:
        last = None
        with gateway.watch(request_id) as changed:
            while True:
                changed.clear()
                current = gateway.store.get(request_id)
                if current is None:
                    return
                body = wire.encode_status(gateway.status(current, with_logs=logs), response_url=url, with_logs=logs)
                if body != last:
                    yield wire.encode_event(body)
                    last = body
                if current["status"] == wire.COMPLETED:
                    return
                try:  # woken by changes; the timeout refreshes the queue position
                    await asyncio.wait_for(changed.wait(), 0.5)
                except TimeoutError:
                    pass

    return StreamingResponse(events(), media_type=wire.EVENT_STREAM, headers={wire.REQUEST_ID: request_id})


async def result(request: Request) -> Response:
    found = find_request(request)
    if isinstance(found, Response):
        return found
    _, row = found
    headers = {wire.REQUEST_ID: row["id"]}
    answer = gateway_of(request).store.result(row["id"])
    if answer is None:
        return error(400, "Request is still in progress", headers=headers)
    if answer["error_type"]:
        headers[wire.ERROR_TYPE] = answer["error_type"]
    return Response(answer["result_body"], answer["result_status"], media_type=answer["result_type"], headers=headers)


async def cancel(request: Request) -> Response:
    row = gateway_of(request).store.get(request.path_params["request_id"])
    if row is None or row["app"] != request.path_params["name"]:
        answer = wire.NOT_FOUND
    else:
        found = find_request(request)
        if isinstance(found, Response):
            return found
        answer = await gateway_of(request).cancel(*found)
    return JSONResponse(wire.encode_cancel(answer), wire.CANCEL_ANSWERS[answer])


async def openapi(request: Request) -> Response:
    runtime = lookup(request)
    if isinstance(runtime, Response):
        return runtime
    if runtime.current is None:
        return error(503, f"{wire.local_app(runtime.name)} is still deploying; try again when it is ready.")
    if runtime.current.openapi is None:
        return error(404, f"{wire.local_app(runtime.name)} does not serve /{wire.OPENAPI_PATH}.")
    return Response(runtime.current.openapi, media_type="application/json")


_APP, _QUEUED_APP = wire.app_urls("", wire.local_app("{name}"))  # /local/{name}, /queue/local/{name}
_REQUEST = wire.request_url(_QUEUED_APP, "{request_id}")
ROUTES = [
    Route(wire.status_url(_REQUEST), status, methods=["GET"]),
    Route(wire.status_stream_url(_REQUEST), status_stream, methods=["GET"]),
    Route(_REQUEST, result, methods=["GET"]),
    Route(wire.cancel_url(_REQUEST), cancel, methods=["PUT"]),
    Route(_QUEUED_APP + "{path:path}", submit, methods=["POST"]),
    Route(wire.join_url(_APP, wire.OPENAPI_PATH), openapi, methods=["GET"]),
    Route(_APP + "{path:path}", run_sync, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
]
