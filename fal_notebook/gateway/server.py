"""The gateway's HTTP surface: fal's protocol for ``local/<name>`` and the key-protected admin API.

fal protocol (spec/fal-platform.md section 7)::

    POST /local/<name>[/<path>]                       sync call (streamed through; /stream is SSE)
    GET  /local/<name>/openapi.json                   the app's schema
    POST /queue/local/<name>[/<path>]                 submit
    GET  /queue/local/<name>/requests/<id>/status     [?logs=1]  202 queued/running, 200 completed
    GET  /queue/local/<name>/requests/<id>/status/stream           server-sent status events
    GET  /queue/local/<name>/requests/<id>            the result, with the app's status code
    PUT  /queue/local/<name>/requests/<id>/cancel

Admin (``Authorization: Key <id>:<secret>``)::

    GET    /_fal_notebook/identity                    (no key) which state directory this gateway serves
    GET    /_fal_notebook/apps                        every app's state
    PUT    /_fal_notebook/apps/<name>                 deploy/redeploy {"path", "env", "python", "secrets"}
    GET    /_fal_notebook/apps/<name>[?since=<seq>]   state, runners, deploy events after <seq>
    DELETE /_fal_notebook/apps/<name>                 stop the app's runners
    POST   /_fal_notebook/shutdown                    stop the gateway
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import time
import uuid
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Callable

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .._version import __version__
from ..errors import FalNotebookError
from .apps import AppRuntime, Outcome, Unavailable, forwarded_headers
from .core import Gateway, stored_headers
from .prepare import ENV_KINDS, DeploySpec
from .store import COMPLETED

SERVICE = "fal-notebook-gateway"
ADMIN = "/_fal_notebook"
MAX_BODY_VARIABLE = "FAL_NOTEBOOK_GATEWAY_MAX_BODY"
DEFAULT_MAX_BODY = 100 * 1024 * 1024
#: Sync answers up to this size (with a Content-Length) are relayed in one piece; others stream.
BUFFERED_BODY = 1024 * 1024
_RESPONSE_SKIP = {"content-length", "connection", "transfer-encoding", "keep-alive", "date", "server"}


class BodyTooLarge(Exception):
    pass


def error(
    status: int, detail: Any, error_type: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    """An error in fal's shape: ``{"detail": ...}`` (+ ``error_type`` and ``X-Fal-Error-Type``)."""
    body: dict[str, Any] = {"detail": detail}
    headers = dict(headers or {})
    if error_type:
        body["error_type"] = error_type
        headers["X-Fal-Error-Type"] = error_type
    return JSONResponse(body, status, headers=headers)


def outcome_response(outcome: Outcome, request_id: str) -> Response:
    headers = {"x-fal-request-id": request_id}
    if outcome.error_type:
        headers["X-Fal-Error-Type"] = outcome.error_type
    return Response(outcome.body, outcome.status, media_type=outcome.content_type, headers=headers)


def max_body() -> int:
    raw = os.environ.get(MAX_BODY_VARIABLE, "")
    return int(raw) if raw.isdigit() else DEFAULT_MAX_BODY


