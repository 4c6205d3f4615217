"""The gateway's routes of fal's protocol for ``local/<name>`` (docs/fal-conformance.md; the
layout, headers and bodies come from ``wire.py``)::

POST /local/<name>[/<path>]                       sync call (streamed through; /stream is SSE)
GET  /local/<name>/openapi.json                   the app's schema
POST /queue/local/<name>[/<path>]                 submit
GET  /queue/local/<name>/requests/<id>/status     [?logs=1]  202 queued/running, 200 completed
GET  /queue/local/<name>/requests/<id>/status/stream           server-sent status events
GET  /queue/local/<name>/requests/<id>[/response] the result, with the app's status code
PUT  /queue/local/<name>/requests/<id>/cancel
GET  /.well-known/jwks.json                        the public keys of the webhooks' signatures (webhooks.py)
WS   /local/<name>/realtime, /local/<name>/<path>    the app's websocket endpoints (sockets.py)
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute

from .. import wire
from ..wire import CancelAnswer, ErrorType, RequestStatus
from .app import AppRuntime, Outcome, Unavailable
from .core import Gateway, QueueFull
from .door import BodyRefused, read_body
from .headers import app_headers, caller_headers, caller_id, endpoint_of, kept_headers, runner_hint
from .runners import Runner
from .sockets import proxy
from .store import Request as Stored
from .uploads import inline_files
from .upstream import Response as UpstreamResponse, UpstreamError
from .web import error, gateway_of, has_key, may_call, unauthorized
from .webhooks import check_url, jwks

#: Sync answers up to this size (with a Content-Length) are relayed in one piece; others stream.
BUFFERED_BODY = 1024 * 1024


def lookup(request: Request) -> AppRuntime | Response:
    """The serving app named in the path, if the caller may use it; else the error response."""
    name = request.path_params["name"]
    runtime = gateway_of(request).serving(name)
    if runtime is None:
        return error(404, f"Application '{wire.local_app(name)}' not found: deploy it first (%fal_deploy {name}).")
    if not may_call(request, runtime.auth):
        return unauthorized()
    return runtime


async def lookup_with_body(request: Request) -> tuple[AppRuntime, bytes] | Response:
    """The serving app and the request's body, or the error response (404, 401, 413, 503, 408)."""
    runtime = lookup(request)
    if isinstance(runtime, Response):
        return runtime
    try:
        return runtime, await inline_files(request, await read_body(request))
    except BodyRefused as refused:
        return refused.response


def start_timeout(request: Request, runtime: AppRuntime) -> float | None | Response:
    """``X-Fal-Request-Timeout``: seconds a request may wait before a runner starts it; without it,
    the app's ``request_start_timeout``."""
    raw = request.headers.get(wire.REQUEST_TIMEOUT)
    if raw is None:
        config = runtime.current.config if runtime.current else None
        return config.request_start_timeout if config is not None else None
    value = wire.request_timeout(raw)
    if value is None:
        return error(
            400,
            f"{wire.REQUEST_TIMEOUT} must be seconds above {wire.MIN_REQUEST_TIMEOUT:g}, got {raw!r}.",
            ErrorType.BAD_REQUEST,
        )
    return value


def caller_of(request: Request) -> str | None:
    """The caller's id (``x-fal-caller-user-id``): the id half of the gateway's key, when it sent it."""
    return caller_id(gateway_of(request).key) if has_key(request) else None


def unforwardable(headers: dict[str, str]) -> Response | None:
    """A 400 naming the first header the gateway would take on (``kept_headers``) whose value is not
    ASCII, else None: header values reach the app as ASCII (httpx refuses others), so such a request
    is refused where it enters, before it takes a runner slot or a place in the queue."""
    for name, value in headers.items():
        if not value.isascii():
            return error(
                400,
                f"Header {name} has a value that is not ASCII, and cannot be forwarded to the app. Send it "
                "as ASCII (percent-encode or base64-encode other text).",
                ErrorType.BAD_REQUEST,
            )
    return None


