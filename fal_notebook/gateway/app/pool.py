"""An app's runners: start them (after they took their resources), watch them, stop them, and
scale them between the serving revision's ``min_concurrency`` and ``max_concurrency``.

Every runner passes through one place on its way in (``_admit``: it takes its resources, it joins
``runners``) and one on every way out (``_forget``: it leaves ``runners``, it gives its resources
back), whether it failed to start, exited or was stopped. A runner that failed to start or died
before serving is a failure of the app (lifecycle.py): the next start backs off. What waits for
runners (queue.py) listens: it is told when capacity changes and when a crash loop begins.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

import httpx

from ... import wire
from ...errors import FalNotebookError
from ...statuses import GOING, LIVE, RunnerState
from ..headers import prefer_hinted
from ..runners import Runner, RunnerStartError, port_is_free, port_taken
from .host import Host
from .lifecycle import Lifecycle
from .log import AppLog
from .resources import Claim
from .revision import Revision, Revisions

PORT_RELEASE_S = 5.0  # how long a fixed port may stay held after its runners stopped


class Listener(Protocol):
    """What is told about the pool's changes (the work queue)."""

    def capacity_changed(self) -> None:
        """A runner became ready, freed a slot or went: waiting work may go, scaling may change."""

    def crash_loop_began(self, reason: str) -> None:
        """The app began crash-looping with no runner ready."""


