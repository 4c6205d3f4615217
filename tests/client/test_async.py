"""The async twins: the same requests and answers, in an event loop."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from fal_notebook.client import AsyncRequestHandle, Queued, RequestError, RequestTimeoutError, connect

from .fakes import EXPECTED_EVENTS, KEY, NO_WAIT, SCRIPT, FakeFal, fake_client, recording

pytestmark = pytest.mark.usefixtures("fal_env")


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
async def test_async_handles_follow_the_status_stream_then_poll_where_it_ends():
    fake = FakeFal(stream_breaks_after=4)
    client = fake_client(fake)
    handle = await client.submit_async({"prompt": "hi"})
    assert [event async for event in handle.iter_events()] == EXPECTED_EVENTS
    assert await handle.result() == {"echo": "hi", "path": "/"}
    fake.stream_breaks_after = None
    assert await (await client.submit_async({"prompt": "again"})).result() == {"echo": "again", "path": "/"}
    streams = [r for r in fake.seen if r.url.path.endswith("/status/stream")]
    polls = [r for r in fake.seen if r.url.path.endswith("/status")]
    assert len(streams) == 2 and len(polls) == len(SCRIPT) - 4
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
