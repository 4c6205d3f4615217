"""The Playground: a typed form from an app's schema, Run/Cancel, live status and logs, the rendered
output, code snippets and a history of calls — in the notebook.

Calls run in a worker thread through the client (``submit`` → ``iter_events`` → ``result``, or
``stream`` for streaming endpoints), so the kernel and the widgets stay responsive while they run.
Realtime and websocket endpoints get Connect/Send/Disconnect and the outputs as they arrive instead
(``realtime.py``); closing the Playground's widget closes the connection.
"""

from __future__ import annotations

import html
import json
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, Unpack, runtime_checkable

import httpx
import ipywidgets as W

from ..backends import Deployment, get_deployment
from ..client import HTTPOptions, connect
from ..credentials import fal_key
from ..errors import FalNotebookError, InputError, RequestError
from ..protocol import Address
from ..schema import MISSING, AppSchema, Endpoint, SchemaError, parse_openapi, request_form
from ..state import gateway_key_file
from ..validation import Issue, issues_from_422, prune, validate_object
from ..wire import Completed, InProgress, Queued
from .fields import FieldRow, ObjectControl, Uploader, data_uri, named_data_uri, read_data_uri
from .history import Call, HistoryStore
from .outputs import json_tree, render_output, timing_text
from .realtime import SessionView
from .snippets import LANGUAGES, request_snippets, snippets
from .style import stylesheet

_MAX_LOG_LINES = 500
_SHOWN_HISTORY = 20
_SNIPPET_SHOWN = 20_000
_TICK = 0.5


@runtime_checkable
class Client(Protocol):
    """What the Playground uses of a client (``fal_notebook.connect(...)`` gives one)."""

    @property
    def address(self) -> Address: ...

    def openapi(self) -> dict[str, Any]: ...

    def request(self, method: str, path: str = "/", **options: Unpack[HTTPOptions]) -> httpx.Response: ...

    def submit(self, arguments: Any, path: str = "/") -> Any: ...

    def stream(self, arguments: Any, path: str = "/") -> Iterator[Any]: ...

    def realtime(self, path: str = "/realtime") -> AbstractContextManager[Any]: ...

    def websocket(self, path: str) -> AbstractContextManager[Any]: ...


@dataclass(frozen=True)
class Connection:
    """What a Playground calls: a client, where its app lives, and the deployment it came from."""

    client: Client
    address: Address
    deployment: Deployment | None = None

    @property
    def name(self) -> str:
        return self.deployment.name if self.deployment else self.address.endpoint_id


def resolve_endpoint(source: str | Deployment | Client) -> Connection:
    """A deployment gives its client; a client is taken as it is; a string is a deployed app's name,
    else an endpoint id or URL to connect to."""
    if isinstance(source, str):
        name = source
        try:
            source = get_deployment(name)
        except LookupError:
            client = connect(name)
            return Connection(client, client.address)
    if isinstance(source, Deployment):
        return Connection(source.client(), source.address, source)
    if isinstance(source, Client):
        return Connection(source, source.address)
    raise FalNotebookError(
        f"Playground needs a Deployment (fal_notebook.deploy(...)) or a client (fal_notebook.connect(...)), "
        f"not {type(source).__name__}."
    )


