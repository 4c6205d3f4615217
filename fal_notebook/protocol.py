"""fal's queue protocol as plain functions: addresses, keys, retry policy, statuses, logs, SSE, errors.

Nothing here does I/O on the network: ``client.py`` sends the requests, sync or async, and uses these
functions to build them and to read the answers, so both flavours behave the same.
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import re
import ssl
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import httpx

from .errors import ConfigError, RequestError
from .secrets import REDACTED, redact
from .state import home

DEFAULT_GATEWAY_PORT = 8765
NAMESPACES = ("workflows", "comfy")  # fal endpoint ids with a namespace have three app segments
_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_ACCEPTED_FORMS = (
    "'local/<name>' (an app on the local gateway), '<owner>/<app>[/<path>]' (an app on fal), or an http(s):// URL"
)
Kind = Literal["local", "fal", "url"]


# -- addresses ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Address:
    """Where an endpoint lives: the app's sync and queue bases, and the endpoint path under them."""

    endpoint_id: str
    app_url: str
    app_queue_url: str
    path: str = "/"
    kind: Kind = "url"

    @property
    def url(self) -> str:
        return join_url(self.app_url, self.path)

    @property
    def queue_url(self) -> str:
        return join_url(self.app_queue_url, self.path)

    @property
    def loopback(self) -> bool:
        return _is_loopback(httpx.URL(self.app_url).host)


def join_url(base: str, *paths: str) -> str:
    """``base`` with the non-empty ``paths`` appended, one slash between parts, none at the end."""
    parts = [p.strip("/") for p in paths if p.strip("/")]
    return "/".join([base.rstrip("/"), *parts])


def join_path(*paths: str) -> str:
    """``/a/b`` from ``"/a"`` and ``"b/"``; ``/`` when all are empty."""
    return "/" + "/".join(p.strip("/") for p in paths if p.strip("/"))


def gateway_origin() -> str:
    """``http://127.0.0.1:<FAL_NOTEBOOK_GATEWAY_PORT>``, where the local gateway listens."""
    raw = os.environ.get("FAL_NOTEBOOK_GATEWAY_PORT", "").strip() or str(DEFAULT_GATEWAY_PORT)
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ConfigError(f"FAL_NOTEBOOK_GATEWAY_PORT must be a port number (1-65535), not {raw!r}.")
    return f"http://127.0.0.1:{int(raw)}"


def fal_hosts() -> tuple[str, str]:
    """fal's sync and queue hosts, from ``FAL_RUN_HOST`` and ``FAL_QUEUE_RUN_HOST`` as fal_client reads them."""
    run_host = os.environ.get("FAL_RUN_HOST") or "fal.run"
    return run_host, os.environ.get("FAL_QUEUE_RUN_HOST") or f"queue.{run_host}"


def resolve_address(target: str) -> Address:
    """The address of ``local/<name>``, ``<owner>/<app>[/<path>]`` or an ``http(s)://`` URL."""
    if not isinstance(target, str) or not target.strip():
        raise ConfigError(f"An endpoint is needed: {_ACCEPTED_FORMS}; got {target!r}.")
    target = target.strip()
    if "://" in target:
        return _address_of_url(target)
    app, path = _app_and_path(target, _ACCEPTED_FORMS)
    if app.startswith("local/"):
        origin = gateway_origin()
        return Address(target, f"{origin}/{app}", f"{origin}/queue/{app}", path, "local")
    return fal_address(target)


def fal_address(endpoint_id: str) -> Address:
    """The address of ``<owner>/<app>[/<path>]`` on fal (``FAL_RUN_HOST``, ``FAL_QUEUE_RUN_HOST``),
    whatever the owner is called: a fal deployment's id names fal even when its owner is ``local``."""
    endpoint_id = endpoint_id.strip()
    app, path = _app_and_path(endpoint_id, "'<owner>/<app>[/<path>]' (an app on fal)")
    run_host, queue_host = fal_hosts()
    return Address(endpoint_id, f"https://{run_host}/{app}", f"https://{queue_host}/{app}", path, "fal")