def app_path(request: Request) -> str:
    """The path for the app, percent-encoded again (the route decoded it): a ``%3F``, ``%23`` or
    ``%00`` the client sent reaches the app as such, never as a query, a fragment or a NUL."""
    return "/" + quote(request.path_params["path"].lstrip("/"), safe="/!$&'()*+,;=:@-._~")


def app_query(request: Request) -> str:
    """The query string for the app (``?a=1``, or empty): scalar endpoint parameters travel in it.
    ``fal_webhook`` and ``fal_max_queue_length`` are the queue's own parameters, never the app's."""
    params = [(k, v) for k, v in request.query_params.multi_items() if k not in wire.QUEUE_PARAMS]
    return "?" + urlencode(params) if params else ""


async def disconnected(request: Request) -> None:
    """Returns when the caller goes away (its body already read: nothing else can arrive)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


class CallerWatch:
    """Whether the caller of a sync call goes away (its body already read: nothing else can arrive),
    with one task for the whole call. Inside ``async with watch.armed():`` its going cancels the
    block, which then raises CallerGone, as ``asyncio.timeout`` raises TimeoutError; what the block
    awaited gives back what it took (``acquire`` its slot, ``send`` its connection)."""

    def __init__(self, request: Request):
        self.gone = False
        self._task = asyncio.current_task()
        self._armed = False
        self._watcher = asyncio.ensure_future(disconnected(request))
        self._watcher.add_done_callback(self._left)

    def _left(self, watcher: asyncio.Future[None]) -> None:
        if not watcher.cancelled() and watcher.exception() is None:
            self.gone = True
            if self._armed and self._task is not None:
                self._task.cancel()

    def armed(self) -> CallerWatch:
        return self

    async def __aenter__(self) -> None:
        if self.gone:
            raise CallerGone
        self._armed = True

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        self._armed = False
        if self.gone and kind is asyncio.CancelledError and self._task is not None and self._task.uncancel() == 0:
            raise CallerGone

    def close(self) -> None:
        self._watcher.cancel()


class CallerGone(Exception):
    """The caller of a sync call disconnected: its request is cancelled, as fal cancels it."""


# -- sync -------------------------------------------------------------------------------------
async def run_sync(request: Request) -> Response:
    found = await lookup_with_body(request)
    if isinstance(found, Response):
        return found
    runtime, body = found
    timeout = start_timeout(request, runtime)
    if isinstance(timeout, Response):
        return timeout
    request_id = str(uuid.uuid4())
    deadline = time.time() + timeout if timeout else None
    kept = kept_headers(request.headers, caller=caller_of(request))
    refused = unforwardable(kept)
    if refused is not None:
        return refused
    watch = CallerWatch(request)
    try:
        return await call(request, runtime, body, request_id, deadline, kept, watch)
    finally:
        watch.close()


async def call(
    request: Request,
    runtime: AppRuntime,
    body: bytes,
    request_id: str,
    deadline: float | None,
    kept: dict[str, str],
    watch: CallerWatch,
) -> Response:
    """A sync call once its request is read: a runner's slot, the request sent to it, its answer relayed."""
    try:
        async with watch.armed():
            runner = await runtime.queue.acquire(request_id, deadline=deadline, hint=runner_hint(request.headers))
    except Unavailable as exc:
        return error(503, str(exc), ErrorType.RUNNER_SCHEDULING_FAILURE, {wire.REQUEST_ID: request_id})
    except TimeoutError as exc:
        return error(504, str(exc), ErrorType.REQUEST_TIMEOUT, {wire.REQUEST_TIMEOUT_TYPE: wire.USER_TIMEOUT})
    except CallerGone:
        return error(499, "The caller disconnected.", ErrorType.CLIENT_DISCONNECTED)
    path = app_path(request) + app_query(request)
    headers = app_headers(kept, request_id=request_id, endpoint=endpoint_of(wire.local_app(runtime.name), path))
    try:
        async with watch.armed():
            upstream = await runtime.attempts.send(runner, request.method, path, body, headers, stream=True)
    except CallerGone:
        caller_gone(request, runtime, runner, path, request_id)
        return error(499, "The caller disconnected.", ErrorType.CLIENT_DISCONNECTED)
    except BaseException:  # the slot goes back on every way out (relay gives it back after the answer)
        runtime.queue.release(runner, request_id, served=False)
        raise
    if isinstance(upstream, Outcome):
        runtime.queue.release(runner, request_id, served=False)
        headers = {wire.REQUEST_ID: request_id}
        if upstream.error_type:
            headers[wire.ERROR_TYPE] = upstream.error_type
        return Response(upstream.body, upstream.status, media_type=upstream.content_type, headers=headers)
    return await relay(request, runtime, runner, request_id, upstream, path)


