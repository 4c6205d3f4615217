"""One deployed app inside the gateway: its revisions, its runners, its pending work, its scaling.

Work (queued requests from SQLite and in-flight sync calls) waits in one priority queue and is
handed to the least busy ready runner of the serving revision. A redeploy starts the new
revision's runners first; the old ones drain and stop, so no accepted request is dropped.

Every accepted request ends: with the app's answer, or with an explicit error in fal's shape when
its start deadline passes, when it cannot be forwarded, or when its app cannot be brought back. A
runner that fails to start or dies before serving makes the next start wait (exponential back-off,
capped, as Kubernetes' CrashLoopBackOff); after CRASH_LOOP failures in a row with no runner serving,
the app is ``crash-looping``: it keeps trying, and its waiting requests end once it has been down
for their startup_timeout. A gateway restart restores the serving revision the same way.

The runtime reaches the world only through its ``Host``: the store, the HTTP client, its task
supervisor and clock, how a revision is built and how a runner is made. Tests give it a fake host
(fake runners, a fake clock); ``tick()`` is its periodic work (deadlines, retries, health checks,
scaling).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx

from .. import wire
from ..config import AppConfig
from ..errors import FalNotebookError
from ..secrets import Redactor
from . import retries
from .envs import EnvBuildError, OnLine
from .headers import app_headers, endpoint_of, prefer_hinted, runner_hint, runner_hints
from .images import remove_image
from .paths import app_log_path, snapshots_dir
from .prepare import DeploySpec
from .runners import EXCEPTION_LINE, Launch, OnOutput, Runner, RunnerStartError, port_is_free
from .settings import DEFAULT_STARTUP_TIMEOUT, HealthProbe, Settings
from .states import GOING, LIVE, SERVING, AppStatus, RevisionStatus, RunnerState
from .store import Store
from .supervisor import Clock, Supervisor
from .upstream import Response, Upstream, UpstreamError

#: Consecutive runner failures (never ready, or died before serving) that make a crash loop.
CRASH_LOOP = 3
#: After a runner failure the next start waits 1 s, 2 s, 4 s... up to BACKOFF_CAP (Kubernetes'
#: CrashLoopBackOff doubles from 10 s to 5 min; a laptop's runners start in seconds, so it starts lower).
BACKOFF_BASE = 1.0
BACKOFF_CAP = 60.0
#: Time for output a runner writes after its answer (see _output_settled) to arrive.
LATE_OUTPUT = 0.02
EVENTS_KEPT = 500
#: The app's log file is rotated (to ``<name>.log.1``) beyond this size.
LOG_ROTATE_BYTES = 20 * 1024 * 1024
_ACCESS_LINE = re.compile(r'^INFO:\s+\S+:\d+ - "[A-Z]+ ')
_LEVEL_PREFIX = re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL)[:\s]")


class Unavailable(Exception):
    """The app cannot take work (failed, stopped, crash-looping for a sync call); ``str()`` says why."""


def backoff(failures: int) -> float:
    """Seconds to wait before the next runner start after ``failures`` failures in a row."""
    return min(BACKOFF_BASE * 2.0 ** max(failures - 1, 0), BACKOFF_CAP)


@dataclass
class Build:
    """A revision made ready to run: its config, how its runners start, notes for the user."""

    config: AppConfig
    launch: Launch
    notes: list[str]


class Host(Protocol):
    """What an app's runtime needs from the gateway that holds it (``core.Gateway``)."""

    store: Store
    http: httpx.AsyncClient
    upstream: Upstream  # the proxy hop to runners
    state_id: str
    tasks: Supervisor
    clock: Clock

    def notify(self, request_id: str) -> None:
        """Wake whoever watches the request (its status stream)."""

    def save_app(self, runtime: AppRuntime) -> None:
        """Record the app's state, so that a restarted gateway restores it."""

    def last_revision(self, name: str) -> int:
        """The last revision number recorded for app ``name`` (0 for none)."""

    def completed(self, request_id: str) -> None:
        """A queued request ended (its webhook is due)."""

    async def build(self, spec: DeploySpec, snapshot: Path, *, copy: bool, on_line: OnLine) -> Build:
        """Snapshot the project (``copy``) into ``snapshot``, load it, and prepare its runners' launch."""

    def new_runner(self, runner_id: str, revision: int, launch: Launch, on_output: OnOutput) -> Runner:
        """A runner, not started yet."""


@dataclass
class Revision:
    number: int
    digest: str
    spec: DeploySpec
    snapshot: Path
    config: Any = None
    settings: Settings = field(default_factory=Settings)
    launch: Launch | None = None
    openapi: bytes | None = None
    status: RevisionStatus = RevisionStatus.DEPLOYING
    error: str | None = None
    notes: list[str] = field(default_factory=list)


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


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


