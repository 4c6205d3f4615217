"""fal's wire contract, stated once: hosts, URL layout, headers, statuses and bodies of fal's queue
protocol (docs/fal-conformance.md), as the client reads it and the local gateway writes it.

The client side (``protocol.py``, ``client.py``), the gateway (``gateway/routes.py`` and the queue
behind it), the backends and the snippets import their facts from here, so both sides change together;
each message has an ``encode_*`` (the server's side) and a ``decode_*`` (the client's side). Pure:
no I/O and no environment reads (``state.py`` and ``protocol.py`` read the variables named here).
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Any

# -- hosts, ports and the key file ----------------------------------------------------------------
#: fal's sync host; ``FAL_RUN_HOST`` replaces it (as fal_client reads it).
FAL_RUN_HOST = "fal.run"
RUN_HOST_VARIABLE = "FAL_RUN_HOST"
#: fal's queue host, default ``queue.<run host>``; ``FAL_QUEUE_RUN_HOST`` replaces it.
QUEUE_HOST_PREFIX = "queue."
QUEUE_HOST_VARIABLE = "FAL_QUEUE_RUN_HOST"

#: The local gateway: one per user on the loopback interface, port from ``FAL_NOTEBOOK_GATEWAY_PORT``.
GATEWAY_HOST = "127.0.0.1"
DEFAULT_GATEWAY_PORT = 8765
GATEWAY_PORT_VARIABLE = "FAL_NOTEBOOK_GATEWAY_PORT"
#: The gateway's HTTPS listener for clients that speak only https (fal_client), port from
#: ``FAL_NOTEBOOK_GATEWAY_TLS_PORT``; its self-signed certificate lives in the state directory.
DEFAULT_GATEWAY_TLS_PORT = 8766
GATEWAY_TLS_PORT_VARIABLE = "FAL_NOTEBOOK_GATEWAY_TLS_PORT"
#: What fal_client reads: its key, and (Python's ssl, httpx, websockets) the CA bundle to trust.
FAL_KEY_VARIABLE = "FAL_KEY"
CA_BUNDLE_VARIABLE = "SSL_CERT_FILE"
#: The gateway's key (``<id>:<secret>``), relative to the state directory (``FAL_NOTEBOOK_HOME``).
GATEWAY_KEY_FILE = PurePosixPath("gateway", "key")
#: The owner segment of the gateway's endpoint ids: ``local/<name>``.
LOCAL_OWNER = "local"
#: fal endpoint ids with a namespace have three app segments (``workflows/<owner>/<app>``).
NAMESPACES = ("workflows", "comfy")


def queue_host(run_host: str) -> str:
    """fal's queue host for a sync host: ``queue.fal.run`` for ``fal.run``."""
    return QUEUE_HOST_PREFIX + run_host


def parse_count(raw: str, *, digits: int = 18) -> int | None:
    """The whole number in ``raw`` (ASCII digits, at most ``digits`` of them, spaces around), or None
    when it is not one: ``²``, ``-1``, ``1e3`` and a 5,000-digit number are not."""
    raw = raw.strip()
    return int(raw) if 0 < len(raw) <= digits and raw.isascii() and raw.isdigit() else None


def parse_port(raw: str) -> int | None:
    """The port number in ``raw`` (1-65535), or None when it is not one."""
    port = parse_count(raw, digits=5)
    return port if port is not None and 0 < port < 65536 else None


def gateway_origin(port: int) -> str:
    """``http://127.0.0.1:<port>``: where the local gateway listens."""
    return f"http://{GATEWAY_HOST}:{port}"


def gateway_hosts(tls_port: int) -> dict[str, str]:
    """``FAL_RUN_HOST`` and ``FAL_QUEUE_RUN_HOST`` for fal's clients to reach the gateway's HTTPS
    listener: ``127.0.0.1:<tls port>`` and ``127.0.0.1:<tls port>/queue``."""
    host = f"{GATEWAY_HOST}:{tls_port}"
    return {RUN_HOST_VARIABLE: host, QUEUE_HOST_VARIABLE: f"{host}/{QUEUE_SEGMENT}"}