class Playground:
    """``Playground(client_or_deployment, endpoint=None)``: the app's form and its calls (a string
    names a deployed app, or is an endpoint id such as ``"owner/app"``). The forms come from the app's
    OpenAPI schema (its POST endpoints, and GET routes); the last one, ``"*"``, sends any HTTP request
    (method, path, query, JSON or form body, files), so a server without a schema has a Playground too.
    ``endpoint`` picks the form shown first (default: the schema's first endpoint).

    ``.widget`` is the root widget (a Playground also displays itself), ``.fields`` maps input names
    to their :class:`FieldRow` (``.value`` reads and writes JSON), ``.set_values(dict)`` fills the
    form, ``.submit()`` validates and starts a call (returns a ``Future`` of the output),
    ``.result`` is the last output, ``.history`` the calls made (newest last). On a realtime or
    websocket endpoint, ``.connect()``, ``.send()`` (the form's message) and ``.disconnect()`` drive
    ``.session`` (its ``state``, ``received`` outputs, ``error``); ``.close()`` disconnects and closes
    the widget.
    """

    def __init__(
        self,
        client_or_deployment: str | Deployment | Client,
        endpoint: str | None = None,
        *,
        uploader: Uploader | None = None,
        history_limit: int = 50,
    ):
        connection = resolve_endpoint(client_or_deployment)
        self.client, self.deployment, self.address = connection.client, connection.deployment, connection.address
        self.endpoint_id: str = self.address.endpoint_id
        self.name: str = connection.name
        # The address's kind, not the id: a fal app may be owned by someone called "local".
        self.local = self.address.kind == "local"
        self.local_url: str | None = self.address.url if self.address.kind != "fal" else None
        self.schema, self.schema_note = read_schema(self.client)
        self.uploader = uploader or default_uploader(self.address)
        self.store = HistoryStore(self.endpoint_id or self.name or "app", history_limit)
        self.history: list[Call] = self.store.load()
        self.result: Any = None
        self._lock = threading.Lock()
        self._running: Call | None = None
        self._handle: Any = None
        self._cancelled = threading.Event()
        self._logs: list[str] = []
        self._state = "Ready"
        self._started = time.monotonic()
        self.session: SessionView | None = None
        self._build()
        self.select(endpoint or self.schema.endpoints[0].path)

    # -- public API ---------------------------------------------------------------------------
    @property
    def endpoint(self) -> Endpoint:
        return self._endpoint

    @property
    def fields(self) -> dict[str, FieldRow]:
        return self.form.rows

    @property
    def arguments(self) -> dict[str, Any]:
        """What Run would send now: the form's values without optional fields left at their default."""
        return prune(self.endpoint.form, self.form.get())

    def select(self, endpoint: str) -> None:
        """Show the form of an endpoint (``"/"``, ``"/stream"``...), back at its examples and defaults;
        a connection to another endpoint is closed."""
        self._endpoint = self.schema.endpoint(endpoint)
        plain = self._endpoint.protocol == "request"
        uploader = named_data_uri if plain or self._endpoint.content_type else self.uploader  # multipart: names kept
        self.form = ObjectControl(self._endpoint.form, uploader, split=_crowded(self._endpoint))
        self._form_box.children = [self.form.widget]
        self._message.value = _note_html(self.schema_note) if plain else ""
        if self.session is not None and self.session.endpoint != self._endpoint:
            self.disconnect()
            self.session = None
        if self._endpoint.protocol in ("http", "request"):
            self._buttons.children = [self._run, self._cancel, self._reset]
            self._result_tab.children = [self._status_line, self._log_view, self._output_box]
        elif self.session is None:
            self.session = SessionView(self.client, self._endpoint, self._session_message)
            self._buttons.children = [*self.session.buttons.children, self._reset]
            self._result_tab.children = [self.session.panel]
        if self._picker.value != self._endpoint.path:
            self._picker.value = self._endpoint.path
        self._watch(self.form.widget)
        self._refresh_code()

    def set_values(self, values: Mapping[str, Any], *, reset: bool = False) -> None:
        """Fill the form: the named fields take the values (JSON); with ``reset`` the others go
        back to their defaults."""
        try:
            self.form.set(dict(values), partial=not reset)
        except ValueError as e:
            raise InputError(f"Cannot put these values into the {self.endpoint.path} form: {e}") from None
        self.form.clear_issues()
        self._refresh_code()

    def submit(self) -> Future:
        """Validate the form and start the call in the background. Raises :class:`InputError`
        (and marks the fields) when the values do not fit the schema: nothing is sent then."""
        if self.session is not None:
            raise FalNotebookError(
                f"{self.endpoint.path} is a {self.endpoint.protocol} endpoint: connect() to it, then send() messages."
            )
        values = self._valid_values("input")
        if self.endpoint.protocol == "request":
            try:
                plain_request(values)  # a request it cannot make is said before anything is sent
            except InputError as exc:
                self._message.value = _error_html(str(exc))
                raise
        with self._lock:
            if self._running is not None:
                raise FalNotebookError("A call is already running: wait for it or press Cancel.")
            call = self._running = Call(self.endpoint.path, prune(self.endpoint.form, values))
        future: Future = Future()
        self._cancelled.clear()
        self._set_busy(True)
        threading.Thread(
            target=self._execute, args=(call, self.endpoint, future), daemon=True, name="fal-playground"
        ).start()
        return future

    def cancel(self) -> None:
        """Cancel the running call (the queue request too)."""
        call = self._running
        if call is None:
            return
        self._cancelled.set()
        self._set_state(call, "Cancelling…")
        handle = self._handle
        if handle is not None:
            try:
                handle.cancel()
            except Exception as e:  # the call may have finished meanwhile; say so, do not fail
                self._message.value = _error_html(f"Cancel failed: {e}")

    def connect(self) -> None:
        """Connect to the realtime or websocket endpoint shown (in the background: see ``session.state``)."""
        self._session_view().connect()

    def send(self) -> None:
        """Send the form's values as one message of the session (InputError, with the fields marked,
        when they do not fit)."""
        self._session_view().send()

    def disconnect(self) -> None:
        """Close the connection to a realtime or websocket endpoint, if there is one."""
        if self.session is not None:
            self.session.disconnect()

    def close(self) -> None:
        """Disconnect, and close the widget."""
        self.disconnect()
        self.widget.close()

    def code(self, language: str = "Python") -> str:
        """The snippet for the current form values (``Python``, ``JavaScript`` or ``cURL``)."""
        key_file = gateway_key_file() if self.local else None
        key_file = key_file if key_file and key_file.is_file() else None
        if self.endpoint.protocol in ("http", "request") and not self.endpoint.queued:  # a plain HTTP request
            method, path, options = self._plain_request(self.arguments)
            return request_snippets(
                self.client.address.app_url,
                method,
                path,
                options,
                key_file=str(key_file) if key_file else None,
                fal_key=self.address.kind == "fal",
            )[language]
        path, body = self.endpoint.request(self.arguments)
        return snippets(
            self.endpoint_id,
            path,
            body,
            local_url=self.local_url,
            streaming=self.endpoint.streaming,
            key_file=str(key_file) if key_file else None,
            protocol=self.endpoint.protocol,
        )[language]

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return {**self.widget._repr_mimebundle_(**kwargs), "text/plain": repr(self)}

    def __repr__(self) -> str:
        return f"Playground({self.endpoint_id or self.name!r}, endpoint={self.endpoint.path!r})"

    # -- layout -------------------------------------------------------------------------------
    def _build(self) -> None:
        endpoint_id = f' <code class="fal-pg-name">{html.escape(self.endpoint_id)}</code>'
        title = W.HTML(
            f'<span class="fal-pg-title">{html.escape(self.name or "Playground")}</span>'
            + (endpoint_id if self.endpoint_id != self.name else "")
        )
        self._picker = W.Dropdown(
            options=[(_endpoint_label(e), e.path) for e in self.schema.endpoints],
            layout=W.Layout(width="auto", max_width="50%"),
        )
        self._picker.observe(
            lambda change: self.select(change["new"]) if change["new"] != self._endpoint.path else None, "value"
        )
        header = W.HBox([title, self._picker], layout=W.Layout(justify_content="space-between", width="100%"))
        header.add_class("fal-pg-header")

        self._form_box = W.VBox()
        self._message = W.HTML()
        self._message.add_class("fal-pg-message")
        self._run = W.Button(description="Run", icon="play", button_style="primary")
        self._cancel = W.Button(description="Cancel", icon="stop", disabled=True)
        self._reset = W.Button(description="Reset", icon="undo", tooltip="Back to the examples and defaults")
        self._run.on_click(lambda _: self._clicked_run())
        self._cancel.on_click(lambda _: self.cancel())
        self._reset.on_click(lambda _: self.select(self.endpoint.path))
        self._buttons = W.HBox([self._run, self._cancel, self._reset])
        form_column = W.VBox(
            [self._form_box, self._message, self._buttons],
            layout=W.Layout(flex="1 1 380px", min_width="300px", padding="0 8px 0 0"),
        )

        self._status_line = W.HTML()
        self._log_view = W.HTML()
        self._output_box = W.VBox()
        self._result_tab = W.VBox([self._status_line, self._log_view, self._output_box])
        self._language = W.ToggleButtons(options=LANGUAGES, style={"button_width": "auto"})
        self._language.observe(lambda _: self._refresh_code(), "value")
        self._code_view = W.HTML()
        code_tab = W.VBox([self._language, self._code_view])
        self._history_box = W.VBox()
        self._tabs = W.Tab([self._result_tab, code_tab, self._history_box], titles=("Result", "Code", "History"))
        self._tabs.observe(lambda _: self._refresh_code(), "selected_index")
        result_column = W.VBox([self._tabs], layout=W.Layout(flex="1 1 380px", min_width="300px"))

        columns = W.HBox([form_column, result_column], layout=W.Layout(flex_flow="row wrap", width="100%"))
        self.widget = W.VBox([stylesheet(), header, columns])
        self.widget.add_class("fal-pg")
        self.widget.add_class("fal-pg-playground")
        self.widget.observe(lambda change: self.disconnect() if change["new"] is None else None, "comm")
        self._status("Ready", "idle")
        self._render_history()

    def _watch(self, widget: W.Widget) -> None:
        """Keep the Code tab in step with the form while it is shown."""
        if "value" in widget.keys and not isinstance(widget, W.FileUpload):
            widget.observe(lambda _: self._refresh_code(), "value")
        for child in getattr(widget, "children", ()):
            self._watch(child)

    def _refresh_code(self) -> None:
        if self._tabs.selected_index != 1:
            return
        values = self.form.get()
        broken = validate_object(self.endpoint.fields, values)
        if broken:
            items = "".join(f"<li>{html.escape(_issue_text(i))}</li>" for i in broken)
            self._code_view.value = f'<div class="fal-pg-error">Fix the form to get code:<ul>{items}</ul></div>'
            return
        text = self.code(self._language.value)
        if len(text) > _SNIPPET_SHOWN:
            text = text[:_SNIPPET_SHOWN] + f"\n… ({len(text)} characters: Playground.code() gives all of it)"
        self._code_view.value = f'<pre class="fal-pg-snippet">{html.escape(text)}</pre>'

    # -- sessions (realtime and websocket endpoints) ----------------------------------------
    def _session_view(self) -> SessionView:
        if self.session is None:
            raise FalNotebookError(
                f"{self.endpoint.path} is called with Run (submit()): connect() is for realtime and websocket "
                "endpoints."
            )
        return self.session

    def _session_message(self) -> Any:
        """The form's values as one message, or InputError with the fields marked."""
        return self.endpoint.request(prune(self.endpoint.form, self._valid_values("message")))[1]

    def _valid_values(self, what: str) -> dict[str, Any]:
        """The form's values, or InputError (the fields marked) when they do not fit the schema."""
        values = self.form.get()
        issues = validate_object(self.endpoint.fields, values)
        self._show_issues(issues)
        if issues:
            raise InputError(f"The {what} is invalid: " + "; ".join(_issue_text(i) for i in issues), issues)
        return values

    # -- running a call -----------------------------------------------------------------------
    def _clicked_run(self) -> None:
        try:
            self.submit()
        except InputError:
            pass  # the fields show what is wrong
        except FalNotebookError as e:
            self._message.value = _error_html(str(e))

    def _execute(self, call: Call, endpoint: Endpoint, future: Future) -> None:
        started = time.monotonic()
        self._logs = []
        self._log_view.value = ""
        self._output_box.children = []
        self._tabs.selected_index = 0
        self._started = started
        self._set_state(call, "Submitting…")
        threading.Thread(target=self._tick, args=(call,), daemon=True).start()
        output: Any = None
        failure: Exception | None = None
        try:
            path, body = endpoint.request(call.arguments)
            if not endpoint.queued:
                output = self._send_plain(call)
            elif endpoint.streaming:
                output = self._stream(call, endpoint, path, body)
            else:
                output = self._queue(call, endpoint, path, body)
            stopped = endpoint.streaming and self._cancelled.is_set()  # a partial output
            call.finish("CANCELLED" if stopped else "COMPLETED", output=output)
            if self._cancelled.is_set() and not stopped:
                self._message.value = _note_html("The app finished the call before the cancellation reached it.")
            self._show_output(output, endpoint)
        except Exception as e:  # shown in the widget and given to the future's owner
            failure = e
            call.finish("CANCELLED" if self._cancelled.is_set() else "FAILED", error=_describe(e))
            self._show_failure(e, call)
        finally:
            self._handle = None
            self._finish(call, time.monotonic() - started)
        if failure is not None:
            future.set_exception(failure)
        else:
            future.set_result(output)

    def _queue(self, call: Call, endpoint: Endpoint, path: str, body: Any) -> Any:
        handle = self._handle = self.client.submit(body, path=path)
        call.request_id = str(getattr(handle, "request_id", "") or "")
        if self._cancelled.is_set():
            handle.cancel()
        for event in handle.iter_events(logs=True):
            if isinstance(event, Queued):
                self._set_state(call, f"In queue (position {event.position})")
                continue
            if isinstance(event, InProgress):
                self._set_state(call, "Running")
            elif isinstance(event, Completed):
                call.metrics = dict(event.metrics)
            self._add_logs(event.logs)
        return handle.result()

    def _plain_request(self, values: Mapping[str, Any]) -> tuple[str, str, dict[str, Any]]:
        """(method, path, the client's request options) of a plain HTTP call with the form's values."""
        if self.endpoint.protocol == "request":
            return plain_request(values)
        path, body = self.endpoint.request(values)
        if not self.endpoint.content_type:
            return self.endpoint.method, path, {}
        files, data = [], {}
        for name, value in (body or {}).items():
            if self.endpoint.field(name).shape.media:
                files += [(name, read_data_uri(uri)) for uri in (value if isinstance(value, list) else [value])]
            else:
                data[name] = value if isinstance(value, str) else json.dumps(value)
        return self.endpoint.method, path, {"data": data or None, "files": files or None}

    def _send_plain(self, call: Call) -> Any:
        """Send the request as it is (no queue); the answer is the output (JSON, text, or a ``data:``
        URI for other content); an error status fails the call with the answer's text."""
        method, path, options = self._plain_request(call.arguments)
        self._set_state(call, f"{method} {path}")
        response = self.client.request(method, path, **options)
        output = response_output(response)
        call.metrics = {"status_code": response.status_code}
        if response.is_error:
            text = output if isinstance(output, str) else json.dumps(output)
            raise FalNotebookError(f"{method} {path} answered HTTP {response.status_code}: {text[:500]}")
        return output

    def _stream(self, call: Call, endpoint: Endpoint, path: str, body: Any) -> Any:
        self._set_state(call, "Streaming")
        output = None
        for partial in self.client.stream(body, path=path.removesuffix("stream")):  # the client adds /stream
            output = partial
            self._output_box.children = [render_output(partial, endpoint.output)]
            if self._cancelled.is_set():
                break
        return output

    def _set_state(self, call: Call, text: str) -> None:
        self._state = text
        self._show_state(call)

    def _show_state(self, call: Call) -> bool:
        with self._lock:  # never after _finish has written the final status
            if self._running is not call:
                return False
            self._status(f"{self._state} · {time.monotonic() - self._started:.1f} s", "running")
            return True

    def _tick(self, call: Call) -> None:
        while self._show_state(call):
            time.sleep(_TICK)

    def _add_logs(self, entries: Iterable[Mapping[str, Any]]) -> None:
        """New log entries (the client yields each one once) at the end of the log view."""
        lines = [f"{str(e.get('timestamp', ''))[11:19]} {e.get('message', '')}".strip() for e in entries]
        if lines:
            self._logs = (self._logs + lines)[-_MAX_LOG_LINES:]
            self._log_view.value = f'<pre class="fal-pg-logs">{html.escape(chr(10).join(self._logs))}</pre>'

    # -- showing results ----------------------------------------------------------------------
    def _show_output(self, output: Any, endpoint: Endpoint) -> None:
        self._output_box.children = [render_output(output, endpoint.output)]

    def _show_failure(self, error: Exception, call: Call) -> None:
        status = getattr(error, "status_code", None)
        detail = getattr(error, "detail", None)
        if isinstance(detail, Mapping) and "detail" in detail:
            detail = detail["detail"]
        if status == 422 and detail:
            left = self._show_issues(issues_from_422(detail))
            text = "The app rejected the input (HTTP 422)"
            if left:
                text += ": " + "; ".join(_issue_text(i) for i in left)
        elif call.status == "CANCELLED":
            reason = str(detail).rstrip(".") if isinstance(detail, str) and detail else "the request was stopped"
            text = f"Cancelled: {reason}."
        else:
            text = _describe(error)
        request_id = getattr(error, "request_id", None) or call.request_id
        if request_id and request_id not in text:
            text += f" (request id {request_id})"
        self._message.value = _note_html(text) if call.status == "CANCELLED" else _error_html(text)

    def _show_issues(self, issues: list[Issue]) -> list[Issue]:
        """Mark the fields; the issues no field takes are shown under the form (and returned)."""
        self.form.clear_issues()
        left = self.form.show_issues(issues)
        self._message.value = _error_html("; ".join(_issue_text(i) for i in left)) if left else ""
        return left

    def _finish(self, call: Call, total: float) -> None:
        """Show how the call ended, then publish it in one step, before its future resolves: into
        ``.history`` and, when it completed, as ``.result``."""
        with self._lock:
            self._running = None  # the ticker stops: the final status below stays
        self._set_busy(False)
        words = {"COMPLETED": "Completed", "FAILED": "Failed", "CANCELLED": "Cancelled"}
        extra = timing_text(total, call.metrics)
        self._status(f"{words.get(call.status, call.status)} · {extra}", call.status.lower())
        with self._lock:
            self.history.append(call)
            if call.status == "COMPLETED":
                self.result = call.output
        try:
            self.store.add(call)
        except OSError as e:
            self._message.value = _error_html(f"History not saved: {e}")
        self._render_history()

    def _set_busy(self, busy: bool) -> None:
        self._run.disabled = busy
        self._cancel.disabled = not busy

    def _status(self, text: str, state: str) -> None:
        self._status_line.value = f'<div class="fal-pg-status fal-pg-status-{state}">{html.escape(text)}</div>'

    # -- history ------------------------------------------------------------------------------
    def _render_history(self) -> None:
        calls = self.history[::-1][:_SHOWN_HISTORY]
        if not calls:
            self._history_box.children = [W.HTML('<div class="fal-pg-help">No calls yet.</div>')]
            return
        self._history_box.children = [self._history_entry(c) for c in calls]

    def _history_entry(self, call: Call) -> W.Widget:
        when = datetime.fromtimestamp(call.started).strftime("%Y-%m-%d %H:%M:%S")
        duration = f" · {call.duration:.2f} s" if call.duration is not None else ""
        request = f" · <code>{html.escape(call.request_id)}</code>" if call.request_id else ""
        summary = (
            f'<span class="fal-pg-status-{call.status.lower()}">{call.status.lower()}</span> '
            f"<code>{html.escape(call.endpoint)}</code> · {when}{duration}{request}"
        )
        load = W.Button(
            description="Load",
            icon="upload",
            tooltip="Put these inputs back into the form",
            layout=W.Layout(width="auto"),
        )
        load.on_click(lambda _: self.load(call))
        details = json_tree(
            {"input": call.arguments, "output": call.output}
            if not call.error
            else {"input": call.arguments, "error": call.error}
        )
        body = W.HTML(
            f'<div class="fal-pg-json"><details><summary>{summary}</summary>{details}</details></div>',
            layout=W.Layout(flex="1 1 auto"),
        )
        entry = W.HBox([body, load])
        entry.add_class("fal-pg-history-entry")
        return entry

    def load(self, call: Call) -> None:
        """Put an earlier call's endpoint and inputs back into the form."""
        self.select(call.endpoint)
        self.set_values(call.arguments, reset=True)


