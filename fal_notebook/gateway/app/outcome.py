"""How a request ended: the app's answer, or the gateway's own error in fal's shape; and the one
place a queued request ends (``finish``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ... import wire
from .. import retries
from .host import Host


@dataclass
class Outcome:
    status: int
    body: bytes
    content_type: str = "application/json"
    error: str | None = None
    error_type: str | None = None
    elapsed: float = 0.0
    #: The app's answer headers (what retries.decide reads: X-Fal-Needs-Retry, x-fal-stop-runner).
    headers: dict[str, str] = field(default_factory=dict)
    #: How the gateway lost the attempt (retries.TIMED_OUT, DISCONNECTED), None when the app answered.
    failure: str | None = None

    @classmethod
    def failure_of(
        cls, status: int, detail: str, error_type: str, *, failure: str | None = None, elapsed: float = 0.0
    ) -> Outcome:
        """The gateway's own error answer, in fal's shape."""
        body = wire.encode_error_bytes(detail, error_type)
        return cls(status, body, error=detail, error_type=error_type, elapsed=elapsed, failure=failure)

    @property
    def attempt(self) -> retries.Attempt:
        return retries.Attempt(self.status, self.headers, self.failure)


def finish(host: Host, request_id: str, outcome: Outcome) -> None:
    """A queued request ends with ``outcome``: stored (durably), its watchers woken, its webhook due."""
    host.store.complete(
        request_id,
        outcome.status,
        outcome.body,
        outcome.content_type,
        error=outcome.error,
        error_type=outcome.error_type,
        inference_time=outcome.elapsed or None,
    )
    host.notify(request_id)
    host.completed(request_id)
