"""Over a real socket, with httpx's own transports."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from fal_notebook.client import Completed, RequestTimeoutError, connect

from .fakes import KEY, NO_WAIT, FakeFal, scripted, write_gateway_key

pytestmark = pytest.mark.usefixtures("fal_env")


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


def polls(fake: FakeFal) -> list:
    return [r for r in fake.seen if r.url.path.endswith("/status")]


def test_a_wait_on_the_status_stream_keeps_its_timeout(served, tmp_path):
    base, fake, _ = served
    write_gateway_key(tmp_path)
    client = connect(f"{base}/local/echo", poll_interval=0)
    handle = client.submit({"prompt": "net", "stuck": True})  # the stream sends keep-alive comments only
    started = time.monotonic()
    with pytest.raises(RequestTimeoutError, match="no result within 0.5 s"):
        handle.result(timeout=0.5)
    assert 0.5 <= time.monotonic() - started < 5
    assert polls(fake) == []
    client.close()


@pytest.mark.anyio
async def test_an_async_wait_on_the_status_stream_keeps_its_timeout(served, tmp_path):
    base, fake, _ = served
    write_gateway_key(tmp_path)
    client = connect(f"{base}/local/echo", poll_interval=0)
    handle = await client.submit_async({"prompt": "net", "stuck": True})
    started = time.monotonic()
    with pytest.raises(RequestTimeoutError):
        await handle.result(timeout=0.5)
    assert 0.5 <= time.monotonic() - started < 5
    assert polls(fake) == []
    await client.aclose()


def test_queued_calls_one_after_the_other_share_one_connection(served, tmp_path):
    base, fake, _ = served
    write_gateway_key(tmp_path)
    client = connect(f"{base}/local/echo", poll_interval=0)
    for prompt in ("one", "two"):
        handle = client.submit({"prompt": prompt})
        assert [type(e) for e in handle.iter_events()][-1] is Completed
        assert handle.result() == {"echo": prompt, "path": "/"}
    assert {r.client.port for r in fake.seen} == {fake.seen[0].client.port}  # the streams were read to their end
    client.close()