# -- URL layout -----------------------------------------------------------------------------------
#: The first path segment of every queue URL on the gateway: ``/queue/<app>[/<path>]``.
QUEUE_SEGMENT = "queue"
OPENAPI_PATH = "openapi.json"
#: An endpoint's streaming twin (server-sent events) is at ``<path>/stream``.
STREAM_PATH = "stream"
#: An app cancels a running request at ``<the request's path>/cancel`` (fal's queue calls it there).
APP_CANCEL_PATH = "cancel"


def join_url(base: str, *paths: str) -> str:
    """``base`` with the non-empty ``paths`` appended, one slash between parts. A trailing slash of
    the last part is kept, as the app declared it (FastAPI's ``/items/`` is not ``/items``, which
    answers with a redirect); an app's root ``/`` adds nothing."""
    parts = [p.strip("/") for p in paths if p.strip("/")]
    if not parts:
        return base
    return "/".join([base.rstrip("/"), *parts]) + ("/" if paths[-1].endswith("/") else "")


def join_path(*paths: str) -> str:
    """``/a/b`` from ``"/a"`` and ``"b"``, ``/a/b/`` from ``"/a"`` and ``"b/"`` (the trailing slash of
    the last part is kept); ``/`` when all are empty."""
    parts = [p.strip("/") for p in paths if p.strip("/")]
    return "/" + "/".join(parts) + ("/" if parts and paths[-1].endswith("/") else "")


def is_stream_path(path: str) -> bool:
    """Whether an endpoint's path is a streaming one (``.../stream``)."""
    return path.rstrip("/").endswith("/" + STREAM_PATH)


def app_cancel_path(path: str) -> str:
    """Where the app cancels a running request it got at ``path``: ``<path>/cancel`` (the call's
    query string is the call's, not the cancel's)."""
    return join_path(path.split("?", 1)[0], APP_CANCEL_PATH)


def local_app(name: str) -> str:
    """The endpoint id of app ``name`` on the local gateway: ``local/<name>``."""
    return f"{LOCAL_OWNER}/{name}"


def app_urls(origin: str, app: str) -> tuple[str, str]:
    """The sync and queue bases of ``app`` on a gateway: ``<origin>/<app>``, ``<origin>/queue/<app>``."""
    return join_url(origin, app), join_url(origin, QUEUE_SEGMENT, app)


def fal_app_urls(run_host: str, queue: str, app: str) -> tuple[str, str]:
    """The sync and queue bases of ``app`` on fal: ``https://<run host>/<app>``, ``https://<queue host>/<app>``."""
    return f"https://{run_host}/{app}", f"https://{queue}/{app}"


def websocket_url(url: str) -> str:
    """The websocket URL of an http(s) URL: ``ws://`` for ``http://``, ``wss://`` for ``https://``."""
    scheme, sep, rest = url.partition("://")
    return {"http": "ws", "https": "wss"}.get(scheme, scheme) + sep + rest


def request_url(app_queue_url: str, request_id: str) -> str:
    """A queued request's URL, under its app (never under the endpoint's path): ``.../requests/<id>``;
    its result is there."""
    return join_url(app_queue_url, "requests", request_id)


def status_url(request: str) -> str:
    return f"{request}/status"


def status_stream_url(request: str) -> str:
    return f"{request}/status/stream"


def cancel_url(request: str) -> str:
    return f"{request}/cancel"


def response_url(request: str) -> str:
    """``.../requests/<id>/response``: the result, as at the request's URL."""
    return f"{request}/response"