def read_schema(client: Client) -> tuple[AppSchema, str]:
    """The app's forms, the form for any request last, and a note when the app gives no schema to
    build forms from (a server without ``/openapi.json``, or with one that cannot be read)."""
    try:
        document = client.openapi()
        schema = parse_openapi(document)
    except RequestError as exc:
        if exc.status_code is None or exc.status_code in (401, 403, 503, 504):
            raise  # the gateway, the key or the runners: no answer from the app itself
        reason = f"HTTP {exc.status_code}" if exc.status_code != 200 else "not an OpenAPI document"
        return _requests_only(f"The app serves no OpenAPI schema at /openapi.json ({reason})")
    except SchemaError as exc:
        return _requests_only(f"The app's OpenAPI schema cannot be read ({exc})")
    paths = [p for p in document["paths"] if isinstance(p, str)]
    return AppSchema(schema.title, schema.version, (*schema.endpoints, request_form(paths))), ""


def describe_endpoints(source: str | Deployment | Client) -> dict[str, Any]:
    """What a Playground of ``source`` offers, as JSON (the panel asks it before opening one): whether
    the app serves an OpenAPI schema, and each form, with the form for any request last."""
    connection = resolve_endpoint(source)
    schema, note = read_schema(connection.client)
    return {
        "name": connection.name,
        "endpoint_id": connection.address.endpoint_id,
        "openapi": not note,
        "note": note,
        "endpoints": [
            {"path": e.path, "method": e.method, "protocol": e.protocol, "summary": e.summary} for e in schema.endpoints
        ],
    }


