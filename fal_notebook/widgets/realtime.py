"""The Playground's session with an endpoint reached over a websocket: fal's ``@fal.realtime``
endpoints (messages of the input model in, outputs out, msgpack frames) and ``is_websocket=True``
endpoints (text frames). Connect / Send / Disconnect, the connection's state, the outputs as they
arrive (newest first, rendered as a call's output is) and what went wrong, said plainly.

A worker thread opens the connection and reads from it until it closes; Send writes from the
caller's thread (a websockets connection takes one reader and one writer at a time).
"""

from __future__ import annotations

import contextlib
import html
import json
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

import ipywidgets as W
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK

from ..errors import FalNotebookError, InputError, RealtimeError, RequestError
from ..schema import Endpoint
from ..wire import REALTIME, REALTIME_CONTENT_TYPE, REALTIME_TIMEOUT
from .outputs import render_output

#: Outputs shown (newest first) and kept in ``received``.
SHOWN = 20
KEPT = 200


class Session(Protocol):
    """An open connection as the view uses it."""

    def send(self, message: Any) -> None: ...

    def recv(self, timeout: float | None = None) -> Any:
        """The next output; None once the connection closed normally."""

    def close(self) -> None: ...


class TextSession:
    """An ``is_websocket=True`` endpoint's connection as a Session: text frames, read as JSON where they are."""

    def __init__(self, connection: Any):
        self.connection = connection

    def send(self, message: Any) -> None:
        self.connection.send(message if isinstance(message, str) else json.dumps(message))

    def recv(self, timeout: float | None = None) -> Any:
        try:
            frame = self.connection.recv(timeout)
        except ConnectionClosedOK:
            return None
        if isinstance(frame, bytes):
            return f"({len(frame)} bytes)"
        try:
            return json.loads(frame)
        except ValueError:
            return frame

    def close(self) -> None:
        self.connection.close()