def caller_gone(request: Request, runtime: AppRuntime, runner: Runner, path: str, request_id: str) -> None:
    """A sync caller went away mid-call: cancel its request on the app (``<path>/cancel``), as fal does."""
    runtime.queue.release(runner, request_id, served=False)
    runtime.log.event(f"The caller of sync request {request_id} disconnected: cancelling it on runner {runner.id}.")
    gateway_of(request).forward_cancel(runtime, runner.url, path, request_id)


async def relay(
    request: Request, runtime: AppRuntime, runner: Runner, request_id: str, upstream: UpstreamResponse, path: str
) -> Response:
    """The runner's answer to the caller: small ones in one piece, others (SSE...) as they come.
    The runner's slot is released when the answer is through; a caller that goes away meanwhile
    cancels the request."""
    headers = caller_headers(upstream.headers)
    headers[wire.REQUEST_ID] = request_id
    timeout = runtime.current.settings.request_timeout if runtime.current else None
    loop = asyncio.get_running_loop()
    ends = loop.time() + timeout if timeout else None

    def timed_out() -> None:
        runtime.pool.retire(runner, f"Request timed out after request_timeout={timeout:g} s mid-response.")

    declared = upstream.headers.get("content-length", "")
    if declared.isdigit() and int(declared) <= BUFFERED_BODY:
        try:
            async with asyncio.timeout_at(ends):
                content = b"".join([chunk async for chunk in upstream.aiter_raw()])
        except TimeoutError:
            timed_out()
            return error(504, "Request timed out.", ErrorType.REQUEST_TIMEOUT)
        except UpstreamError:
            return error(503, f"Runner {runner.id} disconnected during the response.", ErrorType.RUNNER_DISCONNECTED)
        finally:
            await upstream.aclose()
            runtime.queue.release(runner, request_id)
        sent_type = next((v for k, v in headers.items() if k.lower() == wire.ERROR_TYPE.lower()), None)
        content, error_type = wire.runner_error(upstream.status_code, content, sent_type)
        if error_type and not sent_type:
            headers[wire.ERROR_TYPE] = error_type
        return Response(content, upstream.status_code, headers=headers)

    async def chunks() -> AsyncIterator[bytes]:
        raw = upstream.aiter_raw()
        gone = asyncio.ensure_future(disconnected(request))
        ended = False
        try:
            while True:
                following = asyncio.ensure_future(anext(raw))
                await asyncio.wait(
                    {following, gone}, timeout=ends - loop.time() if ends else None, return_when="FIRST_COMPLETED"
                )
                if not following.done():  # the caller went away, or request_timeout ran out
                    following.cancel()
                    await asyncio.gather(following, return_exceptions=True)
                    if not gone.done():
                        ended = True
                        timed_out()
                    return
                try:
                    chunk = following.result()
                except (StopAsyncIteration, UpstreamError):
                    ended = True
                    return
                yield chunk
        finally:
            gone.cancel()
            await upstream.aclose()
            if ended:
                runtime.queue.release(runner, request_id)
            else:  # the caller went away before the end
                caller_gone(request, runtime, runner, path, request_id)

    if upstream.status_code == 500 and not any(k.lower() == wire.ERROR_TYPE.lower() for k in headers):
        headers[wire.ERROR_TYPE] = ErrorType.RUNNER_SERVER_ERROR
    return StreamingResponse(chunks(), upstream.status_code, headers=headers)


