"""Work waiting for a runner: queued requests (stored in SQLite) and sync calls (a caller waits),
in one priority queue, handed to the least busy free runner of the serving revision.

Waiting work ends here when it cannot be served: its start deadline (``X-Fal-Request-Timeout``)
passed, its app failed or was stopped, or its app crash-loops longer than its startup_timeout (a
sync call at once: it is never retried). A queued request ends with an explicit error in fal's
shape; a sync caller gets ``Unavailable`` (``TimeoutError`` for a passed deadline).
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable
from dataclasses import dataclass, field

from ...wire import START_DEADLINE_PASSED, ErrorType
from ..headers import runner_hint
from ..runners import Runner
from ..store import Request
from .host import Host
from .lifecycle import Lifecycle
from .outcome import Outcome, finish
from .pool import RunnerPool
from .revision import Revisions


class Unavailable(Exception):
    """The app cannot take work (failed, stopped, crash-looping for a sync call); ``str()`` says why."""


@dataclass(order=True)
class Work:
    priority: int
    order: float
    request_id: str = field(compare=False)
    waiter: asyncio.Future | None = field(default=None, compare=False)  # sync calls: gets the Runner
    deadline: float | None = field(default=None, compare=False)  # X-Fal-Request-Timeout (wall clock)
    cancelled: bool = field(default=False, compare=False)
    since: float = field(default=0.0, compare=False)  # when it began to wait (monotonic clock)
    hint: str | None = field(default=None, compare=False)  # X-Fal-Runner-Hint: the runner it prefers
    #: A queued request's failed attempts so far, per retry condition (retries.decide counts them).
    failures: dict[str, int] = field(default_factory=dict, compare=False)


class WorkQueue:
    """``execute`` runs a queued request on the runner it was handed to (attempts.py)."""

    def __init__(
        self,
        host: Host,
        revisions: Revisions,
        lifecycle: Lifecycle,
        pool: RunnerPool,
        execute: Callable[[Work, Runner], None],
    ):
        self.host = host
        self.clock = host.clock
        self.revisions = revisions
        self.lifecycle = lifecycle
        self.pool = pool
        self.execute = execute
        self.pending: list[Work] = []  # a heap: priority, then order
        self.queued: dict[str, Work] = {}  # the queued requests among them, by id

    # -- what waits ----------------------------------------------------------------------------
    def enqueue(
        self,
        request_id: str,
        *,
        priority: int = 0,
        order: float | None = None,
        deadline: float | None = None,
        hint: str | None = None,
        failures: dict[str, int] | None = None,
    ) -> None:
        """Queue a stored request (``order``: when it was submitted; ``failures``: of its earlier attempts)."""
        if self.lifecycle.down:
            raise Unavailable(self.lifecycle.unavailable_reason())
        order = order if order is not None else self.clock.time()
        work = Work(priority, order, request_id, deadline=deadline, hint=hint, since=self.clock.monotonic())
        work.failures = failures or {}
        self.queued[request_id] = work
        heapq.heappush(self.pending, work)
        self.pump()

    def resume(self, request: Request, *, failures: dict[str, int] | None = None) -> None:
        """Queue a stored request again (after a gateway restart, or a retry's back-off): in its
        place by when it was submitted, with its start deadline and runner hint."""
        self.enqueue(
            request.id,
            priority=request.priority,
            order=request.created,
            deadline=request.start_deadline,
            hint=runner_hint(request.headers),
            failures=failures,
        )

    async def acquire(self, request_id: str, *, deadline: float | None = None, hint: str | None = None) -> Runner:
        """A runner slot for a sync call; give it back with ``release``. A crash-looping app with no
        runner serving refuses sync calls at once (they are not retried; queued ones wait)."""
        if self.lifecycle.down or (self.lifecycle.crash_looping and not self.pool.ready()):
            raise Unavailable(self.lifecycle.unavailable_reason())
        waiter = asyncio.get_running_loop().create_future()
        since = self.clock.monotonic()
        work = Work(0, self.clock.time(), request_id, waiter=waiter, deadline=deadline, hint=hint, since=since)
        heapq.heappush(self.pending, work)
        self.pump()
        try:
            return await waiter
        except BaseException:
            work.cancelled = True
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.release(waiter.result(), request_id)
            raise

    def release(self, runner: Runner, request_id: str, *, served: bool = True) -> None:
        """The request's slot on ``runner`` is free again (``served``: the runner answered it)."""
        if self.pool.give_back(runner, request_id, served=served):
            self.pump()

    def cancel_queued(self, request_id: str) -> bool:
        """Take a queued request out of the queue; False when it is not waiting."""
        work = self.queued.pop(request_id, None)
        if work is None:
            return False
        work.cancelled = True
        return True

    def waiting(self, *, queued_only: bool = False) -> int:
        """How much work waits for a runner (``queued_only``: queued requests, no sync calls)."""
        return sum(1 for w in self.pending if not w.cancelled and not (queued_only and w.waiter is not None))

    # -- handing work out ----------------------------------------------------------------------
    def pump(self) -> None:
        """Hand waiting work to free runners of the serving revision, then scale for what waits."""
        rev = self.revisions.current
        while self.pending and rev is not None and self.lifecycle.takes_work:
            work = self.pending[0]
            if work.cancelled or (work.waiter is not None and work.waiter.done()):
                heapq.heappop(self.pending)
                continue
            runner = self.pool.free(rev, work.hint)
            if runner is None:
                break
            heapq.heappop(self.pending)
            self.pool.take_slot(runner, work.request_id, keep_logs=work.waiter is None)
            if work.waiter is not None:
                work.waiter.set_result(runner)
            else:
                self.queued.pop(work.request_id, None)
                self.execute(work, runner)
        self.pool.scale(self.waiting())

    def capacity_changed(self) -> None:
        self.pump()

    def crash_loop_began(self, reason: str) -> None:
        """Sync calls waiting for a runner end at once (they are not retried); queued ones wait."""
        for work in [w for w in self.pending if w.waiter is not None and not w.cancelled]:
            self._end_waiting(work, 503, reason, ErrorType.RUNNER_SCHEDULING_FAILURE)

    # -- ending what cannot be served ----------------------------------------------------------
    def expire_deadlines(self) -> None:
        """End waiting work whose start deadline (X-Fal-Request-Timeout) passed, or that has waited
        for a crash-looping app longer than the app's startup_timeout: it could not be brought back."""
        wall = self.clock.time()
        give_up = self.revisions.settings.startup_timeout
        for work in list(self.pending):
            if work.cancelled or (work.waiter is not None and work.waiter.done()):
                continue
            if work.deadline is not None and wall > work.deadline:
                self._end_waiting(work, 504, START_DEADLINE_PASSED, ErrorType.REQUEST_TIMEOUT)
            elif self.lifecycle.crash_looping and self.lifecycle.down_for(work.since) > give_up:
                detail = (
                    f"App {self.lifecycle.name} could not be brought back within startup_timeout={give_up:g} s: "
                    f"{self.lifecycle.unavailable_reason()}"
                )
                self._end_waiting(work, 503, detail, ErrorType.RUNNER_SCHEDULING_FAILURE)

    def drop_all(self, detail: str) -> None:
        """The app failed or stopped: everything waiting ends with ``detail``."""
        while self.pending:
            work = heapq.heappop(self.pending)
            if not work.cancelled:
                self._end_waiting(work, 503, detail, ErrorType.RUNNER_SCHEDULING_FAILURE)
        self.queued.clear()

    def _end_waiting(self, work: Work, status: int, detail: str, error_type: str) -> None:
        """End work that waits for a runner: a sync caller gets Unavailable (TimeoutError for a 504),
        a queued request completes with the error in fal's shape."""
        work.cancelled = True
        self.queued.pop(work.request_id, None)
        if work.waiter is None:
            finish(self.host, work.request_id, Outcome.failure_of(status, detail, error_type))
        elif not work.waiter.done():
            work.waiter.set_exception(TimeoutError(detail) if status == 504 else Unavailable(detail))
