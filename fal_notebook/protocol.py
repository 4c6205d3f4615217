"""fal's queue protocol on the client's side: addresses, keys, the retry policy, log windows, errors.

The facts of the protocol (hosts, URL layout, headers, statuses, bodies) are in ``wire.py``; this
module applies them to a caller's situation (its environment, its key, its errors). Nothing here
does I/O on the network: ``client.py`` sends the requests, sync or async, and uses these functions
to build them and to read the answers, so both flavours behave the same.
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import re
import ssl
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeVar

import httpx

from . import wire
from .credentials import fal_key
from .errors import ConfigError, RequestError
from .secrets import REDACTED, redact
from .state import gateway_key_file, gateway_port, read_gateway_key
from .wire import Completed, Queued, Status, join_path, join_url

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


def gateway_origin() -> str:
    """``http://127.0.0.1:<FAL_NOTEBOOK_GATEWAY_PORT>``, where the local gateway listens."""
    return wire.gateway_origin(gateway_port())


def fal_hosts() -> tuple[str, str]:
    """fal's sync and queue hosts, from ``FAL_RUN_HOST`` and ``FAL_QUEUE_RUN_HOST`` as fal_client reads them."""
    run_host = os.environ.get(wire.RUN_HOST_VARIABLE) or wire.FAL_RUN_HOST
    return run_host, os.environ.get(wire.QUEUE_HOST_VARIABLE) or wire.queue_host(run_host)


def resolve_address(target: str) -> Address:
    """The address of ``local/<name>``, ``<owner>/<app>[/<path>]`` or an ``http(s)://`` URL."""
    if not isinstance(target, str) or not target.strip():
        raise ConfigError(f"An endpoint is needed: {_ACCEPTED_FORMS}; got {target!r}.")
    target = target.strip()
    if "://" in target:
        return _address_of_url(target)
    app, path = _app_and_path(target, _ACCEPTED_FORMS)
    if app.split("/")[0] == wire.LOCAL_OWNER:
        return Address(target, *wire.app_urls(gateway_origin(), app), path, "local")
    return fal_address(target)


def fal_address(endpoint_id: str) -> Address:
    """The address of ``<owner>/<app>[/<path>]`` on fal (``FAL_RUN_HOST``, ``FAL_QUEUE_RUN_HOST``),
    whatever the owner is called: a fal deployment's id names fal even when its owner is ``local``."""
    endpoint_id = endpoint_id.strip()
    app, path = _app_and_path(endpoint_id, "'<owner>/<app>[/<path>]' (an app on fal)")
    return Address(endpoint_id, *wire.fal_app_urls(*fal_hosts(), app), path, "fal")


def _app_and_path(endpoint_id: str, accepted: str) -> tuple[str, str]:
    """``("owner/app", "/path")`` of an endpoint id (three app segments for fal's namespaces)."""
    segments = endpoint_id.strip("/").split("/")
    app_length = 3 if segments[0] in wire.NAMESPACES else 2
    if len(segments) < app_length or not all(_SEGMENT.fullmatch(s) for s in segments):
        raise ConfigError(f"{endpoint_id!r} is not an endpoint: use {accepted}.")
    return "/".join(segments[:app_length]), _path(segments[app_length:], endpoint_id)


def _address_of_url(url: str) -> Address:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ConfigError(f"{url!r} is not a valid URL ({exc}); use {_ACCEPTED_FORMS}.") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigError(f"{url!r} is not an endpoint: use {_ACCEPTED_FORMS}.")
    origin = f"{parsed.scheme}://{parsed.netloc.decode()}"
    segments = [s for s in parsed.path.split("/") if s]
    if segments[:1] == [wire.QUEUE_SEGMENT]:  # a queue URL of a gateway: the sync base is the same without it
        segments = segments[1:]
    if segments[:1] == [wire.LOCAL_OWNER] and len(segments) >= 2:
        app, path = "/".join(segments[:2]), _path(segments[2:], parsed.path)
        kind: Kind = "local" if _is_loopback(parsed.host) else "url"  # a gateway elsewhere gets no local key
        return Address(_endpoint_id(app, path), *wire.app_urls(origin, app), path, kind)
    run_host, queue_host = fal_hosts()
    netloc = parsed.netloc.decode()
    host = netloc.removeprefix(wire.QUEUE_HOST_PREFIX)
    if host in (run_host, wire.FAL_RUN_HOST) or host.endswith("." + wire.FAL_RUN_HOST):
        app_length = 3 if segments[:1] and segments[0] in wire.NAMESPACES else 2
        if len(segments) < app_length:
            raise ConfigError(f"{url!r} names no app: fal URLs look like https://{wire.FAL_RUN_HOST}/<owner>/<app>.")
        app, path = "/".join(segments[:app_length]), _path(segments[app_length:], parsed.path)
        queue = queue_host if host == run_host else wire.queue_host(host)
        scheme = parsed.scheme
        return Address(_endpoint_id(app, path), f"{scheme}://{host}/{app}", f"{scheme}://{queue}/{app}", path, "fal")
    # Any other server: the whole URL is the app, and its queue follows the gateway's layout.
    return Address(url, *wire.app_urls(origin, "/".join(segments)), "/", "url")