class SessionView:
    """``buttons`` (Connect, Send, Disconnect) go under the form, ``panel`` (state, error, outputs)
    into the Result tab. ``message()`` gives the form's message, or raises InputError having marked
    the fields. ``state`` is ``idle``, ``connecting``, ``connected``, ``closed`` or ``failed``."""

    def __init__(self, client: Any, endpoint: Endpoint, message: Callable[[], Any]):
        self.client, self.endpoint, self._message = client, endpoint, message
        self.state = "idle"
        self.error = ""
        self.sent = 0
        self.received: list[Any] = []
        self._session: Session | None = None
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._connect = W.Button(description="Connect", icon="plug")
        self._send = W.Button(description="Send", icon="paper-plane")
        self._disconnect = W.Button(description="Disconnect", icon="times")
        self._connect.on_click(lambda _: self._clicked(self.connect))
        self._send.on_click(lambda _: self._clicked(self.send))
        self._disconnect.on_click(lambda _: self.disconnect())
        self.buttons = W.HBox([self._connect, self._send, self._disconnect])
        self._status = W.HTML()
        self._error = W.HTML()
        self._error.add_class("fal-pg-message")
        self._outputs = W.VBox()
        self.panel = W.VBox([self._status, self._error, self._outputs])
        self._unusable = _unusable(endpoint)
        if self._unusable:
            self.error = self._unusable
        self._show()

    # -- actions ------------------------------------------------------------------------------
    def connect(self) -> None:
        """Open the connection in the background (``state`` goes ``connecting``, then ``connected``)."""
        if self._unusable:
            raise FalNotebookError(self._unusable)
        with self._lock:
            if self.state in ("connecting", "connected"):
                return
            self.state, self.error, self.sent, self.received = "connecting", "", 0, []
            self._closing.clear()
            self._thread = threading.Thread(target=self._run, daemon=True, name="fal-playground-session")
        self._outputs.children = []
        self._show()
        self._thread.start()

    def send(self) -> None:
        """Send the form's message (InputError, with the fields marked, when it does not fit)."""
        message = self._message()
        session = self._session
        if session is None or self.state != "connected":
            raise FalNotebookError(f"Not connected to {self.endpoint.path}: press Connect first.")
        try:
            session.send(message)
        except ConnectionClosed:
            return  # the reader says why the connection ended
        self.sent += 1
        self._show()

    def disconnect(self) -> None:
        """Close the connection (the reader then shows ``closed``)."""
        self._closing.set()
        session = self._session
        if session is not None:
            session.close()

    def wait(self, timeout: float | None = None) -> None:
        """Until the connection has ended (tests, scripts)."""
        if self._thread is not None:
            self._thread.join(timeout)

    # -- the worker ---------------------------------------------------------------------------
    def _open(self) -> contextlib.AbstractContextManager[Any]:
        if self.endpoint.protocol == REALTIME:
            return self.client.realtime(self.endpoint.path)
        return self.client.websocket(self.endpoint.path)

    def _run(self) -> None:
        state, error = "closed", ""
        try:
            with self._open() as connection:
                session = connection if self.endpoint.protocol == REALTIME else TextSession(connection)
                self._session = session
                if self._closing.is_set():  # Disconnect was pressed while connecting
                    return
                self._set("connected")
                while (output := session.recv()) is not None:
                    self._show_output(output)
        except RealtimeError as e:  # the app's error message, or a broken connection
            # fal's app ends a session it did not close with TIMEOUT: a note, not a failure
            state, error = ("closed" if e.error_type == REALTIME_TIMEOUT else "failed"), str(e)
        except RequestError as e:  # the handshake was refused
            state, error = "failed", f"Could not connect: {e}"
        except ConnectionClosed as e:  # a websocket endpoint's connection ended without a normal close
            if _closed_by_the_app(e):
                state, error = "closed", f"The app closed the connection to {self.endpoint.path} ({_closed(e)})."
            else:
                state, error = "failed", f"The connection to {self.endpoint.path} broke ({_closed(e)})."
        except Exception as e:  # shown in the widget: the worker has no one else to tell
            state, error = "failed", f"{type(e).__name__}: {e}"
        finally:
            self._session = None
            if self._closing.is_set():  # what the app said after Disconnect is not news
                state, error = "closed", ""
            elif state == "closed" and not error:
                error = f"The app closed the connection to {self.endpoint.path}."
            self.error = error
            self._set(state)

    def _set(self, state: str) -> None:
        self.state = state
        self._show()

    def _show_output(self, output: Any) -> None:
        self.received = [*self.received[-(KEPT - 1) :], output]
        number = len(self.received)
        stamp = datetime.now().strftime("%H:%M:%S")
        head = W.HTML(f'<div class="fal-pg-help">#{number} · {stamp}</div>')
        item = W.VBox([head, render_output(output, self.endpoint.output)])
        item.add_class("fal-pg-history-entry")
        self._outputs.children = (item, *self._outputs.children[: SHOWN - 1])
        self._show()

    # -- showing ------------------------------------------------------------------------------
    def _show(self) -> None:
        path, counts = self.endpoint.path, f"{self.sent} sent · {len(self.received)} received"
        text, css = {
            "idle": ("Not connected", "idle"),
            "connecting": (f"Connecting to {path}…", "running"),
            "connected": (f"Connected to {path} · {counts}", "running"),
            "closed": (f"Disconnected · {counts}", "cancelled"),
            "failed": (f"Failed · {counts}", "failed"),
        }[self.state]
        self._status.value = f'<div class="fal-pg-status fal-pg-status-{css}">{html.escape(text)}</div>'
        css = "fal-pg-error" if self.state == "failed" or self._unusable else "fal-pg-help"
        self._error.value = f'<div class="{css}">{html.escape(self.error)}</div>' if self.error else ""
        busy, connected = self.state in ("connecting", "connected"), self.state == "connected"
        self._connect.disabled = busy or bool(self._unusable)
        self._send.disabled = not connected
        self._disconnect.disabled = not busy
        # the next step stands out: Connect until connected, then Send
        self._connect.button_style = "" if busy else "primary"
        self._send.button_style = "primary" if connected else ""

    def _clicked(self, action: Callable[[], None]) -> None:
        try:
            action()
        except InputError:
            pass  # the fields show what is wrong
        except FalNotebookError as e:
            self.error = str(e)
            self._show()


def _unusable(endpoint: Endpoint) -> str:
    """Why the Playground cannot speak to ``endpoint`` ('' when it can)."""
    if endpoint.protocol == REALTIME and endpoint.content_type != REALTIME_CONTENT_TYPE:
        return (
            f"{endpoint.path} exchanges {endpoint.content_type} messages, which only the app's own encoder writes: "
            "call it with fal_client.realtime(..., encode_message=..., decode_message=...)."
        )
    return ""


def _closed_by_the_app(error: ConnectionClosed) -> bool:
    """The app closed the connection on purpose, with a code of its own (3000-4999: frameworks' and
    applications' codes), rather than because something broke (1002-1015, or no close frame)."""
    return error.rcvd is not None and 3000 <= error.rcvd.code <= 4999


def _closed(error: ConnectionClosed) -> str:
    frame = error.rcvd or error.sent
    if frame is None:
        return "no close frame"
    return f"code {frame.code}" + (f": {frame.reason}" if frame.reason else "")


__all__ = ["SessionView"]
