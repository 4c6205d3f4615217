"""The proxy hop from the gateway to its runners: HTTP/1.1 over kept-alive connections.

Every call through the gateway takes this hop, so it is lean: one write per request, the answer
parsed by httptools (C) as it arrives, connections kept per runner and reused. Runners are local
HTTP/1.1 servers (fal's uvicorn, the user's server, a container's published port); this client
speaks what they need and nothing else (no redirects, cookies, proxies, TLS or compression).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import httptools

#: Idle connections kept per runner; older idle ones are closed before the server's keep-alive
#: timeout (uvicorn's is 5 s) can close them under a request.
KEEP_IDLE = 64
IDLE_SECONDS = 4.0
#: The answer's body buffered ahead of its reader, beyond which reading from the runner pauses.
HIGH_WATER = 1 << 20
_NO_BODY_STATUSES = {204, 304}
_OWN_HEADERS = {"host", "content-length", "transfer-encoding", "connection"}


class UpstreamError(Exception):
    """The runner could not be reached, or broke off its answer."""


class Headers(Mapping[str, str]):
    """Response headers: case-insensitive lookup; ``items()`` gives them as sent (repeated names too)."""

    def __init__(self, raw: list[tuple[str, str]]):
        self.raw = raw
        self._lower = {name.lower(): value for name, value in raw}

    def __getitem__(self, name: str) -> str:
        return self._lower[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._lower

    def __iter__(self) -> Iterator[str]:
        return iter(self._lower)

    def __len__(self) -> int:
        return len(self._lower)

    def items(self) -> list[tuple[str, str]]:  # type: ignore[override]
        return list(self.raw)


class Response:
    """A runner's answer, its head received; the body comes with ``aread`` or ``aiter_raw``."""

    def __init__(self, connection: _Connection | None):
        self._connection = connection
        self.status_code = 0
        self.headers = Headers([])
        self.content = b""
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._complete = False
        self._error: UpstreamError | None = None
        self._waiter: asyncio.Future[None] | None = None

    @classmethod
    def of(cls, status_code: int, headers: list[tuple[str, str]], content: bytes) -> Response:
        """A whole answer that came some other way (a fake runner in tests)."""
        response = cls(None)
        response.status_code, response.headers = status_code, Headers(headers)
        if content:
            response._chunks.append(content)
        response._complete = True
        return response

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)

    async def aread(self) -> bytes:
        try:
            self.content = b"".join([chunk async for chunk in self.aiter_raw()])
        except asyncio.CancelledError:
            await self.aclose()
            raise
        return self.content

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        """The body as it arrives; UpstreamError if the runner breaks it off."""
        while True:
            if self._chunks:
                chunk = self._chunks.popleft()
                self._buffered -= len(chunk)
                if self._buffered < HIGH_WATER // 2 and self._connection is not None:
                    self._connection.resume()
                yield chunk
            elif self._complete:
                if self._connection is not None:
                    self._connection.finished(self)
                return
            elif self._error is not None:
                raise self._error
            else:
                self._waiter = asyncio.get_running_loop().create_future()
                try:
                    await self._waiter
                finally:
                    self._waiter = None

    async def aclose(self) -> None:
        """Done with the answer: its connection goes back to the pool if the body was read to its end."""
        if (not self._complete or self._chunks) and self._connection is not None:
            self._connection.close()

    # -- fed by the connection ---------------------------------------------------------------
    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _feed(self, chunk: bytes) -> None:
        self._chunks.append(chunk)
        self._buffered += len(chunk)
        if self._buffered > HIGH_WATER and self._connection is not None:
            self._connection.pause()
        self._wake()

    def _end(self) -> None:
        self._complete = True
        self._wake()

    def _fail(self, error: UpstreamError) -> None:
        if not self._complete:
            self._error = error
            self._wake()