def build_app(
    *, key: str, state_id: str, home: str, port: int, on_stop: Callable[[], None] = lambda: None
) -> Starlette:
    limit = max_body()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.gateway = Gateway(key=key, state_id=state_id)
        await app.state.gateway.start()
        try:
            yield
        finally:
            await app.state.gateway.close()
            on_stop()

    def gateway(request: Request) -> Gateway:
        return request.app.state.gateway

    def has_key(request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "key" and hmac.compare_digest(token.strip().encode(), key.encode())

    def unauthorized() -> JSONResponse:
        return error(
            401,
            "Unauthorized: this app is private. Send `Authorization: Key <id>:<secret>` with the key in "
            "<FAL_NOTEBOOK_HOME>/gateway/key (fal_notebook.gateway.gateway_key()).",
        )

    def lookup(request: Request) -> AppRuntime | JSONResponse:
        name = request.path_params["name"]
        runtime = gateway(request).serving(name)
        if runtime is None:
            return error(404, f"Application 'local/{name}' not found: deploy it first (%fal_deploy {name}).")
        if runtime.auth != "public" and not has_key(request):
            return unauthorized()
        return runtime

    async def read_body(request: Request) -> bytes:
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

    def too_large() -> JSONResponse:
        return error(413, f"Request body too large: the limit is {limit} bytes ({MAX_BODY_VARIABLE}).")

    def start_timeout(request: Request) -> float | None | JSONResponse:
        raw = request.headers.get("x-fal-request-timeout")
        if raw is None:
            return None
        try:
            value = float(raw)
        except ValueError:
            value = 0.0
        if value <= 0.1:
            return error(
                400,
                f"X-Fal-Request-Timeout must be a number of seconds above 0.1, got {raw!r}.",
                "bad_request",
            )
        return value

    # -- sync ------------------------------------------------------------------------------
    async def run_sync(request: Request) -> Response:
        runtime = lookup(request)
        if isinstance(runtime, Response):
            return runtime
        try:
            body = await read_body(request)
        except BodyTooLarge:
            return too_large()
        timeout = start_timeout(request)
        if isinstance(timeout, Response):
            return timeout
        request_id = str(uuid.uuid4())
        try:
            runner = await runtime.acquire(request_id, deadline=time.time() + timeout if timeout else None)
        except Unavailable as exc:
            return error(503, str(exc), "runner_scheduling_failure", {"x-fal-request-id": request_id})
        except TimeoutError as exc:
            return error(504, str(exc), "request_timeout", {"X-Fal-Request-Timeout-Type": "user"})
        path = "/" + request.path_params["path"].lstrip("/")
        if request.url.query:
            path += "?" + request.url.query
        headers = forwarded_headers(dict(request.headers), request_id)
        upstream = await runtime.send(runner, request.method, path, body, headers, stream=True)
        if isinstance(upstream, Outcome):
            runtime.release(runner, request_id, served=False)
            return outcome_response(upstream, request_id)
        out_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in _RESPONSE_SKIP}
        out_headers["x-fal-request-id"] = request_id
        deadline = runtime.current.settings.request_timeout if runtime.current else None
        declared = upstream.headers.get("content-length", "")
        if declared.isdigit() and int(declared) <= BUFFERED_BODY:  # small answers in one piece
            try:
                async with asyncio.timeout(deadline):
                    content = b"".join([chunk async for chunk in upstream.aiter_raw()])
            except TimeoutError:
                runtime.retire(
                    runner, f"Request timed out after request_timeout={deadline:g} s mid-response."
                )
                return error(504, "Request timed out.", "request_timeout")
            except httpx.HTTPError:
                return error(
                    503, f"Runner {runner.id} disconnected during the response.", "runner_disconnected"
                )
            finally:
                await upstream.aclose()
                runtime.release(runner, request_id)
            return Response(content, upstream.status_code, headers=out_headers)

        async def relay() -> AsyncIterator[bytes]:
            chunks = upstream.aiter_raw()
            ends = asyncio.get_running_loop().time() + deadline if deadline else None
            try:
                while True:
                    left = ends - asyncio.get_running_loop().time() if ends else None
                    try:
                        chunk = await asyncio.wait_for(anext(chunks), left)
                    except StopAsyncIteration:
                        return
                    except TimeoutError:
                        runtime.retire(
                            runner, f"Request timed out after request_timeout={deadline:g} s mid-response."
                        )
                        return
                    except httpx.HTTPError:
                        return
                    yield chunk
            finally:
                await upstream.aclose()
                runtime.release(runner, request_id)

        return StreamingResponse(relay(), upstream.status_code, headers=out_headers)

    # -- queue -----------------------------------------------------------------------------
    def request_url(request: Request, name: str, request_id: str) -> str:
        return f"{str(request.base_url).rstrip('/')}/queue/local/{name}/requests/{request_id}"

    async def submit(request: Request) -> Response:
        runtime = lookup(request)
        if isinstance(runtime, Response):
            return runtime
        try:
            body = await read_body(request)
        except BodyTooLarge:
            return too_large()
        if "json" in request.headers.get("content-type", "application/json"):
            try:
                json.loads(body or b"null")
            except ValueError as exc:
                pos = getattr(exc, "pos", 0)
                detail = [
                    {
                        "type": "json_invalid",
                        "loc": ["body", pos],
                        "msg": "JSON decode error",
                        "input": {},
                        "ctx": {"error": getattr(exc, "msg", str(exc))},
                    }
                ]
                return error(422, detail)
        timeout = start_timeout(request)
        if isinstance(timeout, Response):
            return timeout
        priority = 1 if request.headers.get("x-fal-queue-priority", "").lower() == "low" else 0
        path = "/" + request.path_params["path"].lstrip("/")
        try:
            request_id = gateway(request).submit(
                runtime, path, body, stored_headers(request.headers), priority=priority, timeout=timeout
            )
        except Unavailable as exc:
            return error(503, str(exc), "runner_scheduling_failure")
        url = request_url(request, runtime.name, request_id)
        row = gateway(request).store.get(request_id)
        position = gateway(request).store.queue_position(row) if row["status"] == "IN_QUEUE" else 0
        return JSONResponse(
            {
                "status": "IN_QUEUE",
                "request_id": request_id,
                "response_url": url,
                "status_url": url + "/status",
                "cancel_url": url + "/cancel",
                "queue_position": position,
            },
            headers={"x-fal-request-id": request_id},
        )

    def find_request(request: Request) -> tuple[AppRuntime | None, Any] | JSONResponse:
        name, request_id = request.path_params["name"], request.path_params["request_id"]
        row = gateway(request).store.get(request_id)
        if row is None or row["app"] != name:
            return error(
                404, f"Request {request_id} of local/{name} not found (results are kept for one hour)."
            )
        runtime = gateway(request).apps.get(name)
        if (runtime is None or runtime.auth != "public") and not has_key(request):
            return unauthorized()
        return runtime, row

    def wants_logs(request: Request) -> bool:
        return request.query_params.get("logs", "0").lower() in ("1", "true", "yes")

    async def status(request: Request) -> Response:
        found = find_request(request)
        if isinstance(found, Response):
            return found
        _, row = found
        url = request_url(request, row["app"], row["id"])
        code, body = gateway(request).status(row, with_logs=wants_logs(request), response_url=url)
        return JSONResponse(body, code, headers={"x-fal-request-id": row["id"]})

    async def status_stream(request: Request) -> Response:
        found = find_request(request)
        if isinstance(found, Response):
            return found
        _, row = found
        gw, request_id, logs = gateway(request), row["id"], wants_logs(request)
        url = request_url(request, row["app"], request_id)

        async def events() -> AsyncIterator[str]:
            last = None
            with gw.watch(request_id) as changed:
                while True:
                    changed.clear()
                    current = gw.store.get(request_id)
                    if current is None:
                        return
                    _, body = gw.status(current, with_logs=logs, response_url=url)
                    if body != last:
                        yield f"data: {json.dumps(body)}\n\n"
                        last = body
                    if current["status"] == COMPLETED:
                        return
                    try:
                        await asyncio.wait_for(changed.wait(), 0.5)
                    except TimeoutError:
                        pass

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"x-fal-request-id": request_id}
        )

    async def result(request: Request) -> Response:
        found = find_request(request)
        if isinstance(found, Response):
            return found
        _, row = found
        if row["status"] != COMPLETED:
            return error(400, "Request is still in progress", headers={"x-fal-request-id": row["id"]})
        headers = {"x-fal-request-id": row["id"]}
        if row["error_type"]:
            headers["X-Fal-Error-Type"] = row["error_type"]
        return Response(
            row["result_body"], row["result_status"], media_type=row["result_type"], headers=headers
        )

    async def cancel(request: Request) -> Response:
        name, request_id = request.path_params["name"], request.path_params["request_id"]
        row = gateway(request).store.get(request_id)
        if row is None or row["app"] != name:
            return JSONResponse({"status": "NOT_FOUND"}, 404)
        found = find_request(request)
        if isinstance(found, Response):
            return found
        runtime, row = found
        code, body = await gateway(request).cancel(runtime, row)
        return JSONResponse(body, code)

    async def openapi(request: Request) -> Response:
        runtime = lookup(request)
        if isinstance(runtime, Response):
            return runtime
        if runtime.current is None:
            return error(503, f"local/{runtime.name} is still deploying; try again when it is ready.")
        if runtime.current.openapi is None:
            return error(404, f"local/{runtime.name} does not serve /openapi.json.")
        return Response(runtime.current.openapi, media_type="application/json")

    # -- admin -----------------------------------------------------------------------------
    async def identity(request: Request) -> Response:
        return JSONResponse(
            {
                "service": SERVICE,
                "state_id": state_id,
                "home": home,
                "pid": os.getpid(),
                "port": port,
                "version": __version__,
            }
        )

    def admin(handler):
        async def guarded(request: Request) -> Response:
            if not has_key(request):
                return error(
                    401, "The admin API needs `Authorization: Key <id>:<secret>` (the gateway's key)."
                )
            return await handler(request)

        return guarded

    async def list_apps(request: Request) -> Response:
        return JSONResponse([{**rt.info(), "events": []} for rt in gateway(request).apps.values()])

    async def get_app(request: Request) -> Response:
        runtime = gateway(request).apps.get(request.path_params["name"])
        if runtime is None:
            return error(404, f"No app named {request.path_params['name']!r} was deployed here.")
        since = request.query_params.get("since", "0")
        return JSONResponse(runtime.info(int(since) if since.isdigit() else 0))

    async def put_app(request: Request) -> Response:
        try:
            data = await request.json()
            spec = DeploySpec(
                path=str(data["path"]),
                env=data.get("env", "isolated"),
                python=str(data.get("python") or ""),
                secrets={str(k): str(v) for k, v in (data.get("secrets") or {}).items()},
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            return error(422, f"Expected a JSON body with 'path', 'env', 'python', 'secrets': {exc}")
        if spec.env not in ENV_KINDS:
            return error(422, f"env must be one of {', '.join(ENV_KINDS)}, got {spec.env!r}.")
        if not spec.python:
            return error(
                422, "'python' (the interpreter runners use or build their environment from) is required."
            )
        try:
            info = gateway(request).deploy(request.path_params["name"], spec)
        except (FalNotebookError, ValueError, OSError) as exc:
            return error(422, str(exc))
        return JSONResponse(info, 202)

    async def delete_app(request: Request) -> Response:
        if not await gateway(request).remove(request.path_params["name"]):
            return error(404, f"No app named {request.path_params['name']!r} was deployed here.")
        return JSONResponse({"name": request.path_params["name"], "status": "stopped"})

    async def shutdown(request: Request) -> Response:
        server = getattr(request.app.state, "server", None)
        if server is not None:
            server.should_exit = True
        return JSONResponse({"status": "stopping"})

    async def not_found(request: Request, exc: HTTPException) -> Response:
        return error(exc.status_code, exc.detail)

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    routes = [
        Route(f"{ADMIN}/identity", identity, methods=["GET"]),
        Route(f"{ADMIN}/apps", admin(list_apps), methods=["GET"]),
        Route(f"{ADMIN}/apps/{{name}}", admin(get_app), methods=["GET"]),
        Route(f"{ADMIN}/apps/{{name}}", admin(put_app), methods=["PUT"]),
        Route(f"{ADMIN}/apps/{{name}}", admin(delete_app), methods=["DELETE"]),
        Route(f"{ADMIN}/shutdown", admin(shutdown), methods=["POST"]),
        Route("/queue/local/{name}/requests/{request_id}/status", status, methods=["GET"]),
        Route("/queue/local/{name}/requests/{request_id}/status/stream", status_stream, methods=["GET"]),
        Route("/queue/local/{name}/requests/{request_id}", result, methods=["GET"]),
        Route("/queue/local/{name}/requests/{request_id}/cancel", cancel, methods=["PUT"]),
        Route("/queue/local/{name}{path:path}", submit, methods=["POST"]),
        Route("/local/{name}/openapi.json", openapi, methods=["GET"]),
        Route("/local/{name}{path:path}", run_sync, methods=methods),
    ]
    return Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: not_found})