# -- queue ------------------------------------------------------------------------------------
def queue_full(request: Request, queued: int) -> Response | None:
    """429 when ``fal_max_queue_length`` is given and the app's queue already holds that many; 400
    when it is not a number."""
    raw = request.query_params.get(wire.MAX_QUEUE_LENGTH_PARAM)
    if raw is None:
        return None
    limit = wire.parse_count(raw)
    if limit is None:
        return error(
            400,
            f"{wire.MAX_QUEUE_LENGTH_PARAM} must be a whole number of requests, got {raw[:40]!r}.",
            ErrorType.BAD_REQUEST,
        )
    if queued >= limit:
        return error(
            429,
            f"The queue of this app holds {queued} requests, not fewer than {wire.MAX_QUEUE_LENGTH_PARAM}={limit}; "
            "try again later.",
        )
    return None


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
    timeout = start_timeout(request, runtime)
    if isinstance(timeout, Response):
        return timeout
    headers = kept_headers(request.headers, caller=caller_of(request))
    refused = unforwardable(headers)
    if refused is not None:
        return refused
    gateway = gateway_of(request)
    full = queue_full(request, gateway.store.queue_length(runtime.name))
    if full is not None:
        return full
    webhook = request.query_params.get(wire.WEBHOOK_PARAM)
    bad_webhook = check_url(webhook) if webhook is not None else None
    if bad_webhook is not None:
        return error(400, bad_webhook, ErrorType.BAD_REQUEST)
    priority = 1 if wire.low_priority(request.headers.get(wire.QUEUE_PRIORITY, "")) else 0
    try:
        request_id = await gateway.submit(
            runtime,
            app_path(request) + app_query(request),
            body,
            headers,
            priority=priority,
            timeout=timeout,
            webhook=webhook,
        )
    except Unavailable as exc:
        return error(503, str(exc), ErrorType.RUNNER_SCHEDULING_FAILURE)
    except QueueFull as exc:
        return error(429, str(exc))
    url = request_url(request, runtime.name, request_id)
    position = gateway.store.position(request_id)
    return JSONResponse(wire.encode_submit(request_id, url, position), headers={wire.REQUEST_ID: request_id})


def find_request(request: Request) -> tuple[AppRuntime | None, Stored] | Response:
    """The request named in the path, with its app's runtime (None once the app is gone), if the caller
    may see it; else the error response."""
    name, request_id = request.path_params["name"], request.path_params["request_id"]
    gateway = gateway_of(request)
    stored = gateway.store.get(request_id)
    if stored is None or stored.app != name:
        return error(404, f"Request {request_id} of {wire.local_app(name)} not found (results are kept for one hour).")
    runtime = gateway.apps.get(name)
    if not may_call(request, runtime.auth if runtime is not None else None):
        return unauthorized()
    return runtime, stored


def wants_logs(request: Request) -> bool:
    return wire.wants_logs(request.query_params.get(wire.LOGS_PARAM, ""))


async def status(request: Request) -> Response:
    found = find_request(request)
    if isinstance(found, Response):
        return found
    _, stored = found
    url = request_url(request, stored.app, stored.id)
    logs = wants_logs(request)
    state = gateway_of(request).status(stored, with_logs=logs)
    body = wire.encode_status(state, request_id=stored.id, response_url=url, with_logs=logs)
    return JSONResponse(body, wire.status_code(state), headers={wire.REQUEST_ID: stored.id})


async def status_stream(request: Request) -> Response:
    found = find_request(request)
    if isinstance(found, Response):
        return found
    _, stored = found
    url = request_url(request, stored.app, stored.id)
    events = StatusEvents(gateway_of(request), stored.id, url, wants_logs(request))
    first = events.frame()
    headers = {wire.REQUEST_ID: stored.id}
    if events.ended:  # completed when asked (or gone): the whole stream in one answer
        return Response(first, media_type=wire.EVENT_STREAM, headers=headers)
    return StreamingResponse(events.follow(first), media_type=wire.EVENT_STREAM, headers=headers)