def _app_and_path(endpoint_id: str, accepted: str) -> tuple[str, str]:
    """``("owner/app", "/path")`` of an endpoint id (three app segments for fal's namespaces)."""
    segments = endpoint_id.strip("/").split("/")
    app_length = 3 if segments[0] in NAMESPACES else 2
    if len(segments) < app_length or not all(_SEGMENT.fullmatch(s) for s in segments):
        raise ConfigError(f"{endpoint_id!r} is not an endpoint: use {accepted}.")
    return "/".join(segments[:app_length]), join_path(*segments[app_length:])


def _address_of_url(url: str) -> Address:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ConfigError(f"{url!r} is not a valid URL ({exc}); use {_ACCEPTED_FORMS}.") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigError(f"{url!r} is not an endpoint: use {_ACCEPTED_FORMS}.")
    origin = f"{parsed.scheme}://{parsed.netloc.decode()}"
    segments = [s for s in parsed.path.split("/") if s]
    if segments[:1] == ["queue"]:  # a queue URL of a gateway: the sync base is the same without /queue
        segments = segments[1:]
    if segments[:1] == ["local"] and len(segments) >= 2:
        app, path = "/".join(segments[:2]), join_path(*segments[2:])
        kind: Kind = "local" if _is_loopback(parsed.host) else "url"  # a gateway elsewhere gets no local key
        return Address(_endpoint_id(app, path), f"{origin}/{app}", f"{origin}/queue/{app}", path, kind)
    run_host, queue_host = fal_hosts()
    netloc = parsed.netloc.decode()
    host = netloc.removeprefix("queue.") if netloc.startswith("queue.") else netloc
    if host in (run_host, "fal.run") or host.endswith(".fal.run"):
        app_length = 3 if segments[:1] and segments[0] in NAMESPACES else 2
        if len(segments) < app_length:
            raise ConfigError(f"{url!r} names no app: fal URLs look like https://fal.run/<owner>/<app>.")
        app, path = "/".join(segments[:app_length]), join_path(*segments[app_length:])
        queue = queue_host if host == run_host else f"queue.{host}"
        scheme = parsed.scheme
        return Address(_endpoint_id(app, path), f"{scheme}://{host}/{app}", f"{scheme}://{queue}/{app}", path, "fal")
    # Any other server: the whole URL is the app, and its queue follows the gateway's layout.
    return Address(url, join_url(origin, *segments), join_url(origin, "queue", *segments), "/", "url")


def _endpoint_id(app: str, path: str) -> str:
    return app + path.rstrip("/")


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- keys -----------------------------------------------------------------------------------------
def gateway_key_file() -> Path:
    """The local gateway's key, ``<FAL_NOTEBOOK_HOME>/gateway/key``, content ``<id>:<secret>``."""
    return home() / "gateway" / "key"


def gateway_key() -> str | None:
    try:
        return gateway_key_file().read_text().strip() or None
    except FileNotFoundError:
        return None


def fal_key() -> str | None:
    """The fal key fal itself would use (environment, fal's profile config, Colab, ``%fal_login``)."""
    from .credentials import fal_key as credentials_key

    return credentials_key()


def default_key(address: Address) -> str | None:
    """The key to send when none is given: the gateway's to the local gateway, fal's to fal, else none.

    A URL of any other server gets no key by default, so fal credentials never leak to it.
    """
    if address.kind == "local":
        return gateway_key()
    if address.kind == "fal":
        return fal_key()
    return None


def scrub(text: str, key: str | None) -> str:
    """``text`` without credentials: the known environment secrets and ``key`` (also each half)."""
    text = redact(text)
    if key:
        halves = [part for part in key.split(":", 1) if len(part) >= 8]
        for part in sorted({key, *halves}, key=len, reverse=True):
            text = text.replace(part, REDACTED)
    return text


