"""One client for fal's protocol: apps behind the local gateway (local and Docker targets) and on fal.

``connect("local/echo")``, ``connect("fal-ai/flux/dev")`` or ``connect("http://127.0.0.1:8765/local/echo")``
give an :class:`EndpointClient`; ``submit`` gives a :class:`RequestHandle` on fal's queue. The sync
flavour is plain httpx (safe inside a running event loop, as in a notebook); the async twins
(``run_async``, ``submit_async``, ``stream_async``, :class:`AsyncRequestHandle`) build the same
requests and read the same answers with :mod:`fal_notebook.protocol` and :mod:`fal_notebook.wire`:
only the I/O differs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Literal, TypedDict, Unpack

import httpx
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK, InvalidStatus
from websockets.sync.client import ClientConnection, connect as ws_connect

from . import uploads, wire
from ._version import __version__
from .errors import ConfigError, RealtimeError, RequestError, RequestTimeoutError
from .protocol import (
    Address,
    ErrorT,
    EventFilter,
    RetryPolicy,
    cancel_answer,
    default_key,
    make_error,
    render_detail,
    request_error,
    resolve_address,
    retry_wait,
    stream_status,
    transport_error,
)
from .wire import (
    Completed,
    InProgress,
    Queued,
    QueuedRequest,
    SSEParser,
    Status,
    decode_status,
    join_url,
)

__all__ = [
    "connect",
    "EndpointClient",
    "RequestHandle",
    "AsyncRequestHandle",
    "Queued",
    "InProgress",
    "Completed",
    "Status",
    "RetryPolicy",
    "RequestError",
    "RequestTimeoutError",
]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 120.0  # seconds, for submit, status, result, cancel and openapi
CONNECT_TIMEOUT = 30.0
POLL_INTERVAL = 0.1  # seconds between status polls where a status stream broke, as fal_client polls
DEFAULT_RETRY = RetryPolicy()
Priority = Literal["normal", "low"]
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


class HTTPOptions(TypedDict, total=False):
    """What ``EndpointClient.request`` sends besides the method and the path."""

    params: dict[str, Any] | list[tuple[str, Any]] | str | None
    json: Any
    data: dict[str, Any] | None
    files: Any
    headers: dict[str, str] | None
    timeout: float | None


def connect(
    endpoint_id_or_url: str | Address,
    key: str | None = None,
    *,
    transport: httpx.BaseTransport | None = None,
    async_transport: httpx.AsyncBaseTransport | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    retry: RetryPolicy | None = None,
    poll_interval: float = POLL_INTERVAL,
) -> EndpointClient:
    """A client for an endpoint: ``local/<name>``, ``<owner>/<app>[/<path>]`` (fal) or an http(s) URL.

    Without ``key``, the local gateway's key (``<FAL_NOTEBOOK_HOME>/gateway/key``) is sent to the local
    gateway and ``FAL_KEY`` (or ``FAL_KEY_ID`` + ``FAL_KEY_SECRET``) to fal; other URLs get no key.
    ``transport``/``async_transport`` replace httpx's network transports (tests use them). An
    :class:`~fal_notebook.protocol.Address` is taken as it is (``Deployment.client()`` passes one).
    """
    address = endpoint_id_or_url
    if not isinstance(address, Address):
        address = resolve_address(address)
    if timeout is not None and timeout <= 0:
        raise ConfigError(f"timeout must be a positive number of seconds, not {timeout!r}.")
    return EndpointClient(
        address,
        key if key is not None else default_key(address),
        transport=transport,
        async_transport=async_transport,
        timeout=timeout,
        retry=retry or DEFAULT_RETRY,
        poll_interval=poll_interval,
    )


def _timeout(seconds: float | None) -> httpx.Timeout:
    """``seconds`` for every phase (None: unbounded), but never more than CONNECT_TIMEOUT to connect."""
    return httpx.Timeout(seconds, connect=CONNECT_TIMEOUT if seconds is None else min(seconds, CONNECT_TIMEOUT))


class EndpointClient:
    """Calls one endpoint: ``run`` (sync), ``submit`` (queue), ``stream`` (SSE), ``openapi``; async twins."""

    def __init__(
        self,
        address: Address,
        key: str | None,
        *,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        retry: RetryPolicy = DEFAULT_RETRY,
        poll_interval: float = POLL_INTERVAL,
    ):
        self._connection = Connection(
            address,
            key,
            transport=transport,
            async_transport=async_transport,
            timeout=timeout,
            retry=retry,
            poll_interval=poll_interval,
        )

    @property
    def connection(self) -> Connection:
        """How the client reaches its endpoint (its request handles share it)."""
        return self._connection

    @property
    def address(self) -> Address:
        """Where the endpoint lives (its kind: the local gateway, fal, or another server)."""
        return self._connection.address

    @property
    def endpoint_id(self) -> str:
        return self.address.endpoint_id

    @property
    def url(self) -> str:
        """The sync base: ``run(args, path)`` posts to ``url + path``."""
        return self.address.url

    @property
    def queue_url(self) -> str:
        """The queue base: ``submit(args, path)`` posts to ``queue_url + path``."""
        return self.address.queue_url

    def __repr__(self) -> str:
        return (
            f"EndpointClient({self.endpoint_id!r}, url={self.url!r}, key={'set' if self._connection.key else 'none'})"
        )

    # -- sync ------------------------------------------------------------------------------------
    def run(
        self, arguments: Any, path: str = "/", *, timeout: float | None = None, headers: dict[str, str] | None = None
    ) -> Any:
        """POST ``arguments`` to the endpoint and return its JSON output (no queue; waits ``timeout`` s)."""
        request = self._connection.request(
            "POST", join_url(self.url, path), json=arguments, headers=headers, timeout=_timeout(timeout)
        )
        return self._connection.json(self._connection.send(request, bounded=timeout is not None))

    def submit(
        self,
        arguments: Any,
        path: str = "/",
        *,
        webhook_url: str | None = None,
        priority: Priority | None = None,
        headers: dict[str, str] | None = None,
    ) -> RequestHandle:
        """Put a request on the endpoint's queue; the handle follows it."""
        return RequestHandle(
            self._connection,
            self._queued(self._connection.send(self._submit_request(arguments, path, webhook_url, priority, headers))),
        )

    def stream(self, arguments: Any, path: str = "/", *, headers: dict[str, str] | None = None) -> Iterator[Any]:
        """POST to ``<path>/stream`` and yield each server-sent event's JSON object."""
        response = self._connection.send(self._stream_request(arguments, path, headers), stream=True)
        try:
            if response.is_error:
                response.read()
                raise self._connection.error(response)
            parser = SSEParser()
            for line in response.iter_lines():
                if (event := parser.feed(line)) is not None:
                    yield self._stream_event(*event)
            if (event := parser.feed("")) is not None:  # a last event without its blank line
                yield self._stream_event(*event)
        except httpx.TransportError as exc:
            raise self._broken_stream(exc, response) from exc
        finally:
            response.close()

    def upload(
        self,
        data: bytes | str | os.PathLike,
        content_type: str | None = None,
        *,
        file_name: str | None = None,
        expires_in: int | None = None,
    ) -> str:
        """Store a file (its bytes, or a path) where this endpoint's app reads it; its URL, an input for
        the app's ``File``/``Image`` fields. Apps behind the local gateway: the gateway's store (nothing
        leaves the machine); apps on fal: fal's CDN with fal's key (through fal_client when installed).
        ``content_type`` defaults to the one the name suggests; ``expires_in``: seconds to keep it."""
        file = uploads.file_to_upload(data, content_type, file_name, expires_in)
        if uploads.via_fal_client(self.address):
            return uploads.upload_with_fal_client(file, self._connection.key)
        token = self._connection.json(self._connection.send(self._token_request()))
        answer = self._connection.json(self._connection.send(self._upload_request(file, token, file.read())))
        return self._uploaded(answer)

    def openapi(self) -> dict[str, Any]:
        """The app's OpenAPI document (``GET <app>/openapi.json``)."""
        return self._schema(
            self._connection.send(self._connection.request("GET", join_url(self.address.app_url, wire.OPENAPI_PATH)))
        )

    def request(self, method: str, path: str = "/", **options: Unpack[HTTPOptions]) -> httpx.Response:
        """Any HTTP request to the app, as a server that does not speak fal's protocol takes it (a GET
        route, a form, an upload): ``params`` (query), ``json``, ``data`` (form fields), ``files``
        (``{"file": ("name.png", b"...", "image/png")}``), ``headers``, ``timeout``. No queue; the answer
        comes back whatever its status (read it: ``.status_code``, ``.json()``, ``.text``)."""
        return self._connection.send(
            self._any_request(method, path, options), bounded=options.get("timeout") is not None
        )

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> EndpointClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- async -----------------------------------------------------------------------------------
    async def run_async(
        self, arguments: Any, path: str = "/", *, timeout: float | None = None, headers: dict[str, str] | None = None
    ) -> Any:
        request = self._connection.request(
            "POST", join_url(self.url, path), json=arguments, headers=headers, timeout=_timeout(timeout)
        )
        return self._connection.json(await self._connection.send_async(request, bounded=timeout is not None))

    async def submit_async(
        self,
        arguments: Any,
        path: str = "/",
        *,
        webhook_url: str | None = None,
        priority: Priority | None = None,
        headers: dict[str, str] | None = None,
    ) -> AsyncRequestHandle:
        return AsyncRequestHandle(
            self._connection,
            self._queued(
                await self._connection.send_async(self._submit_request(arguments, path, webhook_url, priority, headers))
            ),
        )

    async def stream_async(
        self, arguments: Any, path: str = "/", *, headers: dict[str, str] | None = None
    ) -> AsyncIterator[Any]:
        response = await self._connection.send_async(self._stream_request(arguments, path, headers), stream=True)
        try:
            if response.is_error:
                await response.aread()
                raise self._connection.error(response)
            parser = SSEParser()
            async for line in response.aiter_lines():
                if (event := parser.feed(line)) is not None:
                    yield self._stream_event(*event)
            if (event := parser.feed("")) is not None:
                yield self._stream_event(*event)
        except httpx.TransportError as exc:
            raise self._broken_stream(exc, response) from exc
        finally:
            await response.aclose()

    async def request_async(self, method: str, path: str = "/", **options: Unpack[HTTPOptions]) -> httpx.Response:
        request = self._any_request(method, path, options)
        return await self._connection.send_async(request, bounded=options.get("timeout") is not None)

    async def upload_async(
        self,
        data: bytes | str | os.PathLike,
        content_type: str | None = None,
        *,
        file_name: str | None = None,
        expires_in: int | None = None,
    ) -> str:
        file = uploads.file_to_upload(data, content_type, file_name, expires_in)
        if uploads.via_fal_client(self.address):
            return await asyncio.to_thread(uploads.upload_with_fal_client, file, self._connection.key)
        token = self._connection.json(await self._connection.send_async(self._token_request()))
        content = await asyncio.to_thread(file.read)
        answer = self._connection.json(await self._connection.send_async(self._upload_request(file, token, content)))
        return self._uploaded(answer)

    async def aclose(self) -> None:
        await self._connection.aclose()

    # -- websockets ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def websocket(self, path: str, *, open_timeout: float = CONNECT_TIMEOUT) -> Iterator[ClientConnection]:
        """A websocket to the app's ``path`` (an endpoint with ``is_websocket=True``): a connection of
        the ``websockets`` package, with the key sent as on a call."""
        url = wire.websocket_url(join_url(self.address.app_url, path))
        headers = {wire.AUTHORIZATION: wire.key_header(self._connection.key)} if self._connection.key else {}
        try:
            connection = ws_connect(url, additional_headers=headers, max_size=None, open_timeout=open_timeout)
        except InvalidStatus as exc:
            answer = exc.response
            detail = wire.decode_error(_json_or_text(bytes(answer.body or b"")))[0]
            raise self._connection.failure(
                f"the websocket {path} was refused: {render_detail(detail)}.",
                "Check the path (an endpoint with is_websocket=True, or @fal.realtime) and the key.",
                status_code=answer.status_code,
                detail=detail,
            ) from None
        with connection:
            yield connection

    @contextlib.contextmanager
    def realtime(self, path: str = "/realtime") -> Iterator[RealtimeSession]:
        """A session with the app's ``@fal.realtime`` endpoint: ``send(dict)``, ``recv() -> dict | None``
        (msgpack frames, as fal's realtime endpoints and fal_client's ``realtime`` speak them)."""
        with self.websocket(path) as connection:
            yield RealtimeSession(connection, self._session_error(path))

    def _session_error(self, path: str) -> Callable[[str, str], RealtimeError]:
        def error(code: str, reason: str) -> RealtimeError:
            problem = f"the realtime session with {path} ended with {code}" + (f": {reason}" if reason else "")
            problem += "" if problem.endswith((".", "!", "?")) else "."
            todo = (
                "Connect again; the app's log says more."
                if code != wire.REALTIME_TIMEOUT
                else "Connect again to send more."
            )
            return self._connection.failure(problem, todo, detail=reason, error_type=code, cls=RealtimeError)

        return error

    # -- requests (shared by both flavours) ------------------------------------------------------
    def _any_request(self, method: str, path: str, options: HTTPOptions) -> httpx.Request:
        if method.upper() not in HTTP_METHODS:
            raise ConfigError(f"method {method!r}: use one of {', '.join(HTTP_METHODS)}.")
        if options.get("json") is not None and (options.get("data") or options.get("files")):
            raise ConfigError("Send either a JSON body (json=) or a form (data=, files=), not both.")
        return self._connection.request(
            method.upper(),
            join_url(self.url, path),
            json=options.get("json"),
            params=options.get("params"),
            headers=options.get("headers"),
            timeout=_timeout(options.get("timeout")),
            accept="*/*",
            data=options.get("data"),
            files=options.get("files"),
        )

    def _submit_request(
        self, arguments: Any, path: str, webhook_url: str | None, priority: str | None, headers: dict[str, str] | None
    ) -> httpx.Request:
        extra = dict(headers or {})
        if priority is not None:
            if priority not in wire.PRIORITIES:
                raise ConfigError(f"priority must be one of {', '.join(wire.PRIORITIES)}, not {priority!r}.")
            extra[wire.QUEUE_PRIORITY] = priority
        params = {wire.WEBHOOK_PARAM: webhook_url} if webhook_url else None
        return self._connection.request(
            "POST", join_url(self.queue_url, path), json=arguments, params=params, headers=extra
        )

    def _stream_request(self, arguments: Any, path: str, headers: dict[str, str] | None) -> httpx.Request:
        return self._connection.request(
            "POST",
            join_url(self.url, path, wire.STREAM_PATH),
            json=arguments,
            headers=headers,
            timeout=_timeout(None),
            accept=wire.EVENT_STREAM,
        )

    def _token_request(self) -> httpx.Request:
        """fal's CDN upload, first step: a token for the store of this endpoint's app (uploads.py)."""
        if self._connection.key is None and self.address.kind == "fal":
            raise uploads.no_key_error()
        url = join_url(uploads.store_origin(self.address), wire.STORAGE_TOKEN_PATH)
        return self._connection.request("POST", url, json={}, params=wire.STORAGE_TYPE)

    def _upload_request(self, file: uploads.FileToUpload, token: Any, content: bytes) -> httpx.Request:
        """The second step: the file to the token's base URL, with the token."""
        try:
            authorization, base_url = uploads.token_of(token)
        except ValueError as exc:
            raise self._connection.failure(f"gave no upload token ({exc}).", "Check the endpoint.") from None
        headers = {**file.headers(), wire.AUTHORIZATION: authorization}
        return self._connection.request(
            "POST", join_url(base_url, wire.CDN_UPLOAD_PATH), content=content, headers=headers
        )

    def _uploaded(self, answer: Any) -> str:
        try:
            return uploads.access_url(answer)
        except ValueError as exc:
            raise self._connection.failure(f"stored the file but gave no URL ({exc}).", "") from None

    def _schema(self, response: httpx.Response) -> dict[str, Any]:
        schema = self._connection.json(response)
        if not isinstance(schema, dict) or "paths" not in schema:
            raise self._connection.protocol_error("serves no OpenAPI document at openapi.json.", response)
        return schema

    def _queued(self, response: httpx.Response) -> QueuedRequest:
        try:
            return wire.decode_submit(self._connection.json(response), self.address.app_queue_url)
        except ValueError as exc:
            raise self._connection.protocol_error(
                f"gave no request to follow ({exc}); is {self.queue_url} a queue?", response
            ) from None

    def _stream_event(self, name: str, data: str) -> Any:
        try:
            payload, is_json = json.loads(data), True
        except ValueError:
            payload, is_json = data, False
        if name == "error":
            detail, _ = wire.decode_error(payload)
            raise self._connection.failure(
                f"the stream failed: {render_detail(detail)}.",
                "",
                detail=payload,
            )
        if not is_json:
            raise self._connection.failure(
                f"streamed an event that is not JSON: {data[:200]!r}.",
                "Each event's data must be one JSON object.",
                detail=data,
            )
        return payload

    def _broken_stream(self, error: httpx.TransportError, response: httpx.Response) -> RequestError:
        return self._connection.failure(
            f"the stream from {response.request.url} broke off: {error!r}.",
            "Call stream() again; the app's logs may say why.",
            status_code=response.status_code,
            detail=str(error),
        )


