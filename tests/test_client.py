"""The client against an in-test ASGI app that speaks fal's protocol, and against MockTransport."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from fal_notebook.backends.base import Deployment
from fal_notebook.client import (
    AsyncRequestHandle,
    Completed,
    EndpointClient,
    InProgress,
    Queued,
    RequestError,
    RequestHandle,
    RequestTimeoutError,
    RetryPolicy,
    connect,
)
from fal_notebook.errors import ConfigError
from fal_notebook.protocol import fal_address

KEY = "key-id-1234:key-secret-abcdefgh"
NO_WAIT = RetryPolicy(base_delay=0.0)
pytestmark = pytest.mark.usefixtures("fal_env")


@pytest.fixture
def anyio_backend():
    return "asyncio"


def _log(n: int, message: str | None = None) -> dict:
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
    {"status": "IN_PROGRESS", "logs": [_log(1)]},
    {"status": "IN_PROGRESS", "logs": [_log(1)]},
    {"status": "IN_PROGRESS", "logs": [_log(1), _log(2, "tick"), _log(2, "tick")]},
    {"status": "IN_PROGRESS", "logs": [_log(2, "tick"), _log(2, "tick"), _log(3)]},
    {"status": "COMPLETED", "logs": [_log(3), _log(4)], "metrics": {"inference_time": 0.25}},
]
EXPECTED_EVENTS = [
    Queued(position=1),
    Queued(position=0),
    InProgress(logs=[_log(1)]),
    InProgress(logs=[_log(2, "tick"), _log(2, "tick")]),
    InProgress(logs=[_log(3)]),
    Completed(logs=[_log(4)], metrics={"inference_time": 0.25}),
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
    """One app, ``local/echo``, served with fal's protocol shapes; requests advance one step per poll."""

    def __init__(self, key: str | None = None):
        self.key = key
        self.requests: dict[str, dict] = {}
        self.seen: list[Request] = []
        prefix = "/queue/local/echo/requests/{request_id}"
        self.app = Starlette(
            routes=[
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


# -- addressing and headers -----------------------------------------------------------------------
def test_local_endpoint_urls_and_gateway_key(monkeypatch, tmp_path):
    monkeypatch.setenv("FAL_NOTEBOOK_GATEWAY_PORT", "9911")
    monkeypatch.setenv("FAL_KEY", "fal-key-id:fal-key-secret-xyz")
    write_gateway_key(tmp_path)
    transport, seen = recording(body={"request_id": "r1"})
    client = connect("local/echo", transport=transport)
    assert (client.endpoint_id, client.url, client.queue_url) == (
        "local/echo",
        "http://127.0.0.1:9911/local/echo",
        "http://127.0.0.1:9911/queue/local/echo",
    )
    client.run({"prompt": "hi"})
    client.run({"prompt": "hi"}, path="/generate")
    handle = client.submit({"prompt": "hi"}, path="generate")
    assert [str(r.url) for r in seen] == [
        "http://127.0.0.1:9911/local/echo",
        "http://127.0.0.1:9911/local/echo/generate",
        "http://127.0.0.1:9911/queue/local/echo/generate",
    ]
    assert {r.headers["authorization"] for r in seen} == {f"Key {KEY}"}  # the gateway's key, never FAL_KEY
    assert json.loads(seen[0].content) == {"prompt": "hi"}
    assert handle.status_url == "http://127.0.0.1:9911/queue/local/echo/requests/r1/status"


def test_no_key_no_header():
    transport, seen = recording()
    connect("local/echo", transport=transport).run({})
    connect("http://127.0.0.1:8000", transport=transport).run({})
    assert all("authorization" not in r.headers for r in seen)


def test_fal_endpoint_with_fal_key(monkeypatch):
    monkeypatch.setenv("FAL_KEY", "fal-key-id:fal-key-secret-xyz")
    transport, seen = recording(body={"request_id": "r1"})
    client = connect("fal-ai/flux/dev", transport=transport)
    client.run({"prompt": "x"})
    client.submit({"prompt": "x"}, webhook_url="https://hooks.example.com/done", priority="low")
    assert str(seen[0].url) == "https://fal.run/fal-ai/flux/dev"
    assert seen[1].url.copy_with(query=None) == "https://queue.fal.run/fal-ai/flux/dev"
    assert seen[1].url.params["fal_webhook"] == "https://hooks.example.com/done"
    assert seen[1].headers["x-fal-queue-priority"] == "low"
    assert {r.headers["authorization"] for r in seen} == {"Key fal-key-id:fal-key-secret-xyz"}


def test_fal_hosts_from_the_environment(monkeypatch):
    monkeypatch.setenv("FAL_KEY_ID", "id")
    monkeypatch.setenv("FAL_KEY_SECRET", "secret")
    monkeypatch.setenv("FAL_RUN_HOST", "127.0.0.1:8765")
    monkeypatch.setenv("FAL_QUEUE_RUN_HOST", "127.0.0.1:8765/queue")
    transport, seen = recording(body={"request_id": "r1"})
    client = connect("me/app", transport=transport)
    client.run({})
    client.submit({})
    assert [str(r.url) for r in seen] == ["https://127.0.0.1:8765/me/app", "https://127.0.0.1:8765/queue/me/app"]
    assert seen[0].headers["authorization"] == "Key id:secret"


def test_a_fal_deployment_owned_by_local_is_called_on_fal(monkeypatch, tmp_path):
    """The record of a fal deployment names fal, even when its owner is called ``local``."""
    monkeypatch.setenv("FAL_KEY", "fal-key-id:fal-key-secret-xyz")
    monkeypatch.setenv("FAL_RUN_HOST", "127.0.0.1:9443")
    monkeypatch.setenv("FAL_QUEUE_RUN_HOST", "127.0.0.1:9443/queue")
    record = Deployment(
        "words", "fal", "local/words", "https://fal.run/local/words", "https://queue.fal.run/local/words", "ready"
    )
    client = record.client()
    assert (client.url, client.queue_url) == (
        "https://127.0.0.1:9443/local/words",
        "https://127.0.0.1:9443/queue/local/words",
    )
    transport, seen = recording(body={"request_id": "r1"})
    connect(fal_address(record.endpoint_id), transport=transport).submit({})
    assert str(seen[0].url) == "https://127.0.0.1:9443/queue/local/words"
    assert seen[0].headers["authorization"] == "Key fal-key-id:fal-key-secret-xyz"


def test_explicit_key_wins_and_urls_keep_their_layout(monkeypatch):
    monkeypatch.setenv("FAL_KEY", "fal-key-id:fal-key-secret-xyz")
    transport, seen = recording(body={"request_id": "r1"})
    client = connect("https://fal.run/me/app", key="other:key", transport=transport)
    assert client.queue_url == "https://queue.fal.run/me/app"
    client.submit({})
    assert seen[0].headers["authorization"] == "Key other:key"


def test_openapi_is_read_from_the_app_root():
    transport, seen = recording(body={"openapi": "3.1.0", "paths": {}})
    assert connect("me/app/sub", transport=transport).openapi()["openapi"] == "3.1.0"
    assert (seen[0].method, str(seen[0].url)) == ("GET", "https://fal.run/me/app/openapi.json")


def test_bad_input_to_connect():
    with pytest.raises(ConfigError, match="local/<name>"):
        connect("echo")
    with pytest.raises(ConfigError, match="priority"):
        connect("local/echo", transport=recording()[0]).submit({}, priority="urgent")


# -- retries --------------------------------------------------------------------------------------
@pytest.mark.parametrize("status", [408, 409, 429, 502, 503, 504])
def test_retried_then_answered(status):
    transport, seen = scripted(status, status, httpx.Response(200, json={"ok": 1}))
    assert connect("local/echo", transport=transport, retry=NO_WAIT).run({}) == {"ok": 1}
    assert len(seen) == 3


@pytest.mark.parametrize("status", [400, 401, 404, 422, 500])
def test_not_retried(status):
    transport, seen = scripted(status, 200)
    with pytest.raises(RequestError) as info:
        connect("local/echo", transport=transport, retry=NO_WAIT).run({})
    assert (info.value.status_code, len(seen)) == (status, 1)


def test_an_apps_own_503_is_not_retried():
    transport, seen = scripted(httpx.Response(503, json={"detail": "busy"}, headers={"x-fal-request-id": "r9"}))
    with pytest.raises(RequestError) as info:
        connect("local/echo", transport=transport, retry=NO_WAIT).run({})
    assert (len(seen), info.value.request_id) == (1, "r9")


def test_retries_are_bounded_and_back_off(monkeypatch):
    waits: list[float] = []
    monkeypatch.setattr("fal_notebook.client.time.sleep", waits.append)
    transport, seen = scripted(503)
    policy = RetryPolicy(attempts=5, base_delay=1.0, max_delay=3.0)
    with pytest.raises(RequestError) as info:
        connect("local/echo", transport=transport, retry=policy).run({})
    assert len(seen) == 5 and len(waits) == 4
    assert 0.5 <= waits[0] <= 1.5 and 1.0 <= waits[1] <= 3.0 and all(w <= 3.0 for w in waits)
    assert "HTTP 503" in str(info.value) and "5 tries" in str(info.value)


def test_transport_errors_are_retried_then_explained():
    transport, seen = scripted(httpx.ConnectError("connection refused"))
    with pytest.raises(RequestError) as info:
        connect("local/echo", transport=transport, retry=RetryPolicy(attempts=3, base_delay=0)).run({})
    assert len(seen) == 3 and info.value.status_code is None
    assert "could not reach http://127.0.0.1:8765/local/echo" in str(info.value)
    assert "fal-notebook gateway start" in str(info.value)


def test_a_callers_timeout_is_not_retried():
    transport, seen = scripted(httpx.ReadTimeout("slow"))
    with pytest.raises(RequestTimeoutError, match="no answer within 2 s"):
        connect("local/echo", transport=transport, retry=NO_WAIT).run({}, timeout=2)
    assert len(seen) == 1
    assert seen[0].extensions["timeout"]["read"] == 2


# -- errors ---------------------------------------------------------------------------------------
def test_validation_errors_name_the_fields():
    client = fake_client(FakeFal())
    with pytest.raises(RequestError) as info:
        client.run({"steps": "many"})
    error = info.value
    assert error.status_code == 422
    assert [item["loc"] for item in error.detail] == [["body", "prompt"], ["body", "steps"]]
    message = str(error)
    assert message.startswith("local/echo: invalid input (HTTP 422)")
    assert "  - prompt: Field required" in message
    assert "  - steps: Input should be a valid integer" in message


def test_unknown_path_and_app_failure():
    transport, _ = scripted(httpx.Response(404, json={"detail": "Not Found"}))
    with pytest.raises(RequestError, match="Unknown app or path") as info:
        connect("local/nope", transport=transport).run({}, path="/missing")
    assert "POST http://127.0.0.1:8765/local/nope/missing" in str(info.value)
    with pytest.raises(RequestError, match=r"the app failed \(HTTP 500\): Internal Server Error"):
        fake_client(FakeFal()).run({"prompt": "x", "fail": True})


def test_unauthorized_says_what_to_do_and_never_shows_the_key(monkeypatch, tmp_path):
    write_gateway_key(tmp_path, "wrong-id-5678:wrong-secret-ijklmnop")
    client = fake_client(FakeFal(key=KEY))
    with pytest.raises(RequestError) as info:
        client.run({"prompt": "x"})
    assert info.value.status_code == 401
    assert "The key sent was refused" in str(info.value) and "gateway" in str(info.value)
    assert str(tmp_path / "home" / "gateway" / "key") in str(info.value)
    assert "wrong-secret" not in str(info.value) and "wrong-secret" not in repr(client)

    monkeypatch.setenv("FAL_KEY", "fal-key-id:fal-key-secret-xyz")
    transport, _ = scripted(httpx.Response(401, json={"detail": "bad key fal-key-id:fal-key-secret-xyz"}))
    fal = connect("me/app", transport=transport)
    with pytest.raises(RequestError) as info:
        fal.run({})
    text = f"{info.value} {info.value.detail} {info.value!r} {fal!r}"
    assert "Set FAL_KEY" in text and "fal-key-secret-xyz" not in text and "fal-key-id" not in text


def test_the_key_stays_out_of_reprs_and_errors():
    client = fake_client(FakeFal(key=KEY), key=KEY)
    handle = client.submit({"prompt": "x"})
    assert "key=set" in repr(client)
    for text in (repr(client), str(client), repr(handle), str(handle)):
        assert "key-secret" not in text and "key-id-1234" not in text
    with pytest.raises(RequestError) as info:
        client.run({})
    assert "key-secret" not in f"{info.value} {info.value.detail!r}"


def test_a_server_echoing_the_key_does_not_leak_it():
    def echo_headers(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            403, json={"detail": f"refused {request.headers['authorization']}", "seen": {"secret": KEY.split(":")[1]}}
        )

    client = connect("http://127.0.0.1:8000", key=KEY, transport=httpx.MockTransport(echo_headers))
    with pytest.raises(RequestError) as info:
        client.run({})
    text = f"{info.value} {info.value.detail!r} {info.value!r}"
    assert "refused Key ***" in text
    assert KEY.split(":")[0] not in text and KEY.split(":")[1] not in text


def test_an_endpoint_that_does_not_speak_the_protocol():
    transport, _ = scripted(httpx.Response(200, text="<html>hello</html>"))
    with pytest.raises(RequestError, match="not JSON"):
        connect("http://127.0.0.1:8000", transport=transport).run({})
    with pytest.raises(RequestError, match="no request to follow"):
        connect("http://127.0.0.1:8000", transport=recording(body={"hello": 1})[0]).submit({})


# -- the protocol, sync ---------------------------------------------------------------------------
def test_run_and_openapi():
    client = fake_client(FakeFal())
    assert client.run({"prompt": "hi"}) == {"echo": "hi", "path": "/"}
    assert client.run({"prompt": "hi"}, path="/generate") == {"echo": "hi", "path": "/generate"}
    assert client.openapi()["paths"] == {"/": {"post": {}}}


def test_submit_iter_events_result():
    fake = FakeFal(key=KEY)
    client = fake_client(fake, key=KEY)
    handle = client.submit({"prompt": "hi"}, path="/generate")
    assert isinstance(handle, RequestHandle) and handle.request_id in fake.requests
    assert list(handle.iter_events()) == EXPECTED_EVENTS
    assert handle.status() == Completed(logs=[], metrics={"inference_time": 0.25})
    assert handle.result() == {"echo": "hi", "path": "/generate"}
    assert all(r.headers.get("authorization") == f"Key {KEY}" for r in fake.seen)


def test_result_waits_without_logs():
    fake = FakeFal()
    handle = fake_client(fake).submit({"prompt": "hi"})
    assert handle.result(timeout=30) == {"echo": "hi", "path": "/"}
    polls = [r for r in fake.seen if r.url.path.endswith("/status")]
    assert len(polls) == len(SCRIPT) and all("logs" not in r.query_params for r in polls)


def test_iter_events_without_logs_reports_changes_only():
    handle = fake_client(FakeFal()).submit({"prompt": "hi"})
    assert list(handle.iter_events(logs=False, interval=0)) == [
        Queued(1),
        Queued(0),
        InProgress([]),
        Completed([], {"inference_time": 0.25}),
    ]


def test_result_timeout_leaves_the_request_running():
    handle = fake_client(FakeFal()).submit({"prompt": "hi"})
    with pytest.raises(RequestTimeoutError) as info:
        handle.result(timeout=0)
    assert info.value.request_id == handle.request_id
    assert "cancel()" in str(info.value) and handle.request_id in str(info.value)
    assert handle.result() == {"echo": "hi", "path": "/"}


def test_a_failed_request_raises_with_its_request_id():
    handle = fake_client(FakeFal()).submit({"prompt": "hi", "fail": True})
    events = list(handle.iter_events())
    assert events[-1].error == "The app failed" and events[-1].error_type == "AppError"
    with pytest.raises(RequestError) as info:
        handle.result()
    assert (info.value.status_code, info.value.request_id) == (500, handle.request_id)
    assert f"(request id {handle.request_id})" in str(info.value)


def test_queued_validation_error():
    handle = fake_client(FakeFal()).submit({"steps": 3})
    with pytest.raises(RequestError, match="prompt: Field required"):
        handle.result()


def test_cancel():
    client = fake_client(FakeFal())
    handle = client.submit({"prompt": "hi"})
    assert handle.cancel() == "CANCELLATION_REQUESTED"
    assert handle.status() == Completed(error="Request cancelled", error_type="RequestCancelled")
    with pytest.raises(RequestError) as info:
        handle.result()
    assert info.value.status_code == 499

    done = client.submit({"prompt": "hi"})
    done.result()
    assert done.cancel() == "ALREADY_COMPLETED"


def test_unknown_request():
    client = fake_client(FakeFal())
    handle = RequestHandle(
        client,
        client._queued(
            httpx.Response(200, json={"request_id": "gone"}, request=httpx.Request("POST", client.queue_url))
        ),
    )
    with pytest.raises(RequestError, match="No request with this id") as info:
        handle.status()
    assert info.value.status_code == 404
    assert handle.cancel() == "NOT_FOUND"


def test_stream():
    client = fake_client(FakeFal())
    events = list(client.stream({"count": 2}))
    path = "/local/echo/stream"
    assert events == [{"i": 0, "path": path}, {"i": 1, "path": path}, {"done": True}]
    assert list(client.stream({"count": 1}, path="/gen"))[0]["path"] == "/local/echo/gen/stream"
    with pytest.raises(RequestError, match="the stream failed: out of memory") as info:
        list(client.stream({"count": 0, "fail": True}))
    assert info.value.detail == {"detail": "out of memory"}


def test_a_stream_that_breaks_off():
    class Broken(httpx.SyncByteStream):
        def __iter__(self):
            yield b'data: {"i": 0}\n\n'
            raise httpx.RemoteProtocolError("peer closed connection")

    transport = httpx.MockTransport(lambda request: httpx.Response(200, stream=Broken()))
    stream = connect("local/echo", transport=transport).stream({})
    assert next(stream) == {"i": 0}
    with pytest.raises(RequestError, match="broke off"):
        next(stream)


def test_stream_http_error():
    client = fake_client(FakeFal(key=KEY))
    with pytest.raises(RequestError) as info:
        next(client.stream({}))
    assert info.value.status_code == 401


# -- the protocol, async --------------------------------------------------------------------------
@pytest.mark.anyio
async def test_async_submit_iter_events_result_cancel():
    fake = FakeFal(key=KEY)
    client = fake_client(fake, key=KEY)
    assert await client.run_async({"prompt": "hi"}) == {"echo": "hi", "path": "/"}
    handle = await client.submit_async({"prompt": "hi"}, path="/generate")
    assert isinstance(handle, AsyncRequestHandle)
    assert [event async for event in handle.iter_events()] == EXPECTED_EVENTS
    assert await handle.result() == {"echo": "hi", "path": "/generate"}
    assert await handle.cancel() == "ALREADY_COMPLETED"

    other = await client.submit_async({"prompt": "hi"})
    assert isinstance(await other.status(), Queued)
    assert await other.cancel() == "CANCELLATION_REQUESTED"
    with pytest.raises(RequestError):
        await other.result()
    with pytest.raises(RequestTimeoutError):
        await (await client.submit_async({"prompt": "hi"})).result(timeout=0)
    await client.aclose()


@pytest.mark.anyio
async def test_async_errors_and_stream():
    client = fake_client(FakeFal())
    with pytest.raises(RequestError, match="prompt: Field required"):
        await client.run_async({})
    events = [event async for event in client.stream_async({"count": 2})]
    assert events[-1] == {"done": True} and len(events) == 3


@pytest.mark.anyio
async def test_async_retries_share_the_policy():
    seen = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(429 if len(seen) < 3 else 200, json={"n": len(seen)})

    client = connect("local/echo", async_transport=httpx.MockTransport(handler), retry=NO_WAIT)
    assert await client.run_async({}) == {"n": 3}


@pytest.mark.anyio
async def test_sync_calls_work_inside_a_running_event_loop():
    transport, _ = recording(body={"ok": True})
    assert connect("local/echo", transport=transport).run({}) == {"ok": True}


def test_async_client_follows_the_event_loop():
    client = fake_client(FakeFal())
    for _ in range(2):  # each asyncio.run is a new loop: the client must not reuse the old loop's connections
        assert asyncio.run(client.run_async({"prompt": "x"})) == {"echo": "x", "path": "/"}


# -- over a real socket, with httpx's own transports ------------------------------------------------
@pytest.fixture
def served():
    """The fake served by uvicorn on a free loopback port; yields its base URL and the fake."""
    import socket
    import threading

    import uvicorn

    fake = FakeFal(key=KEY)
    gate = threading.Event()

    async def gated_stream(request: Request):
        async def events():
            yield 'data: {"i": 0}\n\n'
            opened = await asyncio.to_thread(gate.wait, 10)
            yield f"data: {json.dumps({'i': 1, 'gate_was_open': opened})}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    fake.app.router.routes.insert(0, Route("/local/echo/gated/stream", gated_stream, methods=["POST"]))
    # proto IPPROTO_TCP, or asyncio leaves TCP_NODELAY off and every answer waits ~40 ms for a delayed ACK
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(fake.app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        thread.join(0.01)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}", fake, gate
    server.should_exit = True
    thread.join(10)
    sock.close()


def test_over_the_network_with_the_gateway_key(served, tmp_path):
    base, fake, gate = served
    write_gateway_key(tmp_path)
    client = connect(f"{base}/local/echo", poll_interval=0)
    assert client.queue_url == f"{base}/queue/local/echo"
    handle = client.submit({"prompt": "net"})
    assert [type(e) for e in handle.iter_events()][-1] is Completed
    assert handle.result() == {"echo": "net", "path": "/"}
    stream = client.stream({}, path="/gated")
    assert next(stream) == {"i": 0}  # the first event arrives while the server still holds the stream open
    gate.set()
    assert list(stream) == [{"i": 1, "gate_was_open": True}]
    client.close()


@pytest.mark.anyio
async def test_over_the_network_async(served, tmp_path):
    base, fake, _ = served
    write_gateway_key(tmp_path)
    client = connect(f"{base}/local/echo", poll_interval=0)
    handle = await client.submit_async({"prompt": "net"})
    assert await handle.result(timeout=30) == {"echo": "net", "path": "/"}
    assert [e async for e in client.stream_async({"count": 1})] == [
        {"i": 0, "path": "/local/echo/stream"},
        {"done": True},
    ]
    await client.aclose()


def test_retries_log_without_the_key(caplog):
    caplog.set_level("DEBUG")
    transport, _ = scripted(503, 200)
    connect("http://127.0.0.1:8000", key=KEY, transport=transport, retry=NO_WAIT).run({})
    assert "HTTP 503; try 2 of 8" in caplog.text
    assert "key-secret" not in caplog.text and "key-id-1234" not in caplog.text