# -- retries --------------------------------------------------------------------------------------
RETRY_STATUSES = frozenset({408, 409, 429})
GATEWAY_STATUSES = frozenset({502, 503, 504})  # from an ingress or gateway, not from the app itself


@dataclass(frozen=True)
class RetryPolicy:
    """Transport errors, 408/409/429 and ingress 502/503/504 are retried, with exponential back-off.

    ``attempts`` bounds the tries (the first included); the wait before try ``n+1`` is
    ``base_delay * 2**(n-1)``, jittered by ±50%, never more than ``max_delay``.
    """

    attempts: int = 8
    base_delay: float = 0.1
    max_delay: float = 10.0

    def delay(self, attempt: int, response: httpx.Response | None = None) -> float:
        wait = self.base_delay * 2 ** (attempt - 1) * random.uniform(0.5, 1.5)
        if response is not None and (after := response.headers.get("retry-after", "")).isdigit():
            wait = max(wait, float(after))
        return min(wait, self.max_delay)


def retryable_response(response: httpx.Response) -> bool:
    if response.status_code in RETRY_STATUSES:
        return True
    # 502-504 carrying a request id come from the app (or a timeout the caller set): they are final.
    headers = response.headers
    return (
        response.status_code in GATEWAY_STATUSES
        and "x-fal-request-id" not in headers
        and "x-fal-request-timeout-type" not in headers
    )


def retry_wait(
    policy: RetryPolicy,
    attempt: int,
    *,
    response: httpx.Response | None = None,
    error: httpx.TransportError | None = None,
    bounded: bool = False,
) -> float | None:
    """Seconds to wait before trying again, or None when the answer (or error) is final.

    ``bounded``: the caller set its own timeout, so a timeout is final rather than retried. A refused
    certificate is final too: trying again cannot change it.
    """
    if attempt >= policy.attempts:
        return None
    if error is not None:
        final = (bounded and isinstance(error, httpx.TimeoutException)) or certificate_refused(error)
        return None if final else policy.delay(attempt)
    return policy.delay(attempt, response) if response is not None and retryable_response(response) else None


def certificate_refused(error: BaseException) -> bool:
    """Whether the TLS certificate check failed somewhere in the error's chain of causes."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


# -- statuses and logs ----------------------------------------------------------------------------
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


def decode_status(data: Any) -> Status:
    """The status object of a status answer (``IN_QUEUE``, ``IN_PROGRESS`` or ``COMPLETED``)."""
    state = data.get("status") if isinstance(data, dict) else None
    if state == "IN_QUEUE":
        return Queued(position=int(data.get("queue_position") or 0))
    if state == "IN_PROGRESS":
        return InProgress(logs=list(data.get("logs") or []))
    if state == "COMPLETED":
        return Completed(
            logs=list(data.get("logs") or []),
            metrics=dict(data.get("metrics") or {}),
            error=data.get("error"),
            error_type=data.get("error_type"),
        )
    raise ValueError(f"unknown request status {state!r}")


class EventFilter:
    """Turns successive status answers into events: only changes, and every log entry exactly once.

    The server's log list is a moving window, so consecutive answers overlap. An entry is new when
    the current window holds more copies of it than any earlier window did: overlaps are dropped,
    and identical lines logged twice are both kept.
    """

    def __init__(self) -> None:
        self._seen: Counter[str] = Counter()
        self._state: object = None

    def __call__(self, status: Status) -> Status | None:
        if not isinstance(status, Queued):
            status = replace(status, logs=self._fresh(status.logs))
        state = status if isinstance(status, Queued) else type(status)
        news = isinstance(status, Completed) or state != self._state or bool(getattr(status, "logs", None))
        self._state = state
        return status if news else None

    def _fresh(self, logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        window: Counter[str] = Counter()
        fresh = []
        for entry in logs:
            identity = json.dumps(entry, sort_keys=True, default=str)
            window[identity] += 1
            if window[identity] > self._seen[identity]:
                self._seen[identity] = window[identity]
                fresh.append(entry)
        return fresh


# -- queue answers --------------------------------------------------------------------------------
@dataclass(frozen=True)
class QueuedRequest:
    """A submitted request: its id and the URLs the queue gave for it."""

    request_id: str
    status_url: str
    response_url: str
    cancel_url: str


def queued_request(data: Any, address: Address) -> QueuedRequest:
    """Read a submit answer; URLs the server left out follow ``<queue base>/requests/<id>``."""
    if not isinstance(data, dict) or not isinstance(data.get("request_id"), str):
        raise ValueError("the submit answer has no request_id")
    request_id = data["request_id"]
    base = join_url(address.app_queue_url, "requests", request_id)
    return QueuedRequest(
        request_id,
        data.get("status_url") or f"{base}/status",
        data.get("response_url") or base,
        data.get("cancel_url") or f"{base}/cancel",
    )


CANCEL_ANSWERS = frozenset({"OK", "CANCELLATION_REQUESTED", "ALREADY_COMPLETED", "NOT_FOUND"})


def cancel_answer(response: httpx.Response) -> str | None:
    """The queue's answer to a cancel (``CANCELLATION_REQUESTED``...), None if it is not one."""
    try:
        body = response.json()
    except ValueError:
        body = response.text.strip()
    answer = body.get("status") if isinstance(body, dict) else body
    if isinstance(answer, str) and answer in CANCEL_ANSWERS:
        return answer
    return "OK" if response.is_success else None


