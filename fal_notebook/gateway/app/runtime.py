"""One deployed app inside the gateway, in rooms:

- ``lifecycle.py``: its status (deploying, ready, crash-looping, failed, stopped) and the back-off of its runner starts;
- ``rollout.py``: deploys, restores, cancels and stops (which revision serves: ``revision.py``);
- ``pool.py``: its runners (started after they took their resources, watched, stopped, scaled);
- ``health.py``: health checks of the ready runners;
- ``queue.py``: work waiting for a runner, and what ends it when it cannot be served;
- ``attempts.py``: requests on runners, retried on fal's conditions;
- ``log.py``: its events and log file, and its runners' output.

The runtime reaches the world only through its ``Host`` (host.py): the store, the HTTP clients,
its supervisor and clock, how a revision is built and how a runner is made. Tests give it a fake
host (fake runners, a fake clock); ``tick()`` is its periodic work (deadlines, retries, health
checks, scaling).
"""

from __future__ import annotations

from ...statuses import AppStatus
from ..admin_api import AppInfo, DeploySpec, RevisionInfo, RunnerInfo
from ..retries import Policy
from ..runners import Runner
from ..store import AppRecord
from .attempts import Attempts
from .health import HealthChecks
from .host import Host
from .lifecycle import Lifecycle
from .log import AppLog
from .pool import RunnerPool
from .queue import Work, WorkQueue
from .revision import Revision, Revisions
from .rollout import Rollouts


class AppRuntime:
    """App ``name`` in the gateway. Restored from a record: ``stopped`` (it was stopped), ``auth``
    (its auth mode, which survives failures and restarts), ``retry`` (its retry settings, for the
    record until its revision is prepared again)."""

    def __init__(
        self, name: str, host: Host, *, stopped: bool = False, auth: str | None = None, retry: Policy | None = None
    ):
        self.name = name
        self.host = host
        self.clock = host.clock
        self.lifecycle = Lifecycle(name, host.clock, stopped=stopped)
        self.revisions = Revisions(host.tasks, auth=auth)
        self.log = AppLog(name, host.clock, host.store, host.notify)
        self.pool = RunnerPool(name, host, self.revisions, self.lifecycle, self.log, self.save)
        self.queue = WorkQueue(host, self.revisions, self.lifecycle, self.pool, self._execute)
        self.pool.listener = self.queue
        self.attempts = Attempts(name, host, self.revisions, self.lifecycle, self.log, self.pool, self.queue)
        self.health = HealthChecks(host, self.revisions, self.pool)
        self.rollouts = Rollouts(name, host, self.revisions, self.lifecycle, self.log, self.pool, self.queue, self.save)
        self._retry = retry

    # -- what changes it -----------------------------------------------------------------------
    def deploy(
        self, spec: DeploySpec, digest: str, *, number: int | None = None, copy: bool = True, auth: str | None = None
    ) -> int:
        return self.rollouts.deploy(spec, digest, number=number, copy=copy, auth=auth)

    def restore(self, spec: DeploySpec, digest: str, number: int) -> None:
        self.rollouts.restore(spec, digest, number)

    async def cancel_rollout(self, number: int | None = None) -> bool:
        return await self.rollouts.cancel(number)

    async def stop(self) -> None:
        await self.rollouts.stop()

    def tick(self) -> None:
        """The periodic work (the gateway's housekeeping calls it): deadlines, a restore to retry,
        health checks, scaling."""
        self.queue.expire_deadlines()
        self.rollouts.retry_restore()
        self.health.check()
        self.pool.scale(self.queue.waiting())

    def close(self) -> None:
        """The gateway shuts down: start no more runners, and abandon a rollout."""
        self.pool.closing = True
        self.rollouts.abandon()

    async def shutdown(self) -> None:
        """The gateway shuts down: also stop the runners (the app stays deployed)."""
        self.close()
        await self.pool.shutdown()

    def _execute(self, work: Work, runner: Runner) -> None:
        self.attempts.execute(work, runner)

    # -- what it is ----------------------------------------------------------------------------
    @property
    def status(self) -> AppStatus:
        return self.lifecycle.status

    @property
    def current(self) -> Revision | None:
        """The serving revision."""
        return self.revisions.current

    @property
    def auth(self) -> str:
        return self.revisions.auth

    def save(self) -> None:
        """Record the app's state, so that a restarted gateway restores it."""
        self.host.save_app(self.name, self.record())

    def record(self) -> AppRecord:
        current = self.revisions.current
        spec = current.spec if current else self.rollouts.spec
        if current is not None and current.config is not None:  # else the revision is not prepared yet
            self._retry = current.settings.retry
        return AppRecord(
            status=self.lifecycle.status,
            error=self.lifecycle.error,
            auth=self.revisions.auth,
            revision=current.number if current else None,
            digest=current.digest if current else None,
            retry=self._retry,
            spec=spec,
            secret_names=tuple(sorted(spec.secrets)) if spec else (),
            updated=self.clock.time(),
        )

    def info(self, since: int = 0) -> AppInfo:
        """The app's state for the admin API, with its events after ``since``."""
        revisions, lifecycle, spec = self.revisions, self.lifecycle, self.rollouts.spec
        current, latest = revisions.current, revisions.latest
        return AppInfo(
            name=self.name,
            status=lifecycle.status,
            error=lifecycle.error,
            failures=lifecycle.failures,
            last_exit=lifecycle.last_exit,
            next_attempt=lifecycle.next_attempt(),
            revision=current.number if current else None,
            deploying=revisions.rolling.number if revisions.rolling else None,
            latest=RevisionInfo(latest.number, latest.status, latest.error) if latest else None,
            mode=current.config.mode if current and current.config else None,
            auth=revisions.auth,
            env=spec.env if spec else None,
            image=current.launch.image if current and current.launch else None,
            path=spec.path if spec else None,
            notes=list(current.notes) if current else [],
            openapi=current.openapi is not None if current else None,
            queued=self.queue.waiting(queued_only=True),
            runners=[
                RunnerInfo(
                    r.id,
                    r.revision,
                    r.state,
                    r.port,
                    r.process.pid if r.process else None,
                    len(r.in_flight),
                    self.host.resources.held(r.id),
                )
                for r in self.pool.runners
            ],
            waiting=self.pool.waiting,
            events=self.log.after(since),
        )