class Connection:
    """How a client reaches its endpoint, shared by the client and its request handles: the requests
    it builds (the key, the headers, the timeouts), their sending with retries (the only part that
    differs between the sync and async flavours), and what their answers mean."""

    def __init__(
        self,
        address: Address,
        key: str | None,
        *,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        retry: RetryPolicy = DEFAULT_RETRY,
        poll_interval: float = POLL_INTERVAL,
    ):
        self.address = address
        self.key = key or None
        self.timeout = _timeout(timeout)
        self.retry = retry
        self.poll_interval = poll_interval  # seconds between status polls of a queued request
        self._transport = transport
        self._async_transport = async_transport
        self._http: httpx.Client | None = None
        self._async_http: httpx.AsyncClient | None = None
        self._async_loop: asyncio.AbstractEventLoop | None = None

    def request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        params: Any = None,
        headers: dict[str, str] | None = None,
        timeout: httpx.Timeout | None = None,
        accept: str = "application/json",
        data: dict[str, Any] | None = None,
        files: Any = None,
    ) -> httpx.Request:
        all_headers = httpx.Headers({"Accept": accept, "User-Agent": f"fal-notebook/{__version__}"})
        if self.key:
            all_headers[wire.AUTHORIZATION] = wire.key_header(self.key)
        all_headers.update(headers or {})  # the caller's headers win, whatever their case
        return httpx.Request(
            method,
            url,
            json=json,
            content=content,
            data=data,
            files=files,
            params=params,
            headers=all_headers,
            extensions={"timeout": (timeout or self.timeout).as_dict()},
        )

    # -- answers ---------------------------------------------------------------------------------
    def error(self, response: httpx.Response, request_id: str | None = None, *, from_app: bool = False) -> RequestError:
        return request_error(
            response,
            self.address,
            key=self.key,
            request_id=request_id,
            attempts=self.retry.attempts,
            from_app=from_app,
        )

    def json(self, response: httpx.Response, request_id: str | None = None, *, from_app: bool = False) -> Any:
        if response.is_error:
            raise self.error(response, request_id, from_app=from_app)
        if response.is_redirect:  # the app's own Location names its own address: its path is what counts
            location = httpx.URL(response.headers.get("location", "")).path
            raise self.failure(
                f"answered {response.request.url} with a redirect ({response.status_code}) to the path {location!r}.",
                "Call the path it names: the app declares it so (FastAPI's `/items/` with its trailing slash).",
                status_code=response.status_code,
                detail=location,
                request_id=request_id,
            )
        try:
            return response.json()
        except ValueError:
            raise self.protocol_error(
                f"answered {response.request.url} with something that is not JSON: {response.text[:200]!r}.",
                response,
                request_id,
            ) from None

    def protocol_error(self, problem: str, response: httpx.Response, request_id: str | None = None) -> RequestError:
        return self.failure(
            problem,
            "It does not speak fal's protocol: check the endpoint, or send it a plain HTTP request "
            "(`.request(method, path)`, `fal-notebook call --method`).",
            status_code=response.status_code,
            detail=response.text[:2000],
            request_id=request_id,
        )

    def _unreachable(
        self, error: httpx.TransportError, request: httpx.Request, attempts: int, bounded: bool
    ) -> RequestError:
        if bounded and isinstance(error, httpx.TimeoutException):
            seconds = request.extensions["timeout"]["read"]
            return self.failure(
                f"no answer within {seconds:g} s from {request.url}.",
                "Pass a larger timeout= (or none), or submit() it to the queue.",
                detail=str(error),
                cls=RequestTimeoutError,
            )
        return transport_error(error, self.address, str(request.url), key=self.key, attempts=attempts)

    # -- I/O: the only part that differs between the flavours --------------------------------------
    def _client_options(self) -> dict[str, Any]:
        # Loopback traffic (the local gateway, or fal's hosts pointed at a local TLS proxy) never goes
        # through a proxy from the environment, but its TLS trusts SSL_CERT_FILE/SSL_CERT_DIR as usual.
        options: dict[str, Any] = {"timeout": self.timeout, "trust_env": not self.address.loopback}
        if self.address.loopback and self.address.app_url.startswith("https://"):
            options["verify"] = httpx.create_ssl_context(trust_env=True)
        return options

    def _sync_http(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(transport=self._transport, **self._client_options())
        return self._http

    def _async_client(self) -> httpx.AsyncClient:
        # An AsyncClient's connections belong to one event loop: a new loop gets a new client.
        loop = asyncio.get_running_loop()
        if self._async_http is None or self._async_loop is not loop:
            self._async_http = httpx.AsyncClient(transport=self._async_transport, **self._client_options())
            self._async_loop = loop
        return self._async_http

    def send(self, request: httpx.Request, *, bounded: bool = False, stream: bool = False) -> httpx.Response:
        http = self._sync_http()
        attempt = 0
        while True:
            attempt += 1
            try:
                response = http.send(request, stream=stream)
            except httpx.TransportError as exc:
                if (wait := retry_wait(self.retry, attempt, error=exc, bounded=bounded)) is None:
                    raise self._unreachable(exc, request, attempt, bounded) from exc
                self._log_retry(request, attempt, wait, repr(exc))
            else:
                if (wait := retry_wait(self.retry, attempt, response=response)) is None:
                    return response
                response.close()
                self._log_retry(request, attempt, wait, f"HTTP {response.status_code}")
            time.sleep(wait)

    async def send_async(
        self, request: httpx.Request, *, bounded: bool = False, stream: bool = False
    ) -> httpx.Response:
        http = self._async_client()
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await http.send(request, stream=stream)
            except httpx.TransportError as exc:
                if (wait := retry_wait(self.retry, attempt, error=exc, bounded=bounded)) is None:
                    raise self._unreachable(exc, request, attempt, bounded) from exc
                self._log_retry(request, attempt, wait, repr(exc))
            else:
                if (wait := retry_wait(self.retry, attempt, response=response)) is None:
                    return response
                await response.aclose()
                self._log_retry(request, attempt, wait, f"HTTP {response.status_code}")
            await asyncio.sleep(wait)

    def _log_retry(self, request: httpx.Request, attempt: int, wait: float, reason: str) -> None:
        log.debug(
            "%s %s: %s; try %d of %d in %.2f s",
            request.method,
            request.url,
            reason,
            attempt + 1,
            self.retry.attempts,
            wait,
        )

    def failure(
        self,
        problem: str,
        todo: str,
        *,
        status_code: int | None = None,
        detail: Any = None,
        request_id: str | None = None,
        error_type: str | None = None,
        cls: type[ErrorT] = RequestError,  # type: ignore[assignment]
    ) -> ErrorT:
        """An error of this endpoint (protocol.make_error): ``problem``, what to do, and its details."""
        return make_error(
            self.address,
            problem,
            todo,
            key=self.key,
            status_code=status_code,
            detail=detail,
            request_id=request_id,
            error_type=error_type,
            cls=cls,
        )

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    async def aclose(self) -> None:
        self.close()
        if self._async_http is not None:
            await self._async_http.aclose()
            self._async_http = None


class RealtimeSession:
    """Messages to and from an app's ``@fal.realtime`` endpoint, msgpack-encoded; fal's own messages
    (JSON text frames) as fal_client's ``RealtimeConnection`` reads them."""

    def __init__(self, connection: ClientConnection, error: Callable[[str, str], RealtimeError]):
        self.connection, self._error = connection, error

    def send(self, message: dict[str, Any]) -> None:
        import msgpack

        self.connection.send(msgpack.packb(message, use_bin_type=True))

    def recv(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The app's next output; None once the session is closed normally. Raises RealtimeError when
        the app reports an error (fal's ``x-fal-error``: the app closes the session after it) or
        the connection breaks; meta messages (timings) are skipped."""
        import msgpack

        while True:
            try:
                frame = self.connection.recv(timeout)
            except ConnectionClosedOK:
                return None
            except ConnectionClosed as exc:
                closed = exc.rcvd or exc.sent
                reason = f"code {closed.code}" + (f", {closed.reason}" if closed.reason else "") if closed else ""
                raise self._error("CONNECTION_CLOSED", reason) from None
            if isinstance(frame, bytes):
                return msgpack.unpackb(frame, raw=False)
            try:
                message = json.loads(frame)
            except ValueError:
                return {"type": "text", "payload": frame}
            kind = message.get("type") if isinstance(message, dict) else None
            if kind == wire.REALTIME_ERROR:
                raise self._error(str(message.get("error") or "UNKNOWN_ERROR"), str(message.get("reason") or ""))
            if kind != wire.REALTIME_META:
                return message

    def close(self) -> None:
        self.connection.close()


def _json_or_text(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return data.decode(errors="replace")


class _Deadline:
    """The time a wait may take, until ``timeout`` seconds have passed (then RequestTimeoutError)."""

    def __init__(self, timed_out: Callable[[float | None], RequestError], timeout: float | None):
        self._timed_out, self._timeout = timed_out, timeout
        self._end = None if timeout is None else time.monotonic() + timeout

    def left(self) -> float | None:
        """Seconds left (0 once none are), None without a timeout."""
        return None if self._end is None else max(0.0, self._end - time.monotonic())

    def check(self) -> None:
        if self.left() == 0:
            raise self._timed_out(self._timeout)

    def pause(self, interval: float) -> float:
        self.check()
        left = self.left()
        return interval if left is None else min(interval, left)


class _Handle:
    """What both handle flavours share: the request's URLs, the requests to send, the answers' meaning.

    Waiting for a request (``iter_events``, ``result``) follows its status stream, as fal's own
    clients can; where the stream breaks (or the server has none), the status is polled instead.
    """

    def __init__(self, connection: Connection, queued: QueuedRequest):
        self._connection = connection
        self._queued = queued
        self._completed = False  # a status said COMPLETED: the result is there to fetch

    @property
    def request_id(self) -> str:
        return self._queued.request_id

    @property
    def status_url(self) -> str:
        return self._queued.status_url

    @property
    def response_url(self) -> str:
        return self._queued.response_url

    @property
    def cancel_url(self) -> str:
        return self._queued.cancel_url

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._connection.address.endpoint_id!r}, request_id={self.request_id!r})"

    def _status_request(self, logs: bool) -> httpx.Request:
        return self._connection.request("GET", self.status_url, params={wire.LOGS_PARAM: "1"} if logs else None)

    def _status_stream_request(self, logs: bool, deadline: _Deadline) -> httpx.Request:
        """The status stream, read no longer than the deadline allows (a read that times out ends it)."""
        timeout = self._connection.timeout
        read, left = timeout.read, deadline.left()
        if left is not None:
            read = left if read is None else min(read, left)
        return self._connection.request(
            "GET",
            wire.join_url(self.status_url, wire.STREAM_PATH),
            params={wire.LOGS_PARAM: "1"} if logs else None,
            timeout=httpx.Timeout(connect=timeout.connect, read=read, write=timeout.write, pool=timeout.pool),
            accept=wire.EVENT_STREAM,
        )

    def _result_request(self) -> httpx.Request:
        return self._connection.request("GET", self.response_url)

    def _cancel_request(self) -> httpx.Request:
        return self._connection.request("PUT", self.cancel_url)

    def _seen(self, status: Status) -> Status:
        self._completed = self._completed or isinstance(status, Completed)
        return status

    def _status(self, response: httpx.Response) -> Status:
        data = self._connection.json(response, self.request_id)
        try:
            return self._seen(decode_status(data))
        except ValueError as exc:
            raise self._connection.protocol_error(
                f"answered the status of a request with {exc}.", response, self.request_id
            ) from None

    def _result(self, response: httpx.Response) -> Any:
        # Asked once the request completed: an error answer is the app's (a 404: its unknown path).
        return self._connection.json(response, self.request_id, from_app=True)

    def _cancelled(self, response: httpx.Response) -> str:
        if (answer := cancel_answer(response)) is None:
            raise self._connection.error(response, self.request_id)
        return answer

    def _interval(self, interval: float | None) -> float:
        return self._connection.poll_interval if interval is None else interval

    def _timed_out(self, timeout: float | None) -> RequestError:
        return self._connection.failure(
            f"no result within {timeout:g} s.",
            "The request keeps running: call result() again to wait longer, or cancel() to stop it.",
            request_id=self.request_id,
            cls=RequestTimeoutError,
        )


class _StatusStream:
    """What a handle reads of a status stream, line by line (both flavours): ``feed`` gives each
    event's status; ``completed`` once one said COMPLETED (the rest is read to the stream's end and
    left); ``broken`` when the stream cannot be followed (the handle polls then)."""

    def __init__(self, handle: _Handle, deadline: _Deadline):
        self._handle, self._deadline = handle, deadline
        self._parser = SSEParser()
        self.completed = self.broken = False

    def answered(self, answer: httpx.Response) -> bool:
        """Whether the answer is a stream to follow."""
        if answer.status_code != 200:
            self._broke(f"was answered with HTTP {answer.status_code}")
        return not self.broken

    def feed(self, line: str) -> Status | None:
        if self.completed or self.broken:
            return None
        self._deadline.check()
        if (event := self._parser.feed(line)) is None:
            return None
        if (status := stream_status(event)) is None:
            self._broke(f"sent an event that is no status: {event[1][:200]!r}")
            return None
        self.completed = isinstance(status, Completed)
        return self._handle._seen(status)

    def broke_off(self, error: httpx.TransportError) -> None:
        if not self.completed:
            self._broke(f"broke off: {error!r}")

    def _broke(self, why: str) -> None:
        self._deadline.check()  # a read cut short by the deadline is the timeout, not a broken stream
        self.broken = True
        log.debug("%r: the status stream %s; polling the status instead", self._handle, why)


class RequestHandle(_Handle):
    """A request on the queue: ``status``, ``iter_events``, ``result``, ``cancel``."""

    def status(self, logs: bool = False) -> Status:
        """``Queued(position)``, ``InProgress(logs)`` or ``Completed(logs, metrics, error, error_type)``."""
        return self._status(self._connection.send(self._status_request(logs)))

    def iter_events(self, logs: bool = True, interval: float | None = None) -> Iterator[Status]:
        """Each change of the status until Completed; each log entry comes exactly once. Follows the
        status stream; where it breaks, polls the status every ``interval`` s."""
        events = EventFilter()
        for status, delta in self._statuses(logs, interval, _Deadline(self._timed_out, None)):
            if (event := events(status, delta=delta)) is not None:
                yield event

    def result(self, timeout: float | None = None) -> Any:
        """Wait for completion (at most ``timeout`` s), then the output; raises RequestError on the app's error."""
        if not self._completed:
            for _ in self._statuses(False, None, _Deadline(self._timed_out, timeout)):
                pass
        return self._result(self._connection.send(self._result_request()))

    def cancel(self) -> str:
        """Ask the queue to cancel; its answer: ``CANCELLATION_REQUESTED``, ``ALREADY_COMPLETED``..."""
        return self._cancelled(self._connection.send(self._cancel_request()))

    def _statuses(self, logs: bool, interval: float | None, deadline: _Deadline) -> Iterator[tuple[Status, bool]]:
        """The statuses until Completed, each with whether it came from the stream (its logs are news)."""
        if deadline.left() != 0:
            stream = _StatusStream(self, deadline)
            try:
                request = self._status_stream_request(logs, deadline)
                answer = self._connection.send(request, bounded=deadline.left() is not None, stream=True)
                try:
                    if stream.answered(answer):
                        for line in answer.iter_lines():  # to its end: the connection serves the next call
                            if (status := stream.feed(line)) is not None:
                                yield status, True
                            elif stream.broken:
                                break
                finally:
                    answer.close()
            except httpx.TransportError as exc:
                stream.broke_off(exc)
            if stream.completed:
                return
        while True:
            status = self.status(logs=logs)
            yield status, False
            if isinstance(status, Completed):
                return
            time.sleep(deadline.pause(self._interval(interval)))


class AsyncRequestHandle(_Handle):
    """:class:`RequestHandle` with coroutine methods (and an async ``iter_events``)."""

    async def status(self, logs: bool = False) -> Status:
        return self._status(await self._connection.send_async(self._status_request(logs)))

    async def iter_events(self, logs: bool = True, interval: float | None = None) -> AsyncIterator[Status]:
        events = EventFilter()
        async for status, delta in self._statuses(logs, interval, _Deadline(self._timed_out, None)):
            if (event := events(status, delta=delta)) is not None:
                yield event

    async def result(self, timeout: float | None = None) -> Any:
        if not self._completed:
            async for _ in self._statuses(False, None, _Deadline(self._timed_out, timeout)):
                pass
        return self._result(await self._connection.send_async(self._result_request()))

    async def cancel(self) -> str:
        return self._cancelled(await self._connection.send_async(self._cancel_request()))

    async def _statuses(
        self, logs: bool, interval: float | None, deadline: _Deadline
    ) -> AsyncIterator[tuple[Status, bool]]:
        if deadline.left() != 0:
            stream = _StatusStream(self, deadline)
            try:
                request = self._status_stream_request(logs, deadline)
                answer = await self._connection.send_async(request, bounded=deadline.left() is not None, stream=True)
                try:
                    if stream.answered(answer):
                        async for line in answer.aiter_lines():  # to its end: the connection serves the next call
                            if (status := stream.feed(line)) is not None:
                                yield status, True
                            elif stream.broken:
                                break
                finally:
                    await answer.aclose()
            except httpx.TransportError as exc:
                stream.broke_off(exc)
            if stream.completed:
                return
        while True:
            status = await self.status(logs=logs)
            yield status, False
            if isinstance(status, Completed):
                return
            await asyncio.sleep(deadline.pause(self._interval(interval)))