def _requests_only(why: str) -> tuple[AppSchema, str]:
    note = f"{why}: this form sends any HTTP request. Serve /openapi.json (FastAPI does) for typed forms."
    return AppSchema("", "", (request_form(),)), note


def plain_request(values: Mapping[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """(method, path, ``EndpointClient.request`` options) from the values of :func:`request_form`."""
    options: dict[str, Any] = {}
    if values.get("query"):
        options["params"] = str(values["query"]).lstrip("?")
    if values.get("json") is not None and values.get("json") is not MISSING:
        options["json"] = values["json"]
    if values.get("form"):
        options["data"] = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in values["form"].items()}
    if values.get("files"):
        field = str(values.get("file_field") or "file")
        options["files"] = [(field, read_data_uri(uri)) for uri in values["files"]]
    if "json" in options and ("data" in options or "files" in options):
        raise InputError("Send either a JSON body or form fields and files, not both: empty one of them.")
    return str(values.get("method") or "GET"), str(values.get("path") or "/"), options


def response_output(response: Any) -> Any:
    """An answer as the Playground shows it: JSON decoded, text as text, other content as a ``data:`` URI."""
    kind = response.headers.get("content-type", "")
    if "json" in kind:
        try:
            return response.json()
        except ValueError:
            return response.text
    if kind.startswith("text/") or "charset" in kind or not response.content:
        return response.text
    return data_uri(response.content, kind.split(";")[0])


def default_uploader(address: Address) -> Uploader:
    """Apps on fal get uploads through fal's storage (when fal credentials are found); everything
    else gets ``data:`` URIs, which fal's File/Image inputs accept."""
    if address.kind == "fal" and fal_key():
        from ..uploads import upload_file

        return lambda content, content_type, name: upload_file(content, content_type, file_name=name)
    return data_uri


def _crowded(endpoint: Endpoint) -> bool:
    """Long forms (or apps that mark ``ui.important``) keep optional fields under "Additional settings"."""
    return len(endpoint.fields) > 8 or any(f.important for f in endpoint.fields)


def _endpoint_label(endpoint: Endpoint) -> str:
    if endpoint.protocol == "request":
        return endpoint.summary
    path = endpoint.path if endpoint.method == "POST" else f"{endpoint.method} {endpoint.path}"
    return f"{path} — {endpoint.summary}" if endpoint.summary else path


def _issue_text(issue: Issue) -> str:
    path, message = issue
    return f"{'.'.join(map(str, path))} {message}" if path else message


def _describe(error: Exception) -> str:
    """fal-notebook's errors already say what, where and what to do; others get their type."""
    return str(error) if isinstance(error, FalNotebookError) else f"{type(error).__name__}: {error}"


def _error_html(text: str) -> str:
    return f'<div class="fal-pg-error">{html.escape(text)}</div>' if text else ""


def _note_html(text: str) -> str:
    return f'<div class="fal-pg-help">{html.escape(text)}</div>' if text else ""


__all__ = ["Playground"]
