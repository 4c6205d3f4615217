"""fal's queue protocol through the sync client: run, submit, events, result, cancel, stream."""

from __future__ import annotations

import httpx
import pytest

from fal_notebook import wire
from fal_notebook.client import Completed, InProgress, Queued, RequestError, RequestHandle, RequestTimeoutError, connect

from .fakes import EXPECTED_EVENTS, KEY, SCRIPT, FakeFal, fake_client

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
