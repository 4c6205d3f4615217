"""The gateway's HTTP server loop: uvicorn on uvloop with httptools' parser, each answer sent in one piece,
slow clients dropped.

- uvicorn writes an answer's head and its body with two system calls, and each wakes the caller; on
  a loaded machine a wake-up costs more than the work. Here an answer's writes within one turn of
  the event loop leave together (a streamed answer still leaves chunk by chunk: each chunk comes in
  a turn of its own).
- A connection that does not send its request line and headers within ``header_timeout`` seconds
  (from the connection, or from the end of the previous answer) is closed: slowloris clients hold
  no connection (the limit is ``Limits.header_timeout``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .limits import Limits


class _Corked:
    """A transport whose writes during one turn of the event loop go out as one."""

    def __init__(self, transport: asyncio.Transport):
        self._transport = transport
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        self._pending.append(bytes(data))

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending))

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def _flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def __getattr__(self, name: str) -> Any:  # everything else is the transport's own
        return getattr(self._transport, name)


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, writing through a corked transport, with a deadline for each
    request's line and headers."""

    header_timeout = Limits.header_timeout

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(_Corked(transport))  # type: ignore[arg-type]
        self._await_headers()

    def on_headers_complete(self) -> None:
        self._headers_arrived()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._headers_arrived()
        super().connection_lost(exc)

    def _await_headers(self) -> None:
        self._headers_arrived()
        self._header_deadline = self.loop.call_later(self.header_timeout, self._too_slow)

    def _headers_arrived(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _too_slow(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            self.transport.close()


def http_protocol(limits: Limits) -> type[HttpProtocol]:
    """The protocol class for uvicorn's ``http=`` setting, with the limits' header timeout."""
    return type("HttpProtocol", (HttpProtocol,), {"header_timeout": limits.header_timeout})