class _Connection(asyncio.Protocol):
    """One kept-alive connection to a runner; it carries one request at a time."""

    def __init__(self, pool: Upstream, origin: str):
        self.pool, self.origin = pool, origin
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.used = False  # it carried a request before (a failure may be its idle close, not the runner)
        self.idle_since = time.monotonic()
        self._parser = httptools.HttpResponseParser(self)
        self._response: Response | None = None
        self._head: asyncio.Future[Response] | None = None
        self._header_list: list[tuple[str, str]] = []
        self._method = ""
        self._received = False  # a byte of the current answer arrived
        self._until_close = False  # the body ends when the connection does (no length, not chunked)
        self._paused = False

    # -- asyncio.Protocol --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # (uvloop's transports are no asyncio.Transport)

    def data_received(self, data: bytes) -> None:
        self._received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._broken(f"the runner's answer is not valid HTTP ({exc})")

    def eof_received(self) -> bool:
        return False  # close the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._response is not None and self._until_close and self._head is not None and self._head.done():
            self._response._end()
            self._response = None
        self._broken("the runner closed the connection" + (f" ({exc})" if exc else ""))

    # -- httptools callbacks -----------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_list.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        response = self._response
        assert response is not None and self._head is not None
        response.status_code = self._parser.get_status_code()
        response.headers = Headers(self._header_list)
        self._header_list = []
        if response.status_code < 200:  # 1xx: an interim answer; the real one follows
            return
        lower = response.headers
        self._until_close = (
            "content-length" not in lower
            and "chunked" not in lower.get("transfer-encoding", "").lower()
            and response.status_code not in _NO_BODY_STATUSES
            and self._method != "HEAD"
        )
        if not self._head.done():
            self._head.set_result(response)

    def on_body(self, body: bytes) -> None:
        if self._response is not None:
            self._response._feed(body)

    def on_message_complete(self) -> None:
        response = self._response
        if response is None or response.status_code < 200:
            return
        self._response = None
        if not self._parser.should_keep_alive():
            self.closed = True
        response._end()

    # -- the pool's side ---------------------------------------------------------------------
    def request(self, method: str, head: bytes, body: bytes) -> asyncio.Future[Response]:
        assert self.transport is not None
        self._method = method
        self._response = Response(self)
        self._head = asyncio.get_running_loop().create_future()
        self._received = False
        if len(body) < 65536:
            self.transport.write(head + body)
        else:
            self.transport.writelines([head, body])
        return self._head

    def finished(self, response: Response) -> None:
        """The answer was read to its end: keep the connection for the next request."""
        if not self.closed and self._response is None:
            self.used, self.idle_since = True, time.monotonic()
            self.pool._release(self)
        else:
            self.close()

    def pause(self) -> None:
        if not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self._paused and self.transport is not None and not self.closed:
            self._paused = False
            self.transport.resume_reading()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _broken(self, why: str) -> None:
        self.closed = True
        error = UpstreamError(why)
        if self._head is not None and not self._head.done():
            self._head.set_exception(error)
        if self._response is not None:
            self._response._fail(error)
            self._response = None
        if self.transport is not None:
            self.transport.close()


class Upstream:
    """Connections to the runners, kept per origin (``http://127.0.0.1:<port>``)."""

    def __init__(self) -> None:
        self._idle: dict[str, list[_Connection]] = {}

    async def send(
        self, method: str, url: str, *, content: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> Response:
        """Send the request; the Response once its head arrived (read its body, then ``aclose`` it).
        UpstreamError if the runner cannot be reached or answers no valid HTTP."""
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        head = _head(method, target, parts.netloc, content, headers or {})
        while True:
            connection = self._idle_connection(origin) or await self._connect(
                origin, parts.hostname or "localhost", parts.port or 80
            )
            try:
                return await connection.request(method, head, content)
            except UpstreamError:
                # a kept connection the runner closed while idle (nothing of an answer came): retry afresh
                if connection.used and not connection._received:
                    continue
                raise
            except asyncio.CancelledError:  # a timeout or a caller gone: the answer will never be read
                connection.close()
                raise

    async def aclose(self) -> None:
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()

    def _idle_connection(self, origin: str) -> _Connection | None:
        connections = self._idle.get(origin)
        now = time.monotonic()
        while connections:
            connection = connections.pop()
            if not connection.closed and now - connection.idle_since < IDLE_SECONDS:
                return connection
            connection.close()
        return None

    async def _connect(self, origin: str, host: str, port: int) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, connection = await loop.create_connection(lambda: _Connection(self, origin), host, port)
        except OSError as exc:
            raise UpstreamError(f"cannot connect to {origin} ({exc})") from None
        return connection

    def _release(self, connection: _Connection) -> None:
        connections = self._idle.setdefault(connection.origin, [])
        connections.append(connection)
        if len(connections) > KEEP_IDLE:
            connections.pop(0).close()


def _head(method: str, target: str, host: str, content: bytes, headers: Mapping[str, str]) -> bytes:
    """The request line and headers (the runner's own ``host``, the body's length)."""
    lines = [f"{method} {target} HTTP/1.1", f"host: {host}"]
    for name, value in headers.items():
        if name.lower() not in _OWN_HEADERS:
            lines.append(f"{name}: {value}")
    if content or method in ("POST", "PUT", "PATCH"):
        lines.append(f"content-length: {len(content)}")
    if any("\r" in line or "\n" in line for line in lines):
        raise ValueError("a header name or value contains a line break")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