# -- headers and parameters -----------------------------------------------------------------------
AUTHORIZATION = "Authorization"
KEY_SCHEME = "Key"
REQUEST_ID = "x-fal-request-id"
ERROR_TYPE = "X-Fal-Error-Type"
#: Request header: seconds the request may wait for a runner to start it (above MIN_REQUEST_TIMEOUT).
REQUEST_TIMEOUT = "X-Fal-Request-Timeout"
MIN_REQUEST_TIMEOUT = 0.1
#: Response header of a timeout the caller set (``user``): such a 504 is final, not retried.
REQUEST_TIMEOUT_TYPE = "X-Fal-Request-Timeout-Type"
USER_TIMEOUT = "user"
#: The error of a request whose start deadline passed before a runner started it.
START_DEADLINE_PASSED = f"Request did not start within its {REQUEST_TIMEOUT}."
QUEUE_PRIORITY = "X-Fal-Queue-Priority"
PRIORITIES = ("normal", "low")
#: Request header naming the runner a request prefers (one of the hints a runner gave in
#: ``X-Fal-Runner-Hints``, the answer header of an app that provides hints).
RUNNER_HINT = "X-Fal-Runner-Hint"
RUNNER_HINTS = "X-Fal-Runner-Hints"
RETRY_AFTER = "Retry-After"
#: fal's platform headers start with this: the gateway's, never the app's (but for the identity headers).
FAL_HEADER_PREFIX = "x-fal-"
#: Identity headers the gateway adds for the app: the endpoint called, and the caller's id.
ENDPOINT = "x-fal-endpoint"
CALLER_ID = "x-fal-caller-user-id"
#: A platform header without fal's prefix (model fallbacks), consumed like the others.
DISABLE_FALLBACK = "x-app-fal-disable-fallback"
WEBHOOK_PARAM = "fal_webhook"
#: Submit parameter: refuse (429) when the app's queue already holds this many requests.
MAX_QUEUE_LENGTH_PARAM = "fal_max_queue_length"
#: Query parameters that are the queue's own, never the app's.
QUEUE_PARAMS = (WEBHOOK_PARAM, MAX_QUEUE_LENGTH_PARAM)
LOGS_PARAM = "logs"
EVENT_STREAM = "text/event-stream"


def key_header(key: str) -> str:
    """The ``Authorization`` value for a key: ``Key <id>:<secret>``."""
    return f"{KEY_SCHEME} {key}"


def key_of(authorization: str) -> str | None:
    """The key in an ``Authorization`` value, None when it is not ``Key <key>``."""
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == KEY_SCHEME.lower() and token.strip() else None


def request_timeout(raw: str) -> float | None:
    """The seconds in an ``X-Fal-Request-Timeout`` value, None when it is not a finite number above the minimum."""
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) and value > MIN_REQUEST_TIMEOUT else None


def low_priority(raw: str) -> bool:
    """Whether an ``X-Fal-Queue-Priority`` value asks for the low lane (anything else is normal)."""
    return raw.strip().lower() == "low"


def wants_logs(raw: str) -> bool:
    """Whether a ``logs`` query value asks for the logs (``1``, ``true``, ``yes``)."""
    return raw.lower() in ("1", "true", "yes")


# -- error bodies ---------------------------------------------------------------------------------
class ErrorType(StrEnum):
    """fal's ``error_type`` values the gateway gives (an app may give others)."""

    REQUEST_TIMEOUT = "request_timeout"
    RUNNER_SCHEDULING_FAILURE = "runner_scheduling_failure"
    RUNNER_DISCONNECTED = "runner_disconnected"
    CLIENT_CANCELLED = "client_cancelled"
    CLIENT_DISCONNECTED = "client_disconnected"
    BAD_REQUEST = "bad_request"
    INTERNAL_ERROR = "internal_error"


def encode_error(detail: Any, error_type: str | None = None) -> dict[str, Any]:
    """An error in fal's shape: ``{"detail": ...}``, plus ``error_type`` when there is one (sent
    also as the ``X-Fal-Error-Type`` header)."""
    return {"detail": detail, **({"error_type": error_type} if error_type else {})}


def encode_error_bytes(detail: Any, error_type: str | None = None) -> bytes:
    return json.dumps(encode_error(detail, error_type)).encode()


