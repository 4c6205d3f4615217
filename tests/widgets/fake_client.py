"""A stand-in for fal_notebook.client in widget unit tests: exactly the interface the Playground uses
(``openapi``, ``request``, ``submit`` → handle with ``iter_events``/``result``/``cancel``, ``stream``, and the
``realtime``/``websocket`` sessions), with the client's own event and error classes, answering from a
function (each log entry yielded once, as the client's ``iter_events`` does). The integration tests
use the real client against the local gateway."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
from websockets.exceptions import ConnectionClosedOK
from websockets.frames import Close

from fal_notebook.errors import RequestError
from fal_notebook.protocol import resolve_address
from fal_notebook.wire import Completed, InProgress, Queued


def request_error(status_code: int, detail: Any, request_id: str = "") -> RequestError:
    suffix = f" (request id {request_id})" if request_id else ""
    return RequestError(
        f"alice/painter: the app failed (HTTP {status_code}): {detail}.{suffix}",
        status_code=status_code,
        detail=detail,
        request_id=request_id,
    )


def log(message: str, second: int = 0) -> dict:
    return {"timestamp": f"2026-11-28T12:00:{second:02d}.000000", "message": message, "level": "INFO"}


class FakeHandle:
    def __init__(self, client: FakeClient, request_id: str, path: str, arguments: Any):
        self.client, self.request_id, self.path, self.arguments = client, request_id, path, arguments
        self.cancelled = threading.Event()

    def iter_events(self, logs: bool = True):
        yield Queued(position=2)
        yield Queued(position=0)
        yield InProgress(logs=[log("loading model", 1)])
        yield InProgress(logs=[log("step 1/2", 2)])
        if self.client.gate is not None:
            self.client.started.set()
            while not self.client.gate.wait(0.01):
                if self.cancelled.is_set():
                    yield Completed(logs=[], metrics={}, error="cancelled", error_type="Cancelled")
                    return
        yield Completed(logs=[log("done", 3)], metrics={"inference_time": 0.25})

    def result(self, timeout: float | None = None) -> Any:
        if self.cancelled.is_set():
            raise request_error(499, "Request cancelled", self.request_id)
        return self.client.respond(self.path, self.arguments)

    def cancel(self) -> None:
        self.client.cancels.append(self.request_id)
        self.cancelled.set()


class FakeClient:
    """``respond(path, arguments)`` returns the output or raises; ``gate`` (an Event) holds the call
    in progress until set."""

    def __init__(
        self,
        document: dict,
        respond: Callable[[str, Any], Any],
        endpoint_id: str = "alice/painter",
        url: str | None = None,
    ):
        self.document, self.respond, self.endpoint_id, self.url = document, respond, endpoint_id, url
        self.address = resolve_address(url or endpoint_id)
        self.calls: list[tuple[str, Any]] = []
        self.cancels: list[str] = []
        self.gate: threading.Event | None = None
        self.started = threading.Event()
        self.sessions: list[FakeSession] = []
        self.refuse: Exception | None = None  # raised when a session is opened
        self.opening = threading.Event()  # set: sessions open at once; clear: they wait for it
        self.opening.set()

    def openapi(self) -> dict:
        return self.document

    @contextlib.contextmanager
    def realtime(self, path: str = "/realtime") -> Iterator[FakeSession]:
        """As the client's: ``recv`` gives outputs (dicts), None once closed, and raises the app's errors."""
        yield from self._session(path, text=False)

    @contextlib.contextmanager
    def websocket(self, path: str) -> Iterator[FakeSession]:
        """As a websockets connection: text frames; ``recv`` raises ConnectionClosedOK once closed."""
        yield from self._session(path, text=True)

    def _session(self, path: str, *, text: bool) -> Iterator[FakeSession]:
        self.opening.wait(10)
        if self.refuse is not None:
            raise self.refuse
        session = FakeSession(self, path, text)
        self.sessions.append(session)
        try:
            yield session
        finally:
            session.close()

    def request(self, method: str, path: str = "/", **options: Any) -> httpx.Response:
        """A plain HTTP request: ``respond(path, (method, options))`` gives the answer (an httpx.Response,
        or JSON for a 200)."""
        self.calls.append((f"{method} {path}", options))
        answer = self.respond(path, (method, options))
        if isinstance(answer, httpx.Response):
            return answer
        return httpx.Response(200, json=answer, request=httpx.Request(method, f"http://app.test{path}"))

    def submit(self, arguments: Any, path: str = "/") -> FakeHandle:
        self.calls.append((path, arguments))
        return FakeHandle(self, f"req-{len(self.calls)}", path, arguments)

    def stream(self, arguments: Any, path: str = "/"):
        path = path.rstrip("/") + "/stream"  # as the client: POST <path>/stream
        self.calls.append((path, arguments))
        yield from self.respond(path, arguments)


class FakeSession:
    """Answers each message with the outputs of ``respond(path, message)`` (a list), or the error it
    raises (after which it closes, as a realtime app does after its error message)."""

    def __init__(self, client: FakeClient, path: str, text: bool):
        self.client, self.path, self.text = client, path, text
        self.sent: list[Any] = []
        self.closed = threading.Event()
        self._inbox: queue.Queue[Any] = queue.Queue()

    def send(self, message: Any) -> None:
        if self.closed.is_set():
            raise ConnectionClosedOK(Close(1000, ""), Close(1000, ""), True)
        self.sent.append(message)
        try:
            outputs = self.client.respond(self.path, message)
        except Exception as error:
            self._inbox.put(error)
            return
        for output in outputs:
            self._inbox.put(output)

    def recv(self, timeout: float | None = None) -> Any:
        item = self._inbox.get(timeout=timeout)
        if isinstance(item, Exception):
            self.closed.set()
            raise item
        if item is None:
            if self.text:
                raise ConnectionClosedOK(Close(1000, ""), Close(1000, ""), True)
            return None
        return item

    def close(self) -> None:
        if not self.closed.is_set():
            self.closed.set()
            self._inbox.put(None)
