"""The gateway's hot path over real sockets: the proxy hop's client against HTTP servers that answer the ways
runners do (and break the ways they break), and the server loop's one send per turn of the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import uvicorn

from fal_notebook.gateway.serving import _Corked
from fal_notebook.gateway.upstream import Upstream, UpstreamError
from tests.polling import wait_for

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[tuple[str, list[int]]]:
    """A server on a free port that runs ``handler`` per connection; yields its origin and a list
    that counts the connections it accepted."""
    accepted: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        try:
            await handler(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}", accepted


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0
    )
    return head, await reader.readexactly(length)


def run(coroutine: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coroutine, 20))


@pytest.fixture(scope="module")
def uvicorn_origin():
    """A real uvicorn server (what fal's runners run): echoes the body, streams on /stream."""

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = dict(scope["headers"])
        if scope["path"] == "/stream":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
            for i in range(3):
                await send({"type": "http.response.body", "body": b"part %d;" % i, "more_body": True})
                await asyncio.sleep(0.05)
            await send({"type": "http.response.body", "body": b""})
            return
        answer = b"%s %s %s %s" % (scope["method"].encode(), scope["path"].encode(), body, headers.get(b"x-tag", b"-"))
        await send({"type": "http.response.start", "status": 201, "headers": [(b"x-answer", b"yes")]})
        await send({"type": "http.response.body", "body": answer})

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, "the test server to start", timeout=10, interval=0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(5)


def test_calls_to_a_uvicorn_runner_reuse_one_connection_and_stream(uvicorn_origin):
    async def scenario() -> None:
        upstream = Upstream()
        for i in range(3):
            response = await upstream.send(
                "POST", f"{uvicorn_origin}/run?x=1", content=b"body %d" % i, headers={"X-Tag": "t"}
            )
            assert response.status_code == 201 and response.headers["X-ANSWER"] == "yes"
            assert await response.aread() == b"POST /run body %d t" % i
        assert len(upstream._idle[uvicorn_origin]) == 1  # one kept connection carried all three

        response = await upstream.send("GET", f"{uvicorn_origin}/stream")
        arrivals = []
        async for chunk in response.aiter_raw():
            arrivals.append((chunk, time.monotonic()))
        await response.aclose()
        assert b"".join(chunk for chunk, _ in arrivals) == b"part 0;part 1;part 2;"
        assert arrivals[-1][1] - arrivals[0][1] > 0.05  # relayed as they came, not at the end
        await upstream.aclose()

    run(scenario())


def test_answers_delimited_by_length_chunks_or_the_connection_closing():
    answers = [  # (answer, the server closes the connection after it)
        (b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello", False),
        (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n", False),
        (b"HTTP/1.1 200 OK\r\n\r\nhello", True),  # no length: the body ends with the connection
        (b"HTTP/1.1 204 No Content\r\n\r\n", False),
    ]

    async def handler(reader, writer):
        while True:
            try:
                await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            answer, close = answers.pop(0)
            writer.write(answer)
            await writer.drain()
            if close:
                return

    async def scenario() -> None:
        async with raw_server(handler) as (origin, accepted):
            upstream = Upstream()
            for expected in (b"hello", b"hello", b"hello", b""):
                response = await upstream.send("POST", origin + "/", content=b"{}")
                assert await response.aread() == expected
            assert len(accepted) == 2  # only the close-delimited answer cost its connection
            await upstream.aclose()

    run(scenario())


def test_a_runner_that_breaks_off_or_is_not_there_is_an_upstream_error():
    async def half_an_answer(reader, writer):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part")
        await writer.drain()

    async def scenario() -> None:
        async with raw_server(half_an_answer) as (origin, _):
            upstream = Upstream()
            response = await upstream.send("POST", origin + "/", content=b"{}")
            with pytest.raises(UpstreamError, match="closed"):
                await response.aread()
            assert not upstream._idle.get(origin)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]  # nothing listens there
        with pytest.raises(UpstreamError, match="cannot connect"):
            await Upstream().send("POST", f"http://127.0.0.1:{port}/", content=b"{}")

    run(scenario())


def test_a_kept_connection_the_runner_closed_while_idle_is_replaced_without_an_error():
    async def one_answer_per_connection_closed_late(reader, writer):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        await asyncio.sleep(0.05)  # then the idle connection is closed, as keep-alive timeouts do

    async def scenario() -> None:
        async with raw_server(one_answer_per_connection_closed_late) as (origin, accepted):
            upstream = Upstream()
            for _ in range(3):
                response = await upstream.send("POST", origin + "/", content=b"{}")
                assert await response.aread() == b"ok"
                await asyncio.sleep(0.1)
            assert len(accepted) == 3

    run(scenario())


def test_a_call_given_up_on_closes_its_connection():
    closed = asyncio.Event()

    async def never_answers(reader, writer):
        await read_request(reader)
        await reader.read()  # until the client closes the connection
        closed.set()

    async def scenario() -> None:
        async with raw_server(never_answers) as (origin, _):
            upstream = Upstream()
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.2):
                    await upstream.send("POST", origin + "/", content=b"{}")
            await asyncio.wait_for(closed.wait(), 5)
            assert not upstream._idle.get(origin)

    run(scenario())


def test_header_values_cannot_smuggle_a_second_request():
    with pytest.raises(ValueError, match="line break"):
        run(Upstream().send("POST", "http://127.0.0.1:9/", headers={"x-fal-x": "a\r\nGET /admin HTTP/1.1"}))


class Recording(asyncio.Transport):
    """A transport that records each write (the system call it would be)."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[bytes] = []
        self.closed = False

    def write(self, data) -> None:
        self.sent.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


def test_the_server_sends_what_one_turn_of_the_loop_wrote_in_one_piece():
    async def scenario() -> None:
        transport = Recording()
        corked = _Corked(transport)
        corked.write(b"HTTP/1.1 200 OK\r\n\r\n")  # uvicorn: the head...
        corked.write(b"body")  # ...and the body, in the same turn
        assert transport.sent == []
        await asyncio.sleep(0)
        assert transport.sent == [b"HTTP/1.1 200 OK\r\n\r\nbody"]
        corked.write(b"chunk 1")  # a streamed answer: one send per turn
        await asyncio.sleep(0)
        corked.write(b"chunk 2")
        corked.close()  # what was written goes out before the connection closes
        assert transport.sent[1:] == [b"chunk 1", b"chunk 2"] and transport.closed

    run(scenario())
