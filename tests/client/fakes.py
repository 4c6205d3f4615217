"""A fake of fal's queue protocol as an ASGI app, MockTransports, and what the client tests share."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from fal_notebook.client import (
    Completed,
    EndpointClient,
    InProgress,
    Queued,
    RetryPolicy,
    connect,
)

KEY = "key-id-1234:key-secret-abcdefgh"
NO_WAIT = RetryPolicy(base_delay=0.0)


def log_entry(n: int, message: str | None = None) -> dict:
    return {
        "timestamp": f"2025-01-01T00:00:{n:02d}",
        "message": message or f"step {n}",
        "level": "INFO",
        "source": "user",
    }


# The status answers of one request, one per poll: the log list is a moving window.
SCRIPT = [
    {"status": "IN_QUEUE", "queue_position": 1},
    {"status": "IN_QUEUE", "queue_position": 1},
    {"status": "IN_QUEUE", "queue_position": 0},
    {"status": "IN_PROGRESS", "logs": [log_entry(1)]},
    {"status": "IN_PROGRESS", "logs": [log_entry(1)]},
    {"status": "IN_PROGRESS", "logs": [log_entry(1), log_entry(2, "tick"), log_entry(2, "tick")]},
    {"status": "IN_PROGRESS", "logs": [log_entry(2, "tick"), log_entry(2, "tick"), log_entry(3)]},
    {"status": "COMPLETED", "logs": [log_entry(3), log_entry(4)], "metrics": {"inference_time": 0.25}},
]
#: The log entries each status of SCRIPT adds, as a status stream sends them (each event holds only
#: the entries since the one before).
ADDED = [[], [], [], [log_entry(1)], [], [log_entry(2, "tick"), log_entry(2, "tick")], [log_entry(3)], [log_entry(4)]]
EXPECTED_EVENTS = [
    Queued(position=1),
    Queued(position=0),
    InProgress(logs=[log_entry(1)]),
    InProgress(logs=[log_entry(2, "tick"), log_entry(2, "tick")]),
    InProgress(logs=[log_entry(3)]),
    Completed(logs=[log_entry(4)], metrics={"inference_time": 0.25}),
]


def guarded(handler):
    """Record the request, and refuse it without the fake's key (as the gateway does for private apps)."""

    async def endpoint(self: FakeFal, request: Request):
        self.seen.append(request)
        if self.key is not None and request.headers.get("authorization") != f"Key {self.key}":
            return JSONResponse({"detail": "Missing or invalid key"}, 401)
        return await handler(self, request)

    return endpoint