# -- server-sent events ---------------------------------------------------------------------------
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


# -- errors ---------------------------------------------------------------------------------------
def response_detail(response: httpx.Response) -> Any:
    """The app's ``detail`` (pydantic's list for 422), else the whole JSON body, else the text."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:2000]
    return body["detail"] if isinstance(body, dict) and "detail" in body else body


def request_error(
    response: httpx.Response,
    address: Address,
    *,
    key: str | None,
    request_id: str | None = None,
    attempts: int = 1,
    from_app: bool = False,
) -> RequestError:
    """The error for an HTTP error answer: endpoint, status code, detail, request id and what to do.

    ``request_id``: the queued request the answer is about (a 404 from the queue then means that
    request is unknown); ``from_app``: the answer is the app's own, the result of a completed request;
    ``attempts``: how often a retryable answer was tried.
    """
    status, detail = response.status_code, response_detail(response)
    where = f"{response.request.method} {response.request.url.copy_with(query=None)}"
    if status == 422:
        problem = f"invalid input (HTTP 422) for {where}:\n{render_validation(detail)}"
        todo = "Fix these fields and call again."
    elif status in (401, 403):
        problem = f"not authorized (HTTP {status}): {render_detail(detail)}."
        todo = _auth_hint(address, key)
    elif status == 404:
        problem = f"not found (HTTP 404) for {where}: {render_detail(detail)}."
        unknown_request = request_id and not from_app
        todo = (
            "No request with this id: it is unknown, or its result expired."
            if unknown_request
            else "Unknown app or path: check the endpoint id and the path (openapi() lists the app's paths; "
            "%fal_apps lists local apps)."
        )
    elif status in RETRY_STATUSES or status in GATEWAY_STATUSES:
        tries = f", still after {attempts} tries" if attempts > 1 and retryable_response(response) else ""
        problem = f"unavailable (HTTP {status}{tries}): {render_detail(detail)}."
        todo = "The app may be starting, overloaded or stopped: check it (%fal_apps, %fal_logs) and try again."
    elif status >= 500:
        problem = f"the app failed (HTTP {status}): {render_detail(detail)}."
        todo = "Its logs say why: handle.status(logs=True) for a queued request, %fal_logs NAME for a local app."
    else:
        problem = f"HTTP {status} for {where}: {render_detail(detail)}."
        todo = ""
    return make_error(
        address,
        problem,
        todo,
        key=key,
        status_code=status,
        detail=detail,
        request_id=request_id or response.headers.get("x-fal-request-id"),
        error_type=_error_type(response),
    )


def transport_error(error: Exception, address: Address, url: str, *, key: str | None, attempts: int) -> RequestError:
    """The error when the endpoint could not be reached at all."""
    if address.kind == "local":
        todo = (
            "Is the local gateway running? Deploy the app (%fal_deploy NAME) or start it with "
            "`fal-notebook gateway start`."
        )
    else:
        todo = "Check the URL and your network connection."
    tries = f" ({attempts} tries)" if attempts > 1 else ""
    problem = f"could not reach {url}{tries}: {type(error).__name__}: {error}."
    return make_error(address, problem, todo, key=key, detail=str(error))


def make_error(
    address: Address,
    problem: str,
    todo: str,
    *,
    key: str | None,
    status_code: int | None = None,
    detail: Any = None,
    request_id: str | None = None,
    error_type: str | None = None,
    cls: type[RequestError] = RequestError,
) -> RequestError:
    """A ``cls`` error whose message reads ``<endpoint>: <problem> <todo> (request id <id>)``, key-free."""
    suffix = f" (request id {request_id})" if request_id else ""
    message = scrub(f"{address.endpoint_id}: {problem} {todo}".rstrip() + suffix, key)
    return cls(
        message,
        status_code=status_code,
        detail=_scrub_value(detail, key),
        request_id=request_id,
        endpoint_id=address.endpoint_id,
        error_type=error_type,
    )


def render_validation(detail: Any) -> str:
    """pydantic's error list as one line per field: ``  - images[0].url: Field required``."""
    if not isinstance(detail, list):
        return f"  - {render_detail(detail)}"
    lines = []
    for item in detail:
        if isinstance(item, dict):
            lines.append(f"  - {render_location(item.get('loc') or [])}: {item.get('msg', item)}")
        else:
            lines.append(f"  - {item}")
    return "\n".join(lines)