class AppRuntime:
    """One app in the gateway; ``stopped``: restored from a record of an app that was stopped;
    ``auth``: its auth mode as last recorded (it survives failures and restarts)."""

    def __init__(self, name: str, host: Host, *, stopped: bool = False, auth: str | None = None):
        self.name = name
        self.host = host
        self.clock = host.clock
        self.status = AppStatus.STOPPED if stopped else AppStatus.DEPLOYING
        self.error: str | None = None
        self.auth_mode = auth or "private"
        self.current: Revision | None = None
        self.rolling: Revision | None = None
        self.revisions: dict[int, Revision] = {}
        self.runners: list[Runner] = []
        self.pending: list[Work] = []
        self.queued: dict[str, Work] = {}
        #: Failed attempts per retry condition of each queued request under way (retries.decide counts them).
        self._retry_failures: dict[str, dict[str, int]] = {}
        self.events: list[dict[str, Any]] = []
        self.failures = 0  # runner failures in a row
        self.retry_at = 0.0  # no runner starts before (monotonic clock)
        self.last_exit: str | None = None  # the last failure, for crash-looping's report
        self.down_since = 0.0  # crash-looping since (monotonic clock)
        self.spec: DeploySpec | None = None
        self.redact = Redactor()
        self.closing = False  # the gateway shuts down: no new runners
        self._event_seq = itertools.count(1)
        self._news = asyncio.Event()  # set (and replaced) by each event
        self._runner_seq = itertools.count(1)
        self._rollout: asyncio.Task | None = None
        self._preparing: asyncio.Task | None = None
        self._log_path = app_log_path(name)
        self._log = self._log_path.open("a", buffering=1)

    # -- deploy ------------------------------------------------------------------------------
    def deploy(self, spec: DeploySpec, digest: str, *, number: int | None = None, copy: bool = True) -> int:
        """Start rolling out ``spec`` (idempotent: the same digest returns the same revision)."""
        if self.rolling is not None and self.rolling.digest == digest:
            return self.rolling.number
        if self.rolling is None and self.current is not None and self.current.digest == digest:
            if self.status == AppStatus.READY:
                return self.current.number
        if self.rolling is not None:
            self._supersede(self.rolling)
        number = number or max([0, *self.revisions, self.host.last_revision(self.name)]) + 1
        rev = Revision(number, digest, spec, snapshots_dir(self.name) / f"rev-{number}")
        self.revisions[number] = rev
        self.rolling, self.spec = rev, spec
        self.redact = Redactor(spec.secrets.values())  # once per deploy, not per output line
        if self.status in (AppStatus.FAILED, AppStatus.STOPPED) or self.current is None:
            self.status, self.error = AppStatus.DEPLOYING, None
        self.failures, self.retry_at = 0, 0.0
        self._rollout = self.host.tasks.spawn(self._roll_out(rev, copy=copy), name=f"{self.name} rollout {number}")
        return number

    def restore(self, spec: DeploySpec, digest: str, number: int) -> None:
        """Serve revision ``number`` again after a gateway restart. It served before, so it is the
        serving revision at once; its launch is prepared again from its snapshot, one runner starts
        (more as work comes; keep_alive stops it when idle). Failures (preparing it, or its runners)
        back off and are retried."""
        rev = Revision(number, digest, spec, snapshots_dir(self.name) / f"rev-{number}")
        self.revisions[number] = rev
        self.current, self.spec = rev, spec
        self.status, self.error = AppStatus.DEPLOYING, None
        self.event(f"Restoring revision {number} of {self.name} from its snapshot, after a gateway restart.")
        self._prepare(rev)

    def _prepare(self, rev: Revision) -> None:
        self._preparing = self.host.tasks.spawn(self._prepare_restored(rev), name=f"{self.name} restore {rev.number}")

    async def _prepare_restored(self, rev: Revision) -> None:
        try:
            build = await self.host.build(rev.spec, rev.snapshot, copy=False, on_line=self.event)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._preparing = None
            self._count_failure(f"Preparing revision {rev.number} again failed: {_describe(exc)}")
            return
        self._preparing = None
        if rev is not self.current:
            return  # a redeploy replaced it meanwhile
        self._apply(rev, build)
        rev.status = RevisionStatus.READY
        if self.status == AppStatus.DEPLOYING:
            self.status = AppStatus.READY
        self.host.save_app(self)
        self.event(f"Revision {rev.number} serves again: {wire.local_app(self.name)}")
        self.pump()
        if not self.closing and not any(r.state in LIVE for r in self._runners_of(rev.number)):
            self._spawn_runner(rev)  # warm, as after a deploy: its schema is served again, a broken one shows

    def _apply(self, rev: Revision, build: Build) -> None:
        rev.config, rev.launch, rev.notes = build.config, build.launch, build.notes
        rev.settings = Settings.from_config(build.config, single_runner=build.launch.fixed_port is not None)
        if rev is self.current:
            self.auth_mode = build.config.auth or "private"

    def _supersede(self, rev: Revision) -> None:
        if self._rollout is not None:
            self._rollout.cancel()
        rev.status = RevisionStatus.SUPERSEDED
        for runner in self._runners_of(rev.number):
            self._stop_later(runner)
        self.rolling = None

    async def _roll_out(self, rev: Revision, *, copy: bool) -> None:
        source = rev.spec.path if copy else "its snapshot, after a gateway restart"
        self.event(f"Deploying revision {rev.number} of {self.name} from {source}.")
        try:
            self._apply(rev, await self.host.build(rev.spec, rev.snapshot, copy=copy, on_line=self.event))
            for note in rev.notes:
                self.event("Note: " + note)
            assert rev.launch is not None
            if rev.launch.fixed_port is not None:
                await self._free_fixed_port(rev.launch.fixed_port)
            runner = await self._boot(self._new_runner(rev), rev)
            rev.openapi = await self._fetch_openapi(runner)
            self._promote(rev)
        except asyncio.CancelledError:
            raise
        except (RunnerStartError, EnvBuildError, FalNotebookError, OSError) as exc:
            self._rollout_failed(rev, str(exc))
        except Exception as exc:
            self._rollout_failed(rev, _describe(exc))

    async def _free_fixed_port(self, port: int) -> None:
        """A server pinned to one port: the old runners must go before the new one can start."""
        for runner in [r for r in self.runners if r.port == port]:
            runner.state = RunnerState.DRAINING
            self.event(f"Waiting for runner {runner.id} to finish its requests (both listen on port {port}).")
            while runner.in_flight and runner.alive:
                await self.clock.sleep(0.05)
            await self._stop_runner(runner)
        if not port_is_free(port):
            raise FalNotebookError(
                f"Port {port} (exposed_port, --port) is in use by another process, and the app's --cmd "
                "listens on it. Stop that process, choose another --port, or let the command read $PORT."
            )

    def _promote(self, rev: Revision) -> None:
        old, self.current, self.rolling = self.current, rev, None
        rev.status, self.status, self.error = RevisionStatus.READY, AppStatus.READY, None
        self.auth_mode = (rev.config.auth if rev.config else None) or "private"
        for runner in self.runners:
            if runner.revision != rev.number and runner.state in LIVE:
                runner.state = RunnerState.DRAINING
                if not runner.in_flight:
                    self._stop_later(runner)
        self.host.save_app(self)
        replaced = f" (replacing revision {old.number})" if old else ""
        self.event(f"Revision {rev.number} is serving{replaced}: {wire.local_app(self.name)}")
        self.pump()

    def _rollout_failed(self, rev: Revision, message: str) -> None:
        rev.status, rev.error = RevisionStatus.FAILED, message
        self.rolling = None
        for runner in self._runners_of(rev.number):
            self._stop_later(runner)
        self.event(f"Deploy of revision {rev.number} failed: {message}")
        if self.current is None:
            self.fail(message)
        else:
            self.event(f"Revision {self.current.number} keeps serving.")
        self.host.save_app(self)

    def fail(self, message: str) -> None:
        """Its first deploy failed: nothing serves, and every waiting request ends with the reason."""
        self.status, self.error = AppStatus.FAILED, message
        for runner in list(self.runners):
            self._stop_later(runner)
        self._drop_pending(f"App {self.name} failed: {message}", wire.RUNNER_SCHEDULING_FAILURE)
        self.host.save_app(self)

    def close(self) -> None:
        """The gateway shuts down: start no more runners, and abandon a rollout."""
        self.closing = True
        for task in (self._rollout, self._preparing):
            if task is not None:
                task.cancel()

    async def cancel_rollout(self, number: int | None = None) -> bool:
        """Drop the revision being rolled out (``number``, if given, must be it); a revision that
        served before keeps serving, else the app stops. False if there is no such rollout."""
        rev = self.rolling
        if rev is None or (number is not None and rev.number != number):
            return False
        self.event(f"Deploy of revision {rev.number} cancelled.")
        if self.current is None:
            await self.stop()
        else:
            self._supersede(rev)
            self.status, self.error = AppStatus.READY, None
            self.event(f"Revision {self.current.number} keeps serving.")
            self.host.save_app(self)
        rev.status = RevisionStatus.CANCELLED
        return True

    async def stop(self) -> None:
        if self.rolling is not None:
            self._supersede(self.rolling)
        if self._preparing is not None:
            self._preparing.cancel()
        self.status, self.error = AppStatus.STOPPED, None
        self._drop_pending(f"App {self.name} was stopped.", wire.RUNNER_SCHEDULING_FAILURE)
        await asyncio.gather(*(self._stop_runner(r) for r in list(self.runners)))
        self.event(f"Stopped {self.name}.")
        self.host.save_app(self)

    def _drop_pending(self, detail: str, error_type: str) -> None:
        while self.pending:
            work = heapq.heappop(self.pending)
            if not work.cancelled:
                self._end_waiting(work, 503, detail, error_type)
        self.queued.clear()

    def _end_waiting(self, work: Work, status: int, detail: str, error_type: str) -> None:
        """End work that waits for a runner: a sync caller gets Unavailable (TimeoutError for a 504),
        a queued request completes with the error in fal's shape."""
        work.cancelled = True
        self.queued.pop(work.request_id, None)
        if work.waiter is None:
            self._finish(work.request_id, Outcome.failure_of(status, detail, error_type))
        elif not work.waiter.done():
            work.waiter.set_exception(TimeoutError(detail) if status == 504 else Unavailable(detail))

    async def _fetch_openapi(self, runner: Runner) -> bytes | None:
        try:
            response = await self.host.http.get(runner.url + "/openapi.json", timeout=10)
        except httpx.HTTPError:
            return None
        return response.content if response.status_code == 200 else None

    # -- runners -----------------------------------------------------------------------------
    def _runners_of(self, number: int) -> list[Runner]:
        return [r for r in self.runners if r.revision == number]

    def _ready_runners(self) -> list[Runner]:
        rev = self.current
        return [r for r in self.runners if rev and r.revision == rev.number and r.state == RunnerState.READY]

    def _spawn_runner(self, rev: Revision) -> None:
        """Start a runner in the background (counted as live at once, so scaling never overshoots).
        Any error while starting it counts as a failure of the app."""
        runner = self._new_runner(rev)

        async def boot() -> None:
            try:
                await self._boot(runner, rev)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if rev is self.current:
                    self._count_failure(str(exc) if isinstance(exc, RunnerStartError) else _describe(exc))
                return
            if rev.openapi is None and rev is self.current:  # a restored revision: its first runner
                rev.openapi = await self._fetch_openapi(runner)

        self.host.tasks.spawn(boot(), name=f"boot {runner.id}")

    def _new_runner(self, rev: Revision) -> Runner:
        assert rev.launch is not None
        runner_id = f"{self.name}-r{rev.number}-{next(self._runner_seq)}"
        runner = self.host.new_runner(runner_id, rev.number, rev.launch, self._on_output)
        runner.started = self.clock.monotonic()
        self.runners.append(runner)
        self.event(f"Starting runner {runner.id}.")
        return runner

    async def _boot(self, runner: Runner, rev: Revision) -> Runner:
        try:
            await runner.start(self.host.http, state_id=self.host.state_id, tasks=self.host.tasks)
        except BaseException:
            runner.state = RunnerState.DEAD
            if runner in self.runners:
                self.runners.remove(runner)
            await runner.stop(grace=1.0)
            raise
        runner.idle_since = self.clock.monotonic()
        took = runner.idle_since - runner.started
        self.event(f"Runner {runner.id} is ready on port {runner.port} ({took:.1f} s).")
        probe = rev.settings.health
        runner.next_probe = runner.idle_since + (probe.interval if probe else 0.0)
        self.host.tasks.spawn(self._monitor(runner), name=f"monitor {runner.id}")
        if rev is not self.current and rev is not self.rolling:
            self._stop_later(runner)  # its revision was replaced meanwhile
        elif rev is self.current and self.status == AppStatus.CRASH_LOOPING:
            self.status, self.error = AppStatus.READY, None
            self.event(f"Runner {runner.id} is ready: {self.name} serves again after its crash loop.")
            self.host.save_app(self)
        self.pump()
        return runner

    async def _monitor(self, runner: Runner) -> None:
        await runner.exited.wait()
        expected = runner.state in GOING
        if runner in self.runners:
            self.runners.remove(runner)
        await runner.stop(grace=0)
        if not expected:
            self.event(
                f"Runner {runner.id} exited unexpectedly (code {runner.returncode}); it will be replaced. "
                f"Its last output:\n{runner.tail_text()}"
            )
            if runner.served == 0 and not runner.in_flight and self.current and runner.revision == self.current.number:
                self._count_failure(f"Runner {runner.id} exited with code {runner.returncode}:\n{runner.tail_text()}")
        self._clean_snapshots()
        self.scale()

    def _stop_later(self, runner: Runner) -> None:
        """Stop a runner in the background; it takes no more work from now on."""
        if runner.state not in GOING:
            runner.state = RunnerState.STOPPING
            self.host.tasks.spawn(self._stop_runner(runner), name=f"stop {runner.id}")

    async def _stop_runner(self, runner: Runner) -> None:
        if runner.state == RunnerState.DEAD:
            return
        await runner.stop()
        if runner in self.runners:
            self.runners.remove(runner)
        self.event(f"Runner {runner.id} stopped.")

    def _count_failure(self, message: str) -> None:
        """A runner failed to start or died before serving (or the restored revision could not be
        prepared): the next start backs off; CRASH_LOOP failures in a row with no runner serving make
        the app crash-looping."""
        self.failures += 1
        self.last_exit = _reason(message)
        delay = backoff(self.failures)
        self.retry_at = self.clock.monotonic() + delay
        if (
            self.failures >= CRASH_LOOP
            and self.status in (AppStatus.DEPLOYING, AppStatus.READY)
            and self.current is not None
            and not self._ready_runners()
        ):
            self.status, self.down_since = AppStatus.CRASH_LOOPING, self.clock.monotonic()
            for work in [w for w in self.pending if w.waiter is not None and not w.cancelled]:
                self._end_waiting(work, 503, self.unavailable_reason(), wire.RUNNER_SCHEDULING_FAILURE)
        if self.status == AppStatus.CRASH_LOOPING:
            self.event(
                f"Crash loop: {self.failures} failures in a row; the next attempt in {delay:g} s. "
                f"The last one: {message}"
            )
        else:
            self.event(f"{message}\nThe next runner starts in {delay:g} s ({self.failures} failure(s) in a row).")
        self.host.save_app(self)

    def _clean_snapshots(self) -> None:
        """Forget revisions that neither serve nor have runners: their snapshots and images go."""
        keep = {r.revision for r in self.runners} | {
            rev.number for rev in (self.current, self.rolling) if rev is not None
        }
        for number, rev in list(self.revisions.items()):
            if number not in keep and rev.status != RevisionStatus.DEPLOYING:
                del self.revisions[number]
                if rev.snapshot.is_dir():
                    self.host.tasks.spawn(asyncio.to_thread(_remove_tree, rev.snapshot), name=f"remove {rev.snapshot}")
                image = rev.launch.image if rev.launch else None
                if image and image not in {r.launch.image for r in self.revisions.values() if r.launch}:
                    self.host.tasks.spawn(asyncio.to_thread(remove_image, image), name=f"remove image {image}")

    # -- health checks -----------------------------------------------------------------------
    def _check_health(self) -> None:
        """Probe each ready runner whose probe is due (its revision's health check, settings.py)."""
        now = self.clock.monotonic()
        for runner in self.runners:
            rev = self.revisions.get(runner.revision)
            probe = rev.settings.health if rev is not None else None
            if probe is None or runner.state != RunnerState.READY or runner.probing or now < runner.next_probe:
                continue
            runner.probing, runner.next_probe = True, now + probe.interval
            self.host.tasks.spawn(self._probe(runner, probe), name=f"health {runner.id}")

    async def _probe(self, runner: Runner, probe: HealthProbe) -> None:
        """One health check; ``failure_threshold`` failures in a row, once the runner is older than the
        start period, replace it (its requests fail over as a lost runner's do)."""
        try:
            response = await self.host.http.request(probe.method, runner.url + probe.path, timeout=probe.timeout)
            healthy, why = response.status_code < 500, f"it answered {response.status_code}"
        except httpx.TimeoutException:
            healthy, why = False, f"no answer within timeout_seconds={probe.timeout:g}"
        except httpx.HTTPError as exc:
            healthy, why = False, type(exc).__name__
        finally:
            runner.probing = False
        if healthy:
            runner.health_failures = 0
            return
        runner.health_failures += 1
        old_enough = self.clock.monotonic() - runner.started >= probe.start_period
        if runner.health_failures >= probe.failure_threshold and old_enough:
            self.retire(
                runner,
                f"Runner {runner.id} is unhealthy: {runner.health_failures} health checks of {probe.path} failed in "
                f"a row ({why}); it is replaced.",
            )

    # -- scaling -----------------------------------------------------------------------------
    def tick(self) -> None:
        """The periodic work (the gateway's housekeeping calls it): deadlines, a restore to retry,
        health checks, scaling."""
        self.expire_deadlines()
        rev = self.current
        if (
            rev is not None
            and rev.launch is None
            and self._preparing is None
            and self.status in (AppStatus.DEPLOYING, AppStatus.CRASH_LOOPING)
            and self.clock.monotonic() >= self.retry_at
            and not self.closing
        ):
            self._prepare(rev)
        self._check_health()
        self.scale()

    def scale(self) -> None:
        """Start runners for the work there is, stop idle ones after keep_alive, drain old ones.
        After a failure, one runner at a time starts, once its back-off has passed."""
        for runner in list(self.runners):
            if runner.state == RunnerState.DRAINING and not runner.in_flight:
                self._stop_later(runner)
        rev = self.current
        if rev is None or self.status not in SERVING or rev.launch is None or self.closing:
            return
        if self.rolling is not None and self.rolling.launch is not None and self.rolling.launch.fixed_port:
            return  # the old runners make way for the new one on the fixed port
        live = [r for r in self._runners_of(rev.number) if r.state in LIVE]
        work = sum(1 for w in self.pending if not w.cancelled) + sum(len(r.in_flight) for r in live)
        desired = rev.settings.desired_runners(work)
        now = self.clock.monotonic()
        if len(live) < desired and now >= self.retry_at:
            starting = any(r.state == RunnerState.STARTING for r in live)
            wanted = desired - len(live) if not self.failures else int(not starting)
            for _ in range(wanted):
                self._spawn_runner(rev)
        elif len(live) > desired:
            idle = [r for r in live if r.state == RunnerState.READY and not r.in_flight]
            expired = sorted(
                (r for r in idle if now - r.idle_since >= rev.settings.keep_alive), key=lambda r: r.idle_since
            )
            for runner in expired[: len(live) - desired]:
                self.event(f"Runner {runner.id} idle for keep_alive={rev.settings.keep_alive:g} s: stopping it.")
                self._stop_later(runner)

    def expire_deadlines(self) -> None:
        """End waiting work whose start deadline (X-Fal-Request-Timeout) passed, or that has waited
        for a crash-looping app longer than the app's startup_timeout: it could not be brought back."""
        now, wall = self.clock.monotonic(), self.clock.time()
        give_up = self.current.settings.startup_timeout if self.current else DEFAULT_STARTUP_TIMEOUT
        for work in list(self.pending):
            if work.cancelled or (work.waiter is not None and work.waiter.done()):
                continue
            if work.deadline is not None and wall > work.deadline:
                detail = wire.START_DEADLINE_PASSED
                self._end_waiting(work, 504, detail, wire.REQUEST_TIMEOUT_ERROR)
            elif self.status == AppStatus.CRASH_LOOPING and now - max(work.since, self.down_since) > give_up:
                detail = (
                    f"App {self.name} could not be brought back within startup_timeout={give_up:g} s: "
                    f"{self.unavailable_reason()}"
                )
                self._end_waiting(work, 503, detail, wire.RUNNER_SCHEDULING_FAILURE)

    # -- work --------------------------------------------------------------------------------
    def enqueue(
        self,
        request_id: str,
        *,
        priority: int = 0,
        order: float | None = None,
        deadline: float | None = None,
        hint: str | None = None,
    ) -> None:
        if self.status in (AppStatus.FAILED, AppStatus.STOPPED):
            raise Unavailable(self.unavailable_reason())
        order = order if order is not None else self.clock.time()
        work = Work(priority, order, request_id, deadline=deadline, hint=hint, since=self.clock.monotonic())
        self.queued[request_id] = work
        heapq.heappush(self.pending, work)
        self.pump()

    def unavailable_reason(self) -> str:
        if self.status == AppStatus.STOPPED:
            return f"App {self.name} is stopped; deploy it again."
        if self.status == AppStatus.CRASH_LOOPING:
            wait = max(self.retry_at - self.clock.monotonic(), 0.0)
            return (
                f"App {self.name} is crash-looping ({self.failures} failures in a row); the next attempt is in "
                f"{wait:.0f} s. The last failure: {self.last_exit}"
            )
        return f"App {self.name} failed: {self.error}"

    async def acquire(self, request_id: str, *, deadline: float | None = None, hint: str | None = None) -> Runner:
        """A runner slot for a sync call; give it back with ``release``. A crash-looping app with no
        runner serving refuses sync calls at once (they are not retried; queued ones wait)."""
        crash_looping = self.status == AppStatus.CRASH_LOOPING and not self._ready_runners()
        if self.status in (AppStatus.FAILED, AppStatus.STOPPED) or crash_looping:
            raise Unavailable(self.unavailable_reason())
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
        if runner.in_flight.pop(request_id, None) is None:
            return
        runner.served += int(served)
        if not runner.in_flight:
            runner.idle_since = self.clock.monotonic()
            if runner.state == RunnerState.DRAINING:
                self._stop_later(runner)
        self.pump()

    def cancel_queued(self, request_id: str) -> bool:
        work = self.queued.pop(request_id, None)
        if work is None:
            return False
        work.cancelled = True
        return True

    def runner_of(self, request_id: str) -> Runner | None:
        return next((r for r in self.runners if request_id in r.in_flight), None)

    def pump(self) -> None:
        """Hand pending work to free runners of the serving revision."""
        rev = self.current
        while self.pending and rev is not None and self.status in SERVING:
            work = self.pending[0]
            if work.cancelled or (work.waiter is not None and work.waiter.done()):
                heapq.heappop(self.pending)
                continue
            runner = self._free_runner(rev, work.hint)
            if runner is None:
                break
            heapq.heappop(self.pending)
            runner.in_flight[work.request_id] = work.waiter is None
            if work.waiter is not None:
                work.waiter.set_result(runner)
            else:
                self.queued.pop(work.request_id, None)
                self.host.tasks.spawn(self._execute(work, runner), name=f"execute {work.request_id}")
        self.scale()

    def _free_runner(self, rev: Revision, hint: str | None = None) -> Runner | None:
        """The least busy free runner, or the free one whose hints include ``hint``."""
        free = [
            r
            for r in self._runners_of(rev.number)
            if r.state == RunnerState.READY and r.alive and len(r.in_flight) < rev.settings.max_multiplexing
        ]
        return prefer_hinted(hint, [(r, r.hints) for r in sorted(free, key=lambda r: len(r.in_flight))])

    async def _execute(self, work: Work, runner: Runner) -> None:
        """Run one queued request on ``runner``; its slot is given back on every way out, and a
        failure of the gateway's own ends the request with an explicit error."""
        retry, served = None, False
        try:
            retry, served = await self._attempt(work.request_id, runner)
        except Exception as exc:
            detail = f"The gateway failed while running the request: {_describe(exc)}"
            self._finish(work.request_id, Outcome.failure_of(500, detail, wire.INTERNAL_ERROR))
            raise  # the supervisor logs it
        finally:
            self.release(runner, work.request_id, served=served)
        if retry is not None:
            row, delay = retry
            self.host.tasks.spawn(self._requeue_after(row, delay), name=f"retry {row['id']}")

    async def _requeue_after(self, row: Any, delay: float) -> None:
        """Queue a request again after fal's backoff, with the caller's start deadline kept."""
        await self.clock.sleep(delay)
        current = self.host.store.get(row["id"])
        if current is None or current["status"] == wire.COMPLETED:
            return
        if current["cancel_requested"]:
            self._finish(row["id"], Outcome.failure_of(499, "Request cancelled.", wire.CLIENT_CANCELLED))
            return
        try:
            hint = runner_hint(json.loads(row["headers"]))
            self.enqueue(
                row["id"], priority=row["priority"], order=row["created"], deadline=row["start_deadline"], hint=hint
            )
        except Unavailable as exc:
            self._finish(row["id"], Outcome.failure_of(503, str(exc), wire.RUNNER_SCHEDULING_FAILURE))

    async def _attempt(self, request_id: str, runner: Runner) -> tuple[Any, bool]:
        """One attempt of a queued request: ``((its row, the backoff), False)`` when it is to be
        retried, else ``(None, whether the runner served it)``; a final outcome completes it."""
        store = self.host.store
        row = store.get(request_id)
        if row is None or row["status"] == wire.COMPLETED:
            return None, False
        attempts = row["attempts"] + 1
        store.start(row["id"], attempts, runner.id)
        self.host.notify(row["id"])
        endpoint = endpoint_of(wire.local_app(self.name), row["path"])
        headers = app_headers(json.loads(row["headers"]), request_id=row["id"], endpoint=endpoint)
        body = store.body(row["id"])
        if body is None:  # it completed meanwhile (cancelled): its body went with it
            return None, False
        outcome = await self.call(runner, "POST", row["path"], body, headers)
        await self._output_settled(runner, outcome)
        cancelled = store.cancel_requested(row["id"])
        decision = self._retry_decision(row, outcome, attempts)
        failed = f"Attempt {attempts} failed ({outcome.error})"
        if not cancelled and decision.retry and self.status in SERVING:
            self.request_log(row["id"], f"{failed}; {decision.reason}.")
            store.requeue(row["id"])
            self.host.notify(row["id"])
            return (row, decision.delay), False
        if decision.condition is not None and not cancelled:
            why = decision.reason if not decision.retry else f"app {self.name} is {self.status.value}"
            self.request_log(row["id"], f"{failed}; not retried: {why}.")
        if cancelled and outcome.status >= 500:
            outcome = Outcome.failure_of(499, "Request cancelled.", wire.CLIENT_CANCELLED)
        elif cancelled and outcome.status == 499:
            outcome.error_type = outcome.error_type or wire.CLIENT_CANCELLED
        self._finish(row["id"], outcome)
        if outcome.status < 500:
            self.failures = 0
        return None, True

    async def _output_settled(self, runner: Runner, outcome: Outcome) -> None:
        """Wait until the runner's output about this attempt is in the request's logs. A runner
        writes it before answering, so draining its pipes is enough; but a server logs an error's
        traceback after its 500, and docker's client relays a container's output on its own
        schedule: those get LATE_OUTPUT first."""
        if outcome.status >= 500 or runner.launch.image is not None:
            await self.clock.sleep(LATE_OUTPUT)
        await runner.output_read()

    def _retry_decision(self, row: Any, outcome: Outcome, attempts: int) -> retries.Decision:
        """fal's rules (retries.decide) for this attempt; failures are counted per condition."""
        stored = json.loads(row["headers"])
        failures = self._retry_failures.setdefault(row["id"], {})
        decision = retries.decide(
            outcome.attempt,
            request_headers=stored,
            policy=self.current.settings.retry if self.current else retries.Policy(),
            attempts=attempts,
            failures=failures,
            owner=bool(stored.get(wire.CALLER_ID)),  # the key's holder owns every local app
            now=self.clock.time(),
            deadline=row["start_deadline"],
        )
        if decision.condition is not None:
            failures[decision.condition] = failures.get(decision.condition, 0) + 1
        return decision

    def _finish(self, request_id: str, outcome: Outcome) -> None:
        self._retry_failures.pop(request_id, None)
        self.host.store.complete(
            request_id,
            outcome.status,
            outcome.body,
            outcome.content_type,
            error=outcome.error,
            error_type=outcome.error_type,
            inference_time=outcome.elapsed or None,
        )
        self.host.notify(request_id)
        self.host.completed(request_id)

    async def send(
        self,
        runner: Runner,
        method: str,
        path: str,
        body: bytes,
        headers: dict[str, str],
        *,
        stream: bool = False,
    ) -> Response | Outcome:
        """Send one request to a runner; an Outcome when it cannot be forwarded, times out or the
        runner is lost."""
        timeout = self.current.settings.request_timeout if self.current else None
        started = self.clock.monotonic()
        try:
            async with asyncio.timeout(timeout):
                response = await self.host.upstream.send(method, runner.url + path, content=body, headers=headers)
                if not stream:
                    await response.aread()
        except ValueError as exc:  # a header value HTTP cannot carry (the door refuses them): the runner is fine
            return Outcome.failure_of(400, f"The request cannot be forwarded to the app: {exc}", wire.BAD_REQUEST)
        except TimeoutError:
            detail = f"Request timed out after request_timeout={timeout:g} s."
            self.retire(runner, f"{detail} Runner {runner.id} is restarted.")
            elapsed = self.clock.monotonic() - started
            return Outcome.failure_of(
                504, detail, wire.REQUEST_TIMEOUT_ERROR, failure=retries.TIMED_OUT, elapsed=elapsed
            )
        except UpstreamError as exc:
            detail = f"Runner {runner.id} disconnected during the request ({exc})."
            self.retire(runner, f"{detail} It is replaced. Its last output:\n{runner.tail_text()}")
            elapsed = self.clock.monotonic() - started
            return Outcome.failure_of(
                503, detail, wire.RUNNER_DISCONNECTED, failure=retries.DISCONNECTED, elapsed=elapsed
            )
        hints = runner_hints(response.headers)
        if hints is not None:
            runner.hints = hints
        if retries.stops_runner(retries.Attempt(response.status_code, response.headers)):
            said = "" if response.status_code == 503 else f" with {wire.STOP_RUNNER}"
            self.retire(runner, f"Runner {runner.id} answered {response.status_code}{said}: it is replaced.")
        return response

    def retire(self, runner: Runner, message: str) -> None:
        """Take a runner out of service (it is stuck, unhealthy or lost); scaling replaces it."""
        if runner.state not in GOING:
            self.event(message)
            self._stop_later(runner)

    async def call(self, runner: Runner, method: str, path: str, body: bytes, headers: dict[str, str]) -> Outcome:
        """One request to a runner, classified the way fal's queue does."""
        started = self.clock.monotonic()
        response = await self.send(runner, method, path, body, headers)
        if isinstance(response, Outcome):
            return response
        status = response.status_code
        outcome = Outcome(
            status,
            response.content,
            response.headers.get("content-type", "application/json"),
            elapsed=self.clock.monotonic() - started,
            headers=dict(response.headers),
        )
        if status >= 400:
            outcome.error = _detail(response)
            outcome.error_type = response.headers.get(wire.ERROR_TYPE)
        return outcome

    # -- logs and events ---------------------------------------------------------------------
    def _on_output(self, runner: Runner, stream: str, line: str) -> None:
        line = self.redact(line)
        self._write_log(f"[{runner.id}] {line}")
        if _ACCESS_LINE.match(line) or not runner.in_flight:
            return
        prefix = _LEVEL_PREFIX.match(line)
        level = prefix.group(1) if prefix else ("STDERR" if stream == "stderr" else "STDOUT")
        entry = {"timestamp": now_iso(), "message": line, "level": level, "source": "USER"}
        for request_id, keep in list(runner.in_flight.items()):
            if keep:
                self.host.store.add_log(request_id, entry)
                self.host.notify(request_id)

    def request_log(self, request_id: str, message: str) -> None:
        self.host.store.add_log(
            request_id, {"timestamp": now_iso(), "message": message, "level": "WARNING", "source": "GATEWAY"}
        )

    def event(self, message: str) -> None:
        """A deploy/runtime event: shown by the deploying front end and written to the app's log."""
        self.events.append({"seq": next(self._event_seq), "time": self.clock.time(), "message": message})
        del self.events[:-EVENTS_KEPT]
        self._write_log(f"[gateway] {message}")
        news, self._news = self._news, asyncio.Event()
        news.set()

    async def news(self, since: int, timeout: float) -> None:
        """Return when there are events after ``since``, or after ``timeout`` seconds."""
        if not self.events or self.events[-1]["seq"] <= since:
            try:
                await asyncio.wait_for(self._news.wait(), timeout)
            except TimeoutError:
                pass

    def _write_log(self, line: str) -> None:
        self._log.write(f"{now_iso()} {line}\n")
        if self._log.tell() > LOG_ROTATE_BYTES:
            self._log.close()
            self._log_path.replace(self._log_path.with_name(self._log_path.name + ".1"))
            self._log = self._log_path.open("a", buffering=1)

    def close_log(self) -> None:
        self._log.close()

    # -- views -------------------------------------------------------------------------------
    @property
    def auth(self) -> str:
        return self.auth_mode

    def info(self, since: int = 0) -> dict[str, Any]:
        latest = max(self.revisions.values(), key=lambda r: r.number, default=None)
        return {
            "name": self.name,
            "status": self.status,
            "error": self.error,
            "failures": self.failures,
            "last_exit": self.last_exit,
            "next_attempt": self._next_attempt(),
            "revision": self.current.number if self.current else None,
            "deploying": self.rolling.number if self.rolling else None,
            "latest": {"number": latest.number, "status": latest.status, "error": latest.error} if latest else None,
            "mode": self.current.config.mode if self.current and self.current.config else None,
            "auth": self.auth,
            "env": self.spec.env if self.spec else None,
            "image": self.current.launch.image if self.current and self.current.launch else None,
            "path": self.spec.path if self.spec else None,
            "notes": self.current.notes if self.current else [],
            "openapi": self.current.openapi is not None if self.current else None,
            "queued": sum(1 for w in self.pending if not w.cancelled and w.waiter is None),
            "runners": [
                {
                    "id": r.id,
                    "revision": r.revision,
                    "state": r.state,
                    "port": r.port,
                    "pid": r.process.pid if r.process else None,
                    "in_flight": len(r.in_flight),
                }
                for r in self.runners
            ],
            "events": [e for e in self.events if e["seq"] > since],
        }

    def _next_attempt(self) -> float | None:
        """When a crash-looping app tries again (wall clock), else None."""
        if self.status != AppStatus.CRASH_LOOPING:
            return None
        return self.clock.time() + max(self.retry_at - self.clock.monotonic(), 0.0)


def _detail(response: Response) -> str:
    """The app's error detail as text (its ``detail``, else its whole answer)."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:2000]
    detail, _ = wire.decode_error(body)
    return detail if isinstance(detail, str) else json.dumps(detail)


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def _reason(message: str) -> str:
    """A failure in one line: the first exception its output shows, else its first line (the exit code)."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    raised = [line for line in lines if EXCEPTION_LINE.match(line)]
    return raised[0] if raised else (lines[0].rstrip(":.") if lines else message)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