def decode_error(body: Any, headers: Mapping[str, str] | None = None) -> tuple[Any, str | None]:
    """``(detail, error_type)`` of an error body: the app's ``detail`` (pydantic's list for a 422),
    else the whole body; the type from the body, else from ``X-Fal-Error-Type`` in ``headers``
    (a case-insensitive mapping, as httpx's and Starlette's are)."""
    found = body if isinstance(body, dict) else {}
    detail = found["detail"] if "detail" in found else body
    error_type = found.get("error_type") or (headers or {}).get(ERROR_TYPE)
    return detail, error_type


# -- statuses -------------------------------------------------------------------------------------
class RequestStatus(StrEnum):
    """A queued request's status, as a status answer names it."""

    IN_QUEUE = "IN_QUEUE"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"


@dataclass(frozen=True)
class Queued:
    """Waiting for a runner; ``position`` 0 is next."""

    position: int


@dataclass(frozen=True)
class InProgress:
    """A runner is working on it; ``logs`` are entries ``{timestamp, message, level, source?}``."""

    logs: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Completed:
    """Done: the result (or the app's error, then ``error``/``error_type``) is at the response URL."""

    logs: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    error_type: str | None = None


Status = Queued | InProgress | Completed


def status_code(status: Status) -> int:
    """The HTTP status of a status answer: 202 while queued or running, 200 once completed."""
    return 200 if isinstance(status, Completed) else 202


def encode_status(status: Status, *, request_id: str, response_url: str, with_logs: bool) -> dict[str, Any]:
    """A status answer; ``logs`` is null unless they were asked for (``?logs=1``)."""
    logs = status.logs if with_logs and not isinstance(status, Queued) else None
    common = {"request_id": request_id, "response_url": response_url}
    if isinstance(status, Queued):
        return {"status": RequestStatus.IN_QUEUE, "queue_position": status.position, **common}
    if isinstance(status, InProgress):
        return {"status": RequestStatus.IN_PROGRESS, "logs": logs, **common}
    body: dict[str, Any] = {"status": RequestStatus.COMPLETED, "logs": logs, **common, "metrics": status.metrics}
    if status.error is not None:
        body.update(error=status.error, error_type=status.error_type)
    return body


def decode_status(data: Any) -> Status:
    """The status in a status answer (``IN_QUEUE``, ``IN_PROGRESS`` or ``COMPLETED``); ValueError if none."""
    state = data.get("status") if isinstance(data, dict) else None
    if state == RequestStatus.IN_QUEUE:
        return Queued(position=int(data.get("queue_position") or 0))
    if state == RequestStatus.IN_PROGRESS:
        return InProgress(logs=list(data.get("logs") or []))
    if state == RequestStatus.COMPLETED:
        return Completed(
            logs=list(data.get("logs") or []),
            metrics=dict(data.get("metrics") or {}),
            error=data.get("error"),
            error_type=data.get("error_type"),
        )
    raise ValueError(f"unknown request status {state!r}")


# -- submit answers -------------------------------------------------------------------------------
@dataclass(frozen=True)
class QueuedRequest:
    """A submitted request: its id and the URLs the queue gave for it."""

    request_id: str
    status_url: str
    response_url: str
    cancel_url: str


def encode_submit(request_id: str, request: str, position: int) -> dict[str, Any]:
    """The answer to a submit; ``request`` is the request's URL (see ``request_url``). Its
    ``gateway_request_id`` is the first attempt's (``gateway_request_id``)."""
    return {
        "status": RequestStatus.IN_QUEUE,
        "request_id": request_id,
        "gateway_request_id": request_id,
        "response_url": request,
        "status_url": status_url(request),
        "cancel_url": cancel_url(request),
        "queue_position": position,
    }


def gateway_request_id(request_id: str, attempt: int) -> str:
    """The id of one attempt of a queued request: the request's own for the first, a stable
    derived one for each retry (fal's ``gateway_request_id`` names the last attempt)."""
    if attempt <= 1:
        return request_id
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{request_id}/attempt/{attempt}"))