class StatusEvents:
    """The events of one request's status stream: one per change, with the log entries added since
    the one before (fal's clients add them up); a comment when nothing happened for KEEPALIVE_SECONDS."""

    def __init__(self, gateway: Gateway, request_id: str, url: str, logs: bool):
        self.gateway, self.request_id, self.url, self.logs = gateway, request_id, url, logs
        self.ended = False  # the request completed (or is gone): the stream ends
        self._shown: dict[str, Any] | None = None  # the last event, its logs left out
        self._after = 0  # the last log entry sent

    def frame(self) -> str:
        """The event of the request's state now, or "" when it tells nothing new."""
        current = self.gateway.store.get(self.request_id)
        if current is None:
            self.ended = True
            return ""
        self.ended = current.status == RequestStatus.COMPLETED
        state = self.gateway.status(current, with_logs=False)
        entries: list[dict[str, Any]] = []
        if self.logs and not isinstance(state, wire.Queued):
            entries, self._after = self.gateway.store.logs_after(self.request_id, self._after)
            state = dataclasses.replace(state, logs=entries)
        body = wire.encode_status(state, request_id=self.request_id, response_url=self.url, with_logs=self.logs)
        shown = {**body, "logs": None}
        if not entries and shown == self._shown:
            return ""
        self._shown = shown
        return wire.encode_event(body)

    async def follow(self, first: str) -> AsyncIterator[str]:
        """``first``, then the events as the request changes, until it completes."""
        loop = asyncio.get_running_loop()
        with self.gateway.watch(self.request_id) as changed:
            if first:
                yield first
            sent = loop.time()
            while True:
                changed.clear()
                frame = self.frame()  # (a change before the watch began shows here)
                if frame:
                    yield frame
                    sent = loop.time()
                elif loop.time() - sent >= wire.KEEPALIVE_SECONDS:
                    yield wire.KEEPALIVE
                    sent = loop.time()
                if self.ended:
                    return
                try:  # woken by changes; the timeout refreshes the queue position and keeps the stream alive
                    async with asyncio.timeout(min(0.5, wire.KEEPALIVE_SECONDS)):
                        await changed.wait()
                except TimeoutError:
                    pass


async def result(request: Request) -> Response:
    found = find_request(request)
    if isinstance(found, Response):
        return found
    _, stored = found
    headers = {wire.REQUEST_ID: stored.id}
    answer = gateway_of(request).store.result(stored.id)
    if answer is None:
        return error(400, "Request is still in progress", headers=headers)
    if answer.error_type:
        headers[wire.ERROR_TYPE] = answer.error_type
    if stored.error == wire.START_DEADLINE_PASSED:
        headers[wire.REQUEST_TIMEOUT_TYPE] = wire.USER_TIMEOUT
    return Response(answer.body, answer.status, media_type=answer.content_type, headers=headers)


async def cancel(request: Request) -> Response:
    stored = gateway_of(request).store.get(request.path_params["request_id"])
    if stored is None or stored.app != request.path_params["name"]:
        answer = CancelAnswer.NOT_FOUND
    else:
        found = find_request(request)
        if isinstance(found, Response):
            return found
        answer = await gateway_of(request).cancel(*found)
    return JSONResponse(wire.encode_cancel(answer), answer.http_status)


async def webhook_keys(request: Request) -> Response:
    """The public keys that sign the gateway's webhooks (a JWKS, as fal publishes its own)."""
    return JSONResponse(jwks(gateway_of(request).webhooks.key))


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
ROUTES = [  # the calls first: a request walks the list until a route matches
    Route(wire.join_url(_APP, wire.OPENAPI_PATH), openapi, methods=["GET"]),
    Route(_APP + "{path:path}", run_sync, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
    WebSocketRoute(_APP + "{path:path}", proxy),
    Route(wire.status_stream_url(_REQUEST), status_stream, methods=["GET"]),
    Route(wire.response_url(_REQUEST), result, methods=["GET"]),
    Route(wire.status_url(_REQUEST), status, methods=["GET"]),
    Route(_REQUEST, result, methods=["GET"]),
    Route(wire.cancel_url(_REQUEST), cancel, methods=["PUT"]),
    Route(_QUEUED_APP + "{path:path}", submit, methods=["POST"]),
    Route(wire.JWKS_PATH, webhook_keys, methods=["GET"]),
]