def _path(segments: list[str], written: str) -> str:
    """The endpoint path of ``segments``, with the trailing slash ``written`` has (``/items/``)."""
    path = join_path(*segments)
    return path + "/" if path != "/" and written.endswith("/") else path


def _endpoint_id(app: str, path: str) -> str:
    return app if path == "/" else app + path


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- keys -----------------------------------------------------------------------------------------
def default_key(address: Address) -> str | None:
    """The key to send when none is given: the gateway's to the local gateway, fal's to fal, else none.

    A URL of any other server gets no key by default, so fal credentials never leak to it.
    """
    if address.kind == "local":
        return read_gateway_key()
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
        if response is not None and (after := wire.retry_after(response.headers)) is not None:
            wait = max(wait, after)
        return min(wait, self.max_delay)


def retryable_response(response: httpx.Response) -> bool:
    return wire.retryable(response.status_code, response.headers)


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


# -- logs -----------------------------------------------------------------------------------------
class EventFilter:
    """Turns successive status answers into events: only changes, and every log entry exactly once.

    A polled status holds a moving window of the log, so consecutive answers overlap. An entry is
    new when the current window holds more copies of it than came before: overlaps are dropped,
    and identical lines logged twice are both kept. An event of a status stream holds only the
    entries since the one before (``delta``): all of them are new, and count as seen when a broken
    stream gives way to polling.
    """

    def __init__(self) -> None:
        self._seen: Counter[str] = Counter()
        self._state: object = None

    def __call__(self, status: Status, *, delta: bool = False) -> Status | None:
        if not isinstance(status, Queued):
            status = replace(status, logs=self._added(status.logs) if delta else self._fresh(status.logs))
        state = status if isinstance(status, Queued) else type(status)
        news = isinstance(status, Completed) or state != self._state or bool(getattr(status, "logs", None))
        self._state = state
        return status if news else None

    def _fresh(self, logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        window: Counter[str] = Counter()
        fresh = []
        for entry in logs:
            identity = _identity(entry)
            window[identity] += 1
            if window[identity] > self._seen[identity]:
                self._seen[identity] = window[identity]
                fresh.append(entry)
        return fresh

    def _added(self, logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        self._seen.update(map(_identity, logs))
        return logs


def _identity(entry: dict[str, Any]) -> str:
    return json.dumps(entry, sort_keys=True, default=str)


def stream_status(event: tuple[str, str]) -> Status | None:
    """The status in an event of a status stream (``data:`` one status object), None if it holds none."""
    name, data = event
    if name != "message":
        return None
    try:
        return wire.decode_status(json.loads(data))
    except (ValueError, TypeError):
        return None


# -- cancel answers -------------------------------------------------------------------------------
def cancel_answer(response: httpx.Response) -> str | None:
    """The queue's answer to a cancel (``CANCELLATION_REQUESTED``...), None if it is not one."""
    try:
        body = response.json()
    except ValueError:
        body = response.text.strip()
    return wire.decode_cancel(body, success=response.is_success)


# -- errors ---------------------------------------------------------------------------------------
def response_detail(response: httpx.Response) -> Any:
    """The app's ``detail`` (pydantic's list for 422), else the whole JSON body, else the text."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:2000]
    return wire.decode_error(body)[0]


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
    elif status in wire.RETRY_STATUSES or status in wire.GATEWAY_STATUSES:
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
        request_id=request_id or response.headers.get(wire.REQUEST_ID),
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


ErrorT = TypeVar("ErrorT", bound=RequestError)


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
    cls: type[ErrorT] = RequestError,  # type: ignore[assignment]
) -> ErrorT:
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
    return wire.decode_error(body, response.headers)[1]


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