def decode_submit(data: Any, app_queue_url: str) -> QueuedRequest:
    """The request in a submit answer; URLs the server left out follow ``<app queue base>/requests/<id>``."""
    if not isinstance(data, dict) or not isinstance(data.get("request_id"), str):
        raise ValueError("the submit answer has no request_id")
    request_id = data["request_id"]
    request = request_url(app_queue_url, request_id)
    return QueuedRequest(
        request_id,
        data.get("status_url") or status_url(request),
        data.get("response_url") or request,
        data.get("cancel_url") or cancel_url(request),
    )


# -- cancel answers -------------------------------------------------------------------------------
class CancelAnswer(StrEnum):
    """The answers to a cancel."""

    OK = "OK"
    CANCELLATION_REQUESTED = "CANCELLATION_REQUESTED"
    ALREADY_COMPLETED = "ALREADY_COMPLETED"
    NOT_FOUND = "NOT_FOUND"

    @property
    def http_status(self) -> int:
        """The HTTP status the gateway gives the answer."""
        return _CANCEL_STATUSES[self]


_CANCEL_STATUSES = {
    CancelAnswer.OK: 200,
    CancelAnswer.CANCELLATION_REQUESTED: 202,
    CancelAnswer.ALREADY_COMPLETED: 400,
    CancelAnswer.NOT_FOUND: 404,
}


def encode_cancel(answer: CancelAnswer) -> dict[str, str]:
    return {"status": answer}


def decode_cancel(body: Any, *, success: bool) -> CancelAnswer | None:
    """The answer in a cancel's body (a JSON object or a bare word), ``OK`` for another success,
    None for an answer that is not one."""
    answer = body.get("status") if isinstance(body, dict) else body
    if isinstance(answer, str) and answer in set(CancelAnswer):
        return CancelAnswer(answer)
    return CancelAnswer.OK if success else None


# -- webhooks -------------------------------------------------------------------------------------
#: A completed queued request submitted with ``?fal_webhook=<url>`` is POSTed there, signed: ED25519
#: over ``request id, user id, timestamp, sha256(body)`` (hex), one per line; the public keys are a
#: JWKS at JWKS_PATH (fal's is on its REST host); receivers refuse timestamps TIMESTAMP_TOLERANCE off.
WEBHOOK_REQUEST_ID = "X-Fal-Webhook-Request-Id"
WEBHOOK_USER_ID = "X-Fal-Webhook-User-Id"
WEBHOOK_TIMESTAMP = "X-Fal-Webhook-Timestamp"
WEBHOOK_SIGNATURE = "X-Fal-Webhook-Signature"
JWKS_PATH = "/.well-known/jwks.json"
WEBHOOK_TIMESTAMP_TOLERANCE = 300


class WebhookStatus(StrEnum):
    """A webhook payload's ``status``: the request succeeded, or ended with an error."""

    OK = "OK"
    ERROR = "ERROR"


def encode_webhook(request_id: str, gateway_request_id: str, status: int, body: bytes) -> dict[str, Any]:
    """fal's webhook payload for a request that ended with ``status`` and ``body``: ``payload`` is
    the JSON result (null, with ``payload_error``, when it is not JSON); a failure has ``error``."""
    payload: dict[str, Any] = {
        "request_id": request_id,
        "gateway_request_id": gateway_request_id,
        "status": WebhookStatus.OK if status < 400 else WebhookStatus.ERROR,
    }
    try:
        payload["payload"] = json.loads(body)
    except ValueError as exc:
        payload["payload"] = None
        payload["payload_error"] = f"The result is not valid JSON: {exc}"
    if status >= 400:
        payload["error"] = f"Invalid status code: {status}"
    return payload


def webhook_message(request_id: str, user_id: str, timestamp: str, body: bytes) -> bytes:
    """What a webhook's signature signs."""
    return "\n".join([request_id, user_id, timestamp, hashlib.sha256(body).hexdigest()]).encode()


