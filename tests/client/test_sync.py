"""fal's queue protocol through the sync client: run, submit, events, result, cancel, stream."""

from __future__ import annotations

import json

import httpx
import pytest

from fal_notebook import wire
from fal_notebook.client import Completed, InProgress, Queued, RequestError, RequestHandle, RequestTimeoutError, connect
from fal_notebook.wire import QueuedRequest

from .fakes import EXPECTED_EVENTS, KEY, NO_WAIT, SCRIPT, FakeFal, SyncASGITransport, fake_client, log_entry

pytestmark = pytest.mark.usefixtures("fal_env")


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


def requests_to(fake: FakeFal, suffix: str) -> list:
    return [r for r in fake.seen if r.url.path.endswith(suffix)]


def test_result_follows_the_status_stream_without_logs():
    fake = FakeFal()
    handle = fake_client(fake).submit({"prompt": "hi"})
    assert handle.result(timeout=30) == {"echo": "hi", "path": "/"}
    (stream,) = requests_to(fake, "/status/stream")
    assert "logs" not in stream.query_params and stream.headers["accept"] == "text/event-stream"
    assert requests_to(fake, "/status") == []


def test_iter_events_follows_the_status_stream():
    fake = FakeFal()
    handle = fake_client(fake).submit({"prompt": "hi"})
    assert list(handle.iter_events()) == EXPECTED_EVENTS
    assert [r.query_params["logs"] for r in requests_to(fake, "/status/stream")] == ["1"]
    assert handle.result() == {"echo": "hi", "path": "/"}  # completion was seen: no status asked again
    assert requests_to(fake, "/status") == [] and len(requests_to(fake, "/status/stream")) == 1


def test_an_entry_logged_again_later_in_the_stream_is_kept():
    tick = log_entry(2, "tick")
    events = [
        {"status": "IN_PROGRESS", "logs": [tick]},
        {"status": "IN_PROGRESS", "logs": [tick]},
        {"status": "COMPLETED", "logs": [], "metrics": {}},
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        body = "".join(f"data: {json.dumps(event)}\n\n" for event in events)
        return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})

    client = connect("local/echo", transport=httpx.MockTransport(handler), poll_interval=0)
    handle = RequestHandle(client.connection, QueuedRequest("r", "http://x/status", "http://x", "http://x/cancel"))
    assert list(handle.iter_events()) == [InProgress([tick]), InProgress([tick]), Completed([], {})]


def test_a_stream_that_ends_early_gives_way_to_polling():
    fake = FakeFal(stream_breaks_after=4)
    handle = fake_client(fake).submit({"prompt": "hi"})
    assert list(handle.iter_events()) == EXPECTED_EVENTS  # no log entry twice, none lost
    assert len(requests_to(fake, "/status/stream")) == 1
    assert len(requests_to(fake, "/status")) == len(SCRIPT) - 4


def test_a_stream_that_breaks_off_gives_way_to_polling(caplog):
    caplog.set_level("DEBUG")
    fake = FakeFal(stream_breaks_after=4)
    inner = SyncASGITransport(fake.app)

    class Broken(httpx.SyncByteStream):
        def __init__(self, body: bytes):
            self.body = body

        def __iter__(self):
            yield self.body
            raise httpx.RemoteProtocolError("peer closed connection")

    def handler(request: httpx.Request) -> httpx.Response:
        response = inner.handle_request(request)
        if request.url.path.endswith("/status/stream"):
            return httpx.Response(200, stream=Broken(response.content), headers=response.headers)
        return response

    client = connect("local/echo", transport=httpx.MockTransport(handler), retry=NO_WAIT, poll_interval=0)
    handle = client.submit({"prompt": "hi"})
    assert list(handle.iter_events()) == EXPECTED_EVENTS
    assert handle.result() == {"echo": "hi", "path": "/"}
    assert "the status stream broke off" in caplog.text and "polling the status instead" in caplog.text


def test_without_status_streams_the_status_is_polled():
    fake = FakeFal(status_stream=False)
    handle = fake_client(fake).submit({"prompt": "hi"})
    assert handle.result(timeout=30) == {"echo": "hi", "path": "/"}
    polls = requests_to(fake, "/status")
    assert len(polls) == len(SCRIPT) and all("logs" not in r.query_params for r in polls)
    assert list(fake_client(fake).submit({"prompt": "hi"}).iter_events()) == EXPECTED_EVENTS


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
    handle = RequestHandle(client.connection, wire.decode_submit({"request_id": "gone"}, client.address.app_queue_url))
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