class FakeFal:
    """One app, ``local/echo``, served with fal's protocol shapes; requests advance one step per poll,
    or per event of their status stream. ``status_stream=False``: a server without status streams;
    ``stream_breaks_after=N``: a status stream ends after N events, COMPLETED or not."""

    def __init__(self, key: str | None = None, *, status_stream: bool = True, stream_breaks_after: int | None = None):
        self.key = key
        self.requests: dict[str, dict] = {}
        self.seen: list[Request] = []
        self.stream_breaks_after = stream_breaks_after
        prefix = "/queue/local/echo/requests/{request_id}"
        streams = [Route(prefix + "/status/stream", self.status_stream, methods=["GET"])] if status_stream else []
        self.app = Starlette(
            routes=streams
            + [
                Route("/local/echo/openapi.json", self.openapi, methods=["GET"]),
                Route("/local/echo/stream", self.stream, methods=["POST"]),
                Route("/local/echo/{path:path}/stream", self.stream, methods=["POST"]),
                Route("/local/echo", self.run, methods=["POST"]),
                Route("/local/echo/{path:path}", self.run, methods=["POST"]),
                Route(prefix + "/status", self.status, methods=["GET"]),
                Route(prefix + "/cancel", self.cancel, methods=["PUT"]),
                Route(prefix, self.result, methods=["GET"]),
                Route("/queue/local/echo", self.submit, methods=["POST"]),
                Route("/queue/local/echo/{path:path}", self.submit, methods=["POST"]),
            ]
        )

    @staticmethod
    def output(body: dict, path: str) -> tuple[int, dict]:
        errors = []
        if not isinstance(body.get("prompt"), str):
            errors.append({"type": "missing", "loc": ["body", "prompt"], "msg": "Field required", "input": body})
        if "steps" in body and not isinstance(body["steps"], int):
            errors.append(
                {
                    "type": "int_parsing",
                    "loc": ["body", "steps"],
                    "msg": "Input should be a valid integer",
                    "input": body["steps"],
                }
            )
        if errors:
            return 422, {"detail": errors}
        if body.get("fail"):
            return 500, {"detail": "Internal Server Error"}
        return 200, {"echo": body["prompt"], "path": "/" + path}

    @guarded
    async def run(self, request: Request):
        status, output = self.output(await request.json(), request.path_params.get("path", ""))
        return JSONResponse(output, status)

    @guarded
    async def stream(self, request: Request):
        body = await request.json()

        async def events():
            yield ": warming up\n\n"
            for i in range(body.get("count", 3)):
                yield f"data: {json.dumps({'i': i, 'path': request.url.path})}\n\n"
            yield 'data: {"done":\ndata: true}\n\n'  # one event over two data lines
            if body.get("fail"):
                yield 'event: error\ndata: {"detail": "out of memory"}\n\n'

        return StreamingResponse(events(), media_type="text/event-stream")

    @guarded
    async def openapi(self, request: Request):
        return JSONResponse({"openapi": "3.1.0", "paths": {"/": {"post": {}}}})

    @guarded
    async def submit(self, request: Request):
        request_id = str(uuid.uuid4())
        self.requests[request_id] = {
            "input": await request.json(),
            "path": request.path_params.get("path", ""),
            "polls": 0,
            "cancelled": False,
        }
        base = f"{request.base_url}queue/local/echo/requests/{request_id}"
        return JSONResponse(
            {
                "request_id": request_id,
                "status_url": f"{base}/status",
                "response_url": base,
                "cancel_url": f"{base}/cancel",
                "queue_position": 1,
            },
            202,
        )

    def current(self, entry: dict) -> dict:
        if entry["input"].get("stuck"):
            return {"status": "IN_QUEUE", "queue_position": 1}
        if entry["cancelled"]:
            return {
                "status": "COMPLETED",
                "logs": [],
                "metrics": {},
                "error": "Request cancelled",
                "error_type": "RequestCancelled",
            }
        answer = dict(SCRIPT[min(entry["polls"], len(SCRIPT) - 1)])
        if answer["status"] == "COMPLETED" and self.output(entry["input"], entry["path"])[0] != 200:
            answer.update(error="The app failed", error_type="AppError")
        return answer

    @guarded
    async def status(self, request: Request):
        entry = self.requests.get(request.path_params["request_id"])
        if entry is None:
            return JSONResponse({"detail": "Request not found"}, 404)
        answer = self.current(entry)
        entry["polls"] += 1
        if request.query_params.get("logs") != "1":
            answer.pop("logs", None)
        return JSONResponse(answer, 200 if answer["status"] == "COMPLETED" else 202)

    @guarded
    async def status_stream(self, request: Request):
        """The statuses from the request's current step on, one event each, with the log entries each
        adds; a stuck request sends its status, then keep-alive comments until the client goes."""
        entry = self.requests.get(request.path_params["request_id"])
        if entry is None:
            return JSONResponse({"detail": "Request not found"}, 404)
        logs = request.query_params.get("logs") == "1"

        async def events():
            for _ in range(self.stream_breaks_after or len(SCRIPT)):
                step, answer = entry["polls"], self.current(entry)
                entry["polls"] += 1
                answer["logs"] = ADDED[min(step, len(SCRIPT) - 1)] if logs and "logs" in answer else None
                yield f"data: {json.dumps(answer)}\n\n"
                if answer["status"] == "COMPLETED":
                    return
                while entry["input"].get("stuck"):
                    await asyncio.sleep(0.05)
                    yield ": keep-alive\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    @guarded
    async def result(self, request: Request):
        entry = self.requests.get(request.path_params["request_id"])
        if entry is None:
            return JSONResponse({"detail": "Request not found"}, 404)
        if entry["cancelled"]:
            return JSONResponse({"detail": "Request cancelled"}, 499)
        status, output = self.output(entry["input"], entry["path"])
        return JSONResponse(output, status, headers={"x-fal-request-id": request.path_params["request_id"]})

    @guarded
    async def cancel(self, request: Request):
        entry = self.requests.get(request.path_params["request_id"])
        if entry is None:
            return JSONResponse({"status": "NOT_FOUND"}, 404)
        if self.current(entry)["status"] == "COMPLETED":
            return JSONResponse({"status": "ALREADY_COMPLETED"}, 400)
        entry["cancelled"] = True
        return JSONResponse({"status": "CANCELLATION_REQUESTED"}, 202)


class SyncASGITransport(httpx.BaseTransport):
    """Serves a sync client from an ASGI app: a fresh event loop per request (the fake keeps no loop state)."""

    def __init__(self, app):
        self._transport = httpx.ASGITransport(app=app)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        async def call() -> httpx.Response:
            response = await self._transport.handle_async_request(request)
            return httpx.Response(response.status_code, headers=response.headers, content=await response.aread())

        return asyncio.run(call())


def fake_client(fake: FakeFal, target: str = "local/echo", **options) -> EndpointClient:
    return connect(
        target,
        transport=SyncASGITransport(fake.app),
        async_transport=httpx.ASGITransport(fake.app),
        retry=NO_WAIT,
        poll_interval=0,
        **options,
    )


def recording(status: int = 200, body: object = None, **headers: str) -> tuple[httpx.MockTransport, list]:
    """A MockTransport answering ``status``/``body`` to everything, and the list of requests it saw."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, json={"ok": True} if body is None else body, headers=headers)

    return httpx.MockTransport(handler), seen


def scripted(*answers: object) -> tuple[httpx.MockTransport, list]:
    """A MockTransport giving ``answers`` in turn (status codes, exceptions, Responses); the last repeats."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers[min(len(seen), len(answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer if isinstance(answer, httpx.Response) else httpx.Response(answer, json={"detail": "x"})

    return httpx.MockTransport(handler), seen


def write_gateway_key(tmp_path, key: str = KEY) -> None:
    path = tmp_path / "home" / "gateway" / "key"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(key + "\n")