# -- realtime sessions ----------------------------------------------------------------------------
#: fal marks an app's websocket endpoints on their OpenAPI path item: ``{"type": "realtime" |
#: "websocket", "realtimeMode", "contentType", "config"}`` (fal's ``FalFastAPI.openapi``); a realtime
#: endpoint with models also gets a POST operation that only describes them.
PROTOCOL_KEY = "x-fal-protocol"
#: fal's order of an app's endpoints (on the document) and of a model's fields (on its schema).
ORDER_PATHS = "x-fal-order-paths"
ORDER_PROPERTIES = "x-fal-order-properties"
REALTIME, WEBSOCKET = "realtime", "websocket"
#: A realtime endpoint's messages, both ways, unless the app chose its own encoding.
REALTIME_CONTENT_TYPE = "application/msgpack"
#: The platform's own messages in a realtime session are JSON text frames with a ``type``: an error
#: (``error``: ``INTERNAL_ERROR``, ``TIMEOUT``...; ``reason``), after which the app closes the
#: session, and meta messages (timings), which are not outputs.
REALTIME_ERROR = "x-fal-error"
#: The error a realtime session ends with when the app closes it for being idle: a note, not a failure.
REALTIME_TIMEOUT = "TIMEOUT"
REALTIME_META = "x-fal-message"


# -- server-sent events ---------------------------------------------------------------------------
def encode_event(data: Any) -> str:
    """One server-sent event whose data is ``data`` as JSON."""
    return f"data: {json.dumps(data)}\n\n"


#: A status stream sends a comment after this many seconds without an event, so that proxies and
#: clients see the connection alive; clients ignore comments.
KEEPALIVE_SECONDS = 1.0
KEEPALIVE = ": keep-alive\n\n"


class SSEParser:
    """Feed it the lines of an event stream; it returns ``(event, data)`` at each event's end."""

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []

    def feed(self, line: str) -> tuple[str, str] | None:
        if not line:  # a blank line ends the event (feed "" at the end of the stream to flush)
            event, data = self._event or "message", self._data
            self._event, self._data = "", []
            return (event, "\n".join(data)) if data else None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        return None  # comments (":...") and the id/retry fields carry nothing we use


# -- retries --------------------------------------------------------------------------------------
#: Answers a client tries again: 408/409/429, and 502/503/504 from an ingress (see ``retryable``).
RETRY_STATUSES = frozenset({408, 409, 429})
GATEWAY_STATUSES = frozenset({502, 503, 504})


class RetryCondition(StrEnum):
    """fal's queue retries a request on these conditions (``retry_config``, ``skip_retry_conditions``)."""

    SERVER_ERROR = "server_error"
    CONNECTION_ERROR = "connection_error"
    TIMEOUT = "timeout"


#: Request headers: no retry at all (``1``/``true``/``yes``); a per-condition budget (JSON
#: ``{"server_error": {"retries": 3}}``, honoured for the app's owner only).
NO_RETRY = "X-Fal-No-Retry"
RETRY_CONFIG = "X-Fal-Retry-Config"
#: Response headers of the app, consumed by the gateway: force (``1``) or prevent (``0``) a retry of a
#: 5xx or 429; stop (``1``/``true``) or keep (``0``/``false``) the runner whatever the status.
NEEDS_RETRY = "X-Fal-Needs-Retry"
STOP_RUNNER = "x-fal-stop-runner"


def retryable(status: int, headers: Mapping[str, str]) -> bool:
    """Whether a client should try an answer again. A 502-504 carrying a request id comes from the
    app, and one with a timeout type from a timeout the caller set: both are final."""
    if status in RETRY_STATUSES:
        return True
    return status in GATEWAY_STATUSES and REQUEST_ID not in headers and REQUEST_TIMEOUT_TYPE not in headers


def retry_after(headers: Mapping[str, str]) -> float | None:
    """The seconds a ``Retry-After`` header asks to wait, if it gives a number."""
    seconds = parse_count(headers.get(RETRY_AFTER, ""))
    return float(seconds) if seconds is not None else None


def retry_condition(status: int) -> RetryCondition | None:
    """The condition under which fal's queue retries an app's answer: 503 and 504 are ``server_error``
    (a timeout is the gateway's own: the app's ``request_timeout`` ran out)."""
    return RetryCondition.SERVER_ERROR if status in (503, 504) else None
