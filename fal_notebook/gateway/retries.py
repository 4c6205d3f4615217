"""fal's retry rules for one attempt of a request, as one pure function (docs/fal-conformance.md,
"Retries"). The runtime asks ``decide`` after every attempt; it never re-implements a rule.

- Only queued requests are retried; a sync call never is (the runner may still be stopped).
- Conditions: ``server_error`` (the app answered 503 or 504, or its answer broke off), ``timeout``
  (the app's ``request_timeout`` ran out), ``connection_error`` (the connection to the runner broke).
- The app's ``X-Fal-Needs-Retry`` on a 5xx or 429 forces (``1``) or prevents (``0``) a retry, above
  the status and ``skip_retry_conditions``; elsewhere it is ignored.
- The caller's ``X-Fal-No-Retry`` wins over everything. Its ``X-Fal-Retry-Config`` (owner only) sets
  per-condition budgets above the app's ``retry_config``; a budget counts retries after the first
  attempt, each condition its own; never more than ``MAX_ATTEMPTS`` attempts in all.
- Attempts are spaced by an exponential backoff, and a retry that could not start before the
  caller's start deadline (``X-Fal-Request-Timeout``) is not made.
- 503 stops the runner, as do a timeout and a lost connection; ``x-fal-stop-runner`` overrides that.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import wire
from ..wire import RetryCondition

#: fal's ceiling: a request is tried at most this many times, whatever the budgets say.
MAX_ATTEMPTS = 10
#: The pause before retry n (n = 1, 2...) is BACKOFF_BASE * 2 ** (n - 1), at most BACKOFF_CAP.
BACKOFF_BASE = 0.1
BACKOFF_CAP = 2.0

#: How an attempt failed without an answer from the app (``Attempt.failure``).
TIMED_OUT, DISCONNECTED, INCOMPLETE = "timed_out", "disconnected", "incomplete"
_FAILURE_CONDITIONS = {
    TIMED_OUT: RetryCondition.TIMEOUT,
    DISCONNECTED: RetryCondition.CONNECTION_ERROR,
    INCOMPLETE: RetryCondition.SERVER_ERROR,
}
_TRUE, _FALSE = ("1", "true", "yes"), ("0", "false", "no")


@dataclass(frozen=True)
class Attempt:
    """How one attempt ended: the app's status and response headers, or the gateway's ``failure``
    (``TIMED_OUT``, ``DISCONNECTED``, ``INCOMPLETE``) with the status the gateway answers for it."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    failure: str | None = None


@dataclass(frozen=True)
class Policy:
    """The app's own retry settings: per-condition budgets (``retry_config``) and ``skip_retry_conditions``."""

    budgets: Mapping[str, int] = field(default_factory=dict)
    skip: frozenset[str] = frozenset()

    @classmethod
    def from_config(cls, retry_config: Mapping[Any, object] | None, skip: Iterable[str] | None) -> Policy:
        return cls(budgets=parse_budgets(retry_config or {}), skip=frozenset(skip or ()))


@dataclass(frozen=True)
class Decision:
    retry: bool
    #: The retry condition the failure falls under (None: not a failure fal retries).
    condition: wire.RetryCondition | None
    #: Seconds to wait before the next attempt (0 when there is none).
    delay: float
    stop_runner: bool
    #: Why, in a sentence for the request's log.
    reason: str


def decide(
    attempt: Attempt,
    *,
    request_headers: Mapping[str, str],
    policy: Policy,
    attempts: int,
    failures: Mapping[str, int],
    queued: bool = True,
    owner: bool = True,
    now: float = 0.0,
    deadline: float | None = None,
) -> Decision:
    """Retry or final, for an attempt that ended as ``attempt``. ``attempts`` counts the attempts
    made (this one included), ``failures`` the earlier failed attempts per condition; ``owner`` says
    whether the caller owns the app (``X-Fal-Retry-Config`` counts only then); ``now`` and
    ``deadline`` are on one clock (the start deadline, None without ``X-Fal-Request-Timeout``)."""
    response = _lower(attempt.headers)
    request = _lower(request_headers)
    condition = condition_of(attempt)
    stop = stops_runner(attempt)

    def final(reason: str) -> Decision:
        return Decision(False, condition, 0.0, stop, reason)

    needs = response.get(wire.NEEDS_RETRY.lower(), "").strip() if _honours_needs_retry(attempt.status) else ""
    if not queued:
        return final("a sync call is never retried")
    if request.get(wire.NO_RETRY.lower(), "").strip().lower() in _TRUE:
        return final(f"the caller sent {wire.NO_RETRY}")
    if needs == "0":
        return final(f"the app answered {wire.NEEDS_RETRY}: 0")
    if needs == "1":
        condition = condition or RetryCondition.SERVER_ERROR
    elif condition is None:
        return final(f"status {attempt.status} is not retried")
    elif condition in policy.skip:
        return final(f"{condition} is in the app's skip_retry_conditions")
    budgets = {**policy.budgets, **(request_budgets(request) if owner else {})}
    budget = budgets.get(condition, MAX_ATTEMPTS - 1)
    if failures.get(condition, 0) + 1 > budget:
        return final(f"its {condition} budget of {budget} retries is spent")
    if attempts >= MAX_ATTEMPTS:
        return final(f"it was tried {MAX_ATTEMPTS} times")
    delay = backoff(attempts)
    if deadline is not None and now + delay >= deadline:
        return final(f"its {wire.REQUEST_TIMEOUT} deadline passes before another attempt")
    return Decision(True, condition, delay, stop, f"{condition}: retrying in {delay:g} s")


def condition_of(attempt: Attempt) -> wire.RetryCondition | None:
    """The retry condition an attempt's failure falls under, None for an answer fal does not retry."""
    if attempt.failure is not None:
        return _FAILURE_CONDITIONS[attempt.failure]
    return wire.retry_condition(attempt.status)


def stops_runner(attempt: Attempt) -> bool:
    """Whether the runner goes after this attempt: after a timeout or a lost connection, on a 503,
    or as the app's ``x-fal-stop-runner`` says."""
    if attempt.failure in (TIMED_OUT, DISCONNECTED):
        return True
    said = _lower(attempt.headers).get(wire.STOP_RUNNER.lower(), "").strip().lower()
    if said in _TRUE or said in _FALSE:
        return said in _TRUE
    return attempt.status == 503


def backoff(attempts: int) -> float:
    """Seconds to wait before the next attempt, after ``attempts`` attempts."""
    return min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(attempts - 1, 0))


def request_budgets(headers: Mapping[str, str]) -> dict[str, int]:
    """The budgets in an ``X-Fal-Retry-Config`` header; invalid JSON or entries are ignored, as fal does."""
    raw = _lower(headers).get(wire.RETRY_CONFIG.lower())
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    return parse_budgets(data) if isinstance(data, dict) else {}


def parse_budgets(config: Mapping[str, object]) -> dict[str, int]:
    """``{condition: retries}`` from ``{condition: {"retries": n}}``; other shapes and names are ignored."""
    budgets: dict[str, int] = {}
    for condition, entry in config.items():
        retries = entry.get("retries") if isinstance(entry, Mapping) else getattr(entry, "retries", None)
        if condition in set(wire.RetryCondition) and isinstance(retries, int) and not isinstance(retries, bool):
            budgets[wire.RetryCondition(condition)] = max(retries, 0)
    return budgets


def _honours_needs_retry(status: int) -> bool:
    return status >= 500 or status == 429


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}
