"""An app's status and the failures of its runners: the state machine of one app in the gateway.

::

    deploying ──a revision serves──▶ ready ──CRASH_LOOP failures in a row, no runner ready──▶ crash-looping
        │                              ▲                                                        │
        └──its first deploy fails──▶ failed           └─────────────a runner is ready again─────┘
    any ──stop──▶ stopped;  failed, stopped ──deploy──▶ deploying

A runner that fails to start or dies before serving makes the next start wait (exponential
back-off, capped, as Kubernetes' CrashLoopBackOff); after CRASH_LOOP failures in a row with no
runner serving the app is ``crash-looping``: it keeps trying. Pure: it reads its clock and does
nothing else; the rooms that start runners and hold work act on what it says.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...statuses import DOWN, SERVING, AppStatus
from ..runners import EXCEPTION_LINE
from ..supervisor import Clock

#: Consecutive runner failures (never ready, or died before serving) that make a crash loop.
CRASH_LOOP = 3
#: After a runner failure the next start waits 1 s, 2 s, 4 s... up to BACKOFF_CAP (Kubernetes'
#: CrashLoopBackOff doubles from 10 s to 5 min; a laptop's runners start in seconds, so it starts lower).
BACKOFF_BASE = 1.0
BACKOFF_CAP = 60.0


def backoff(failures: int) -> float:
    """Seconds to wait before the next runner start after ``failures`` failures in a row."""
    return min(BACKOFF_BASE * 2.0 ** max(failures - 1, 0), BACKOFF_CAP)


@dataclass(frozen=True)
class Failure:
    """What a runner failure did: the next start waits ``delay`` s; ``began``: the app began crash-looping."""

    delay: float
    began: bool


class Lifecycle:
    """One app's status, its error, and the back-off of its runner starts."""

    def __init__(self, name: str, clock: Clock, *, stopped: bool = False):
        self.name = name
        self.clock = clock
        self.status = AppStatus.STOPPED if stopped else AppStatus.DEPLOYING
        self.error: str | None = None
        self.failures = 0  # runner failures in a row
        self.retry_at = 0.0  # no runner starts before (monotonic clock)
        self.last_exit: str | None = None  # the last failure, for crash-looping's report
        self.down_since = 0.0  # crash-looping since (monotonic clock)

    # -- transitions ---------------------------------------------------------------------------
    def deploying(self, *, serving: bool) -> None:
        """A new revision rolls out; unless one ``serving`` keeps serving, the app is deploying.
        Its runners start afresh, with no back-off."""
        if self.status in DOWN or not serving:
            self.status, self.error = AppStatus.DEPLOYING, None
        self.failures, self.retry_at = 0, 0.0

    def restoring(self) -> None:
        self.status, self.error = AppStatus.DEPLOYING, None

    def serving(self) -> None:
        """A revision serves (a rollout was promoted or cancelled with one serving, or a restored one is ready)."""
        self.status, self.error = AppStatus.READY, None

    def failed(self, message: str) -> None:
        """Its first deploy failed: nothing serves."""
        self.status, self.error = AppStatus.FAILED, message

    def stopped(self) -> None:
        self.status, self.error = AppStatus.STOPPED, None

    def runner_failed(self, message: str, *, has_current: bool, runner_ready: bool) -> Failure:
        """A runner failed to start or died before serving (or the restored revision could not be
        prepared): the next start backs off; CRASH_LOOP failures in a row, while a revision should
        serve and no runner is ready, make the app crash-looping."""
        self.failures += 1
        self.last_exit = _reason(message)
        delay = backoff(self.failures)
        self.retry_at = self.clock.monotonic() + delay
        began = (
            self.failures >= CRASH_LOOP
            and self.status in (AppStatus.DEPLOYING, AppStatus.READY)
            and has_current
            and not runner_ready
        )
        if began:
            self.status, self.down_since = AppStatus.CRASH_LOOPING, self.clock.monotonic()
        return Failure(delay, began)

    def runner_ready(self) -> bool:
        """A runner of the serving revision is ready; True when that ends a crash loop."""
        if self.status != AppStatus.CRASH_LOOPING:
            return False
        self.serving()
        return True

    def served(self) -> None:
        """A runner served a request: the back-off starts again from its base."""
        self.failures = 0

    # -- questions -----------------------------------------------------------------------------
    @property
    def takes_work(self) -> bool:
        """Whether the serving revision's runners take work (a crash-looping app's too, once one is ready)."""
        return self.status in SERVING

    @property
    def down(self) -> bool:
        """Failed or stopped: no work is accepted until the app is deployed again."""
        return self.status in DOWN

    @property
    def crash_looping(self) -> bool:
        return self.status == AppStatus.CRASH_LOOPING

    def may_start(self) -> bool:
        """Whether the back-off after the last failure has passed."""
        return self.clock.monotonic() >= self.retry_at

    def down_for(self, since: float) -> float:
        """Seconds the app has been crash-looping, counted from ``since`` at the earliest (monotonic)."""
        return self.clock.monotonic() - max(since, self.down_since)

    def next_attempt(self) -> float | None:
        """When a crash-looping app tries again (wall clock), else None."""
        if not self.crash_looping:
            return None
        return self.clock.time() + max(self.retry_at - self.clock.monotonic(), 0.0)

    def unavailable_reason(self) -> str:
        """Why the app takes no work (a sync call: when it crash-loops with no runner ready)."""
        if self.status == AppStatus.STOPPED:
            return f"App {self.name} is stopped; deploy it again."
        if self.crash_looping:
            wait = max(self.retry_at - self.clock.monotonic(), 0.0)
            return (
                f"App {self.name} is crash-looping ({self.failures} failures in a row); the next attempt is in "
                f"{wait:.0f} s. The last failure: {self.last_exit}"
            )
        return f"App {self.name} failed: {self.error}"


def _reason(message: str) -> str:
    """A failure in one line: the first exception its output shows, else its first line (the exit code)."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    raised = [line for line in lines if EXCEPTION_LINE.match(line)]
    return raised[0] if raised else (lines[0].rstrip(":.") if lines else message)