class RunnerPool:
    def __init__(
        self, name: str, host: Host, revisions: Revisions, lifecycle: Lifecycle, log: AppLog, save: Callable[[], None]
    ):
        self.name = name
        self.host = host
        self.clock = host.clock
        self.revisions = revisions
        self.lifecycle = lifecycle
        self.log = log
        self.save = save
        self.listener: Listener | None = None
        self.runners: list[Runner] = []
        self.closing = False  # the gateway shuts down: no new runners
        #: Why no runner can start now (what it needs is taken), None when nothing waits.
        self.waiting: str | None = None
        self._started = 0  # runners made so far (their ids count them)
        self._rollout_waits = False  # a rollout's first runner waits for resources: scaling leaves them to it

    # -- who is there --------------------------------------------------------------------------
    def of(self, number: int) -> list[Runner]:
        """The runners of revision ``number``."""
        return [r for r in self.runners if r.revision == number]

    def ready(self) -> list[Runner]:
        """The serving revision's ready runners."""
        rev = self.revisions.current
        return [r for r in self.of(rev.number) if r.state == RunnerState.READY] if rev is not None else []

    def free(self, rev: Revision, hint: str | None = None) -> Runner | None:
        """The least busy runner of ``rev`` with a free slot, or the free one whose hints include ``hint``."""
        free = [
            r
            for r in self.of(rev.number)
            if r.state == RunnerState.READY and r.alive and len(r.in_flight) < rev.settings.max_multiplexing
        ]
        return prefer_hinted(hint, [(r, r.hints) for r in sorted(free, key=lambda r: len(r.in_flight))])

    def runner_of(self, request_id: str) -> Runner | None:
        return next((r for r in self.runners if request_id in r.in_flight), None)

    # -- slots ---------------------------------------------------------------------------------
    def take_slot(self, runner: Runner, request_id: str, *, keep_logs: bool) -> None:
        """``runner`` works on the request (``keep_logs``: its output goes to the request's logs,
        from now on: what it wrote before is read first)."""
        if keep_logs:
            runner.read_output()
        runner.in_flight[request_id] = keep_logs

    def give_back(self, runner: Runner, request_id: str, *, served: bool) -> bool:
        """The request's slot on ``runner`` is free again (what the runner wrote for it is read
        first: a call's output is in the app's log once its answer is through); False if it held none."""
        if request_id not in runner.in_flight:
            return False
        runner.read_output()
        del runner.in_flight[request_id]
        runner.served += int(served)
        if not runner.in_flight:
            runner.idle_since = self.clock.monotonic()
            if runner.state == RunnerState.DRAINING:
                self.stop_later(runner)
        return True

    # -- starting ------------------------------------------------------------------------------
    async def start(self, rev: Revision) -> Runner:
        """A ready runner of ``rev`` (a rollout's first), once its resources are free: the app's
        runners of other revisions that hold some make way, one at a time (they finish their
        requests first). RunnerStartError (or what else its start raised) when it failed to start."""
        try:
            while (runner := self._admit(rev)) is None:
                self._rollout_waits = True
                released = asyncio.ensure_future(self.host.resources.released())
                self._make_way_for(rev)
                await released
        finally:
            self._rollout_waits = False
            if self.waiting is not None and not any(r.revision == rev.number for r in self.runners):
                self.waiting = None  # it was cancelled while it waited
        return await self._boot(runner, rev)

    def _make_way_for(self, rev: Revision) -> None:
        """One runner of another revision that holds resources drains (none while one already does)."""
        others = [r for r in self.runners if r.revision != rev.number and self.host.resources.held(r.id)]
        if others and not any(r.state in (RunnerState.DRAINING, *GOING) for r in others):
            runner = min(others, key=lambda r: len(r.in_flight))
            self.log.event(f"Runner {runner.id} finishes its requests and stops: revision {rev.number} needs its GPUs.")
            runner.state = RunnerState.DRAINING
            if not runner.in_flight:
                self.stop_later(runner)

    def spawn(self, rev: Revision) -> None:
        """Start a runner in the background (counted as live at once, so scaling never overshoots).
        Any error while starting it is a failure of the app."""
        runner = self._admit(rev)
        if runner is None:
            return  # it waits for resources: scaling asks again once a runner gives its own back

        async def boot() -> None:
            try:
                await self._boot(runner, rev)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if rev is self.revisions.current:
                    self.failure(str(exc) if isinstance(exc, RunnerStartError) else _describe(exc))
                return
            if rev.openapi is None and rev is self.revisions.current:  # a restored revision: its first runner
                rev.openapi = await self.schema(runner)

        self.host.tasks.spawn(boot(), name=f"boot {runner.id}")

    def _admit(self, rev: Revision) -> Runner | None:
        """A new runner of ``rev`` with its resources taken, in ``runners``; None when what it needs
        is taken (``waiting`` says why)."""
        assert rev.launch is not None and rev.config is not None
        runner_id = f"{self.name}-r{rev.number}-{self._started + 1}"
        claim = self.host.resources.take(runner_id, self.name, rev.launch)
        if not isinstance(claim, Claim):
            if claim != self.waiting:
                self.log.event(f"A runner of {self.name} waits: {claim}")
            self.waiting = claim
            return None
        self.waiting, self._started = None, self._started + 1
        runner = self.host.new_runner(runner_id, rev.number, rev.launch, self.log.runner_output)
        runner.env.update(claim.env)
        runner.gpus = claim.gpus
        runner.started = self.clock.monotonic()
        self.runners.append(runner)
        self.log.event(f"Starting runner {runner.id}.")
        return runner

    def _forget(self, runner: Runner) -> None:
        """The runner is gone: out of ``runners``, its resources given back (once)."""
        if runner in self.runners:
            self.runners.remove(runner)
            self.host.resources.release(runner.id)

    async def _boot(self, runner: Runner, rev: Revision) -> Runner:
        try:
            await runner.start(self.host.probes, state_id=self.host.state_id, tasks=self.host.tasks)
        except BaseException:
            runner.state = RunnerState.DEAD
            self._forget(runner)
            await runner.stop(grace=1.0)
            raise
        runner.idle_since = self.clock.monotonic()
        took = runner.idle_since - runner.started
        self.log.event(f"Runner {runner.id} is ready on port {runner.port} ({took:.1f} s).")
        probe = rev.settings.health
        runner.next_probe = runner.idle_since + (probe.interval if probe else 0.0)
        self.host.tasks.spawn(self._monitor(runner), name=f"monitor {runner.id}")
        if not self.revisions.wanted(rev):
            self.stop_later(runner)  # its revision was replaced meanwhile
        elif rev is self.revisions.current and self.lifecycle.runner_ready():
            self.log.event(f"Runner {runner.id} is ready: {self.name} serves again after its crash loop.")
            self.save()
        self._changed()
        return runner

    async def _monitor(self, runner: Runner) -> None:
        await runner.exited.wait()
        expected = runner.state in GOING
        self._forget(runner)
        await runner.stop(grace=0)
        if not expected:
            self.log.event(
                f"Runner {runner.id} exited unexpectedly (code {runner.returncode}); it will be replaced. "
                f"Its last output:\n{runner.tail_text()}"
            )
            current = self.revisions.current
            if runner.served == 0 and not runner.in_flight and current and runner.revision == current.number:
                self.failure(f"Runner {runner.id} exited with code {runner.returncode}:\n{runner.tail_text()}")
        self.revisions.forget_unused(r.revision for r in self.runners)
        self._changed()

    async def schema(self, runner: Runner) -> bytes | None:
        """The app's OpenAPI document, as ``runner`` serves it (None if it serves none)."""
        try:
            response = await self.host.http.get(runner.url + wire.join_path(wire.OPENAPI_PATH), timeout=10)
        except httpx.HTTPError:
            return None
        return response.content if response.status_code == 200 else None

    def failure(self, message: str) -> None:
        """A runner failed to start or died before serving (or the restored revision could not be
        prepared): the next start backs off, and the app may begin crash-looping."""
        has_current = self.revisions.current is not None
        failure = self.lifecycle.runner_failed(message, has_current=has_current, runner_ready=bool(self.ready()))
        if failure.began and self.listener is not None:
            self.listener.crash_loop_began(self.lifecycle.unavailable_reason())
        failures = self.lifecycle.failures
        if self.lifecycle.crash_looping:
            self.log.event(
                f"Crash loop: {failures} failures in a row; the next attempt in {failure.delay:g} s. "
                f"The last one: {message}"
            )
        else:
            self.log.event(
                f"{message}\nThe next runner starts in {failure.delay:g} s ({failures} failure(s) in a row)."
            )
        self.save()

    # -- stopping ------------------------------------------------------------------------------
    def stop_later(self, runner: Runner) -> None:
        """Stop a runner in the background; it takes no more work from now on."""
        if runner.state not in GOING:
            runner.state = RunnerState.STOPPING
            self.host.tasks.spawn(self.stop(runner), name=f"stop {runner.id}")

    async def stop(self, runner: Runner) -> None:
        if runner.state == RunnerState.DEAD:
            return
        await runner.stop()
        self._forget(runner)
        self.log.event(f"Runner {runner.id} stopped.")

    async def stop_all(self) -> None:
        await asyncio.gather(*(self.stop(r) for r in list(self.runners)))

    async def shutdown(self) -> None:
        """The gateway shuts down: start no more runners, stop every one (the app stays deployed)."""
        self.closing = True
        runners = list(self.runners)
        await asyncio.gather(*(r.stop() for r in runners), return_exceptions=True)
        for runner in runners:
            self._forget(runner)

    def stop_revision(self, number: int) -> None:
        """Stop the runners of revision ``number`` (it was replaced, or failed)."""
        for runner in self.of(number):
            self.stop_later(runner)

    def drain_others(self, number: int) -> None:
        """Runners of revisions other than ``number`` finish their requests, take no new ones, and stop."""
        for runner in self.runners:
            if runner.revision != number and runner.state in LIVE:
                runner.state = RunnerState.DRAINING
                if not runner.in_flight:
                    self.stop_later(runner)

    def retire(self, runner: Runner, message: str) -> None:
        """Take a runner out of service (it is stuck, unhealthy or lost); scaling replaces it."""
        if runner.state not in GOING:
            self.log.event(message)
            self.stop_later(runner)

    async def make_way(self, port: int) -> None:
        """A server pinned to one port: the runners on it finish their requests and stop before the
        new one starts there; FalNotebookError when another process holds it."""
        for runner in [r for r in self.runners if r.port == port]:
            runner.state = RunnerState.DRAINING
            self.log.event(f"Waiting for runner {runner.id} to finish its requests (both listen on port {port}).")
            while runner.in_flight and runner.alive:
                await self.clock.sleep(0.05)
            await self.stop(runner)
        # a stopped runner's last processes (a sandbox's, past its own exit) close their sockets a moment later
        deadline = self.clock.monotonic() + PORT_RELEASE_S
        while not port_is_free(port):
            if self.clock.monotonic() >= deadline:
                raise FalNotebookError(port_taken(port, "where the app's server listens (exposed_port, --port)"))
            await self.clock.sleep(0.05)

    # -- scaling -------------------------------------------------------------------------------
    def scale(self, waiting: int) -> None:
        """Start runners for ``waiting`` work and the work in flight, stop idle ones after
        keep_alive, stop drained ones. After a failure, one runner at a time starts, once its
        back-off has passed."""
        for runner in list(self.runners):
            if runner.state == RunnerState.DRAINING and not runner.in_flight:
                self.stop_later(runner)
        rev, rolling = self.revisions.current, self.revisions.rolling
        if rev is None or not self.lifecycle.takes_work or rev.launch is None or self.closing:
            return
        if rolling is not None and rolling.launch is not None and rolling.launch.fixed_port:
            return  # the old runners make way for the new one on the fixed port
        if self._rollout_waits:
            return  # the resources runners give back go to the new revision's first runner
        live = [r for r in self.of(rev.number) if r.state in LIVE]
        desired = rev.settings.desired_runners(waiting + sum(len(r.in_flight) for r in live))
        now = self.clock.monotonic()
        if len(live) >= desired:
            self.waiting = None  # no runner is wanted: none waits
        if len(live) < desired and self.lifecycle.may_start():
            starting = any(r.state == RunnerState.STARTING for r in live)
            wanted = desired - len(live) if not self.lifecycle.failures else int(not starting)
            for _ in range(wanted):
                self.spawn(rev)
        elif len(live) > desired:
            idle = [r for r in live if r.state == RunnerState.READY and not r.in_flight]
            expired = sorted(
                (r for r in idle if now - r.idle_since >= rev.settings.keep_alive), key=lambda r: r.idle_since
            )
            for runner in expired[: len(live) - desired]:
                self.log.event(f"Runner {runner.id} idle for keep_alive={rev.settings.keep_alive:g} s: stopping it.")
                self.stop_later(runner)

    def _changed(self) -> None:
        if self.listener is not None:
            self.listener.capacity_changed()


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