def render_location(loc: list[Any]) -> str:
    """``["body", "images", 0, "url"]`` → ``images[0].url``; query parameters are named as such."""
    source, rest = "body", list(loc)
    if rest and rest[0] in ("body", "query", "path", "header"):
        source, rest = rest[0], rest[1:]
    text = ""
    for part in rest:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    if not text:
        return "the request body" if source == "body" else f"the {source}"
    return text if source == "body" else f"{source} parameter {text}"


def render_detail(detail: Any) -> str:
    """The detail as text for a sentence: at most 1000 characters, without a final full stop."""
    text = detail if isinstance(detail, str) else json.dumps(detail, default=str)
    text = (text[:1000] + "...") if len(text) > 1000 else (text or "no detail")
    return text.removesuffix(".")


def _error_type(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        body = None
    found = body.get("error_type") if isinstance(body, dict) else None
    return found or response.headers.get("x-fal-error-type")


def _auth_hint(address: Address, key: str | None) -> str:
    sent = "The key sent was refused." if key else "No key was sent."
    if address.kind == "local":
        return (
            f"{sent} This app is private: the local gateway wants its own key, which connect() reads from "
            f"{gateway_key_file()} when no key= is given (the gateway writes it when it starts; "
            "FAL_NOTEBOOK_HOME must be the gateway's)."
        )
    if address.kind == "fal":
        return (
            f"{sent} Set FAL_KEY to your fal key ('<key_id>:<key_secret>') or pass key= to connect(); "
            "if it is set, it is wrong or has no access to this app."
        )
    return f"{sent} Pass the app's key: connect(url, key=...)."


def _scrub_value(value: Any, key: str | None) -> Any:
    if value is None:
        return None
    text = json.dumps(value, default=str)
    cleaned = scrub(text, key)
    return value if cleaned == text else json.loads(cleaned)
