"""Headers on their way through the gateway, as fal's gateway treats them (docs/fal-conformance.md,
"Headers the app sees"): the one place that says what a caller's headers become for the app, what the
app's headers become for the caller, and which runner a ``X-Fal-Runner-Hint`` picks.

fal's platform headers (every ``x-fal-*`` a caller sends: ``X-Fal-No-Retry``, ``X-Fal-Store-IO``,
``X-Fal-Runner-Hint``...) are the gateway's: it reads them and the app never sees them. The app sees
the caller's other headers, and the identity headers the gateway adds: ``x-fal-request-id``,
``x-fal-endpoint`` (``local/<name>/<path>``) and ``x-fal-caller-user-id`` (the id half of the key the
caller sent).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

from .. import wire

#: Never forwarded either way: hop-by-hop headers, the caller's credentials, what the proxy recomputes.
_HOP = frozenset(
    {
        "host",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "proxy-authorization",
        "content-length",
        "authorization",
    }
)
#: Headers the app's answer carries for the gateway alone.
_CONSUMED_RESPONSE = frozenset({wire.NEEDS_RETRY.lower(), wire.STOP_RUNNER})
_RESPONSE_HOP = frozenset({"content-length", "connection", "transfer-encoding", "keep-alive", "date", "server"})
#: Platform headers without fal's prefix that fal's gateway consumes too.
_CONSUMED_REQUEST = frozenset({wire.DISABLE_FALLBACK})
#: Platform headers that fal's gateway passes on to the app, which reads them (fal ``app.py``,
#: ``toolkit/file/file.py``: the caller's lifecycle preference for the files the app returns).
_PASSED_ON = frozenset({wire.LIFECYCLE_PREFERENCE})
#: The identity headers the gateway adds; a caller cannot set them.
_IDENTITY = frozenset({wire.REQUEST_ID, wire.ENDPOINT, wire.CALLER_ID})

T = TypeVar("T")


def caller_id(key: str | None) -> str | None:
    """The caller's id for ``x-fal-caller-user-id``: the public half of the key it sent (None: no key)."""
    return key.partition(":")[0] or None if key else None


def kept_headers(incoming: Mapping[str, str], *, caller: str | None) -> dict[str, str]:
    """What the gateway keeps of a request's headers (stored with a queued request): the end-to-end
    ones, lower-cased, platform headers included; the caller's id is the gateway's to set."""
    kept = {}
    for name, value in incoming.items():
        lower = name.lower()
        if lower not in _HOP and lower not in _IDENTITY:
            kept[lower] = value
    if caller:
        kept[wire.CALLER_ID] = caller
    return kept


def app_headers(kept: Mapping[str, str], *, request_id: str, endpoint: str) -> dict[str, str]:
    """The headers the app receives: the caller's own (no platform header) and fal's identity headers.
    ``kept`` is what ``kept_headers`` returned; ``endpoint`` is ``local/<name>/<path>``."""
    out = {
        name: value
        for name, value in kept.items()
        if (not name.startswith(wire.FAL_HEADER_PREFIX) or name in _PASSED_ON)
        and name not in _CONSUMED_REQUEST
        and name not in _HOP
    }
    out[wire.REQUEST_ID] = request_id
    out[wire.ENDPOINT] = endpoint
    if kept.get(wire.CALLER_ID):
        out[wire.CALLER_ID] = kept[wire.CALLER_ID]
    return out


def endpoint_of(app: str, path: str) -> str:
    """``x-fal-endpoint`` for a call of ``path`` on ``app``: ``local/echo/``, ``local/echo/slow``."""
    return app + "/" + path.split("?", 1)[0].lstrip("/")


def caller_headers(app: Mapping[str, str]) -> dict[str, str]:
    """The app's response headers as the caller gets them: without hop-by-hop headers and without
    those that speak to the gateway (``X-Fal-Needs-Retry``, ``x-fal-stop-runner``)."""
    return {k: v for k, v in app.items() if k.lower() not in _RESPONSE_HOP and k.lower() not in _CONSUMED_RESPONSE}


def runner_hint(kept: Mapping[str, str]) -> str | None:
    """The runner a request prefers (``X-Fal-Runner-Hint``), None without one."""
    value = {k.lower(): v for k, v in kept.items()}.get(wire.RUNNER_HINT.lower(), "").strip()
    return value or None


def runner_hints(response: Mapping[str, str]) -> frozenset[str] | None:
    """The hints a runner gave in an answer (``X-Fal-Runner-Hints``, comma-separated), None when the
    answer has none (the app does not provide hints)."""
    raw = {k.lower(): v for k, v in response.items()}.get(wire.RUNNER_HINTS.lower())
    if raw is None:
        return None
    return frozenset(h.strip() for h in raw.split(",") if h.strip())


def prefer_hinted(hint: str | None, free: Iterable[tuple[T, frozenset[str]]]) -> T | None:
    """Among free runners and their hints, the first whose hints include ``hint``; without one (or
    without a hint), the first free runner: fal routes to any runner when the hinted one is busy."""
    candidates = list(free)
    if hint is not None:
        for runner, hints in candidates:
            if hint in hints:
                return runner
    return candidates[0][0] if candidates else None
