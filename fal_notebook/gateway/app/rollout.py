"""What changes which revision of an app serves: a deploy rolls a new revision out (its first
runner started and its schema read before it is promoted; the old runners drain), a cancel drops
it, a failure of the first deploy fails the app, a stop stops it, and a gateway restart restores
the revision that served (prepared again from its snapshot; failures back off and are retried).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ... import wire
from ...config import auth_mode
from ...errors import FalNotebookError
from ...secrets import Redactor
from ...statuses import LIVE, AppStatus, RevisionStatus
from ..admin_api import DeploySpec
from ..envs import EnvBuildError
from ..paths import snapshots_dir
from ..runners import RunnerStartError
from .host import Host
from .lifecycle import Lifecycle
from .log import AppLog
from .pool import RunnerPool
from .queue import WorkQueue
from .revision import Revision, Revisions


class Rollouts:
    def __init__(
        self,
        name: str,
        host: Host,
        revisions: Revisions,
        lifecycle: Lifecycle,
        log: AppLog,
        pool: RunnerPool,
        queue: WorkQueue,
        save: Callable[[], None],
    ):
        self.name = name
        self.host = host
        self.revisions = revisions
        self.lifecycle = lifecycle
        self.log = log
        self.pool = pool
        self.queue = queue
        self.save = save
        self.spec: DeploySpec | None = None  # the last one deployed
        self._rollout: asyncio.Task | None = None
        self._preparing: asyncio.Task | None = None

    # -- deploy --------------------------------------------------------------------------------
    def deploy(
        self, spec: DeploySpec, digest: str, *, number: int | None = None, copy: bool = True, auth: str | None = None
    ) -> int:
        """Start rolling out ``spec`` (idempotent: the same digest returns the same revision); while
        no revision serves, its ``auth`` mode applies at once."""
        revisions = self.revisions
        if revisions.current is None and auth is not None:
            revisions.auth = auth
        if revisions.rolling is not None and revisions.rolling.digest == digest:
            return revisions.rolling.number
        current = revisions.current
        if revisions.rolling is None and current is not None and current.digest == digest:
            if self.lifecycle.status == AppStatus.READY:
                return current.number
        if revisions.rolling is not None:
            self._supersede(revisions.rolling)
        number = number or max([0, *revisions.all, self.host.last_revision(self.name)]) + 1
        rev = revisions.add(Revision(number, digest, spec, snapshots_dir(self.name) / f"rev-{number}"))
        revisions.rolling, self.spec = rev, spec
        self.log.redact = Redactor(spec.secrets.values())  # once per deploy, not per output line
        self.lifecycle.deploying(serving=current is not None)
        self._rollout = self.host.tasks.spawn(self._roll_out(rev, copy=copy), name=f"{self.name} rollout {number}")
        return number

    async def _roll_out(self, rev: Revision, *, copy: bool) -> None:
        source = rev.spec.path if copy else "its snapshot, after a gateway restart"
        self.log.event(f"Deploying revision {rev.number} of {self.name} from {source}.")
        try:
            rev.apply(await self.host.build(rev.spec, rev.snapshot, copy=copy, on_line=self.log.event))
            for note in rev.notes:
                self.log.event("Note: " + note)
            assert rev.launch is not None
            if rev.launch.fixed_port is not None:
                await self.pool.make_way(rev.launch.fixed_port)
            runner = await self.pool.start(rev)
            rev.openapi = await self.pool.schema(runner)
            self._promote(rev)
        except asyncio.CancelledError:
            raise
        except (RunnerStartError, EnvBuildError, FalNotebookError, OSError) as exc:
            self._failed(rev, str(exc))
        except Exception as exc:
            self._failed(rev, f"{type(exc).__name__}: {exc}")

    def _promote(self, rev: Revision) -> None:
        revisions = self.revisions
        old, revisions.current, revisions.rolling = revisions.current, rev, None
        rev.status = RevisionStatus.READY
        self.lifecycle.serving()
        revisions.auth = auth_mode(rev.config.auth if rev.config else None)
        self.pool.drain_others(rev.number)
        self.save()
        replaced = f" (replacing revision {old.number})" if old else ""
        self.log.event(f"Revision {rev.number} is serving{replaced}: {wire.local_app(self.name)}")
        self.queue.pump()

    def _failed(self, rev: Revision, message: str) -> None:
        rev.status, rev.error = RevisionStatus.FAILED, message
        self.revisions.rolling = None
        self.pool.stop_revision(rev.number)
        self.log.event(f"Deploy of revision {rev.number} failed: {message}")
        if self.revisions.current is None:
            self.fail(message)
        else:
            self.log.event(f"Revision {self.revisions.current.number} keeps serving.")
        self.save()

    def _supersede(self, rev: Revision) -> None:
        if self._rollout is not None:
            self._rollout.cancel()
        rev.status = RevisionStatus.SUPERSEDED
        self.pool.stop_revision(rev.number)
        self.revisions.rolling = None

    async def cancel(self, number: int | None = None) -> bool:
        """Drop the revision being rolled out (``number``, if given, must be it); a revision that
        served before keeps serving, else the app stops. False if there is no such rollout."""
        rev = self.revisions.rolling
        if rev is None or (number is not None and rev.number != number):
            return False
        self.log.event(f"Deploy of revision {rev.number} cancelled.")
        current = self.revisions.current
        if current is None:
            await self.stop()
        else:
            self._supersede(rev)
            self.lifecycle.serving()
            self.log.event(f"Revision {current.number} keeps serving.")
            self.save()
        rev.status = RevisionStatus.CANCELLED
        return True

    # -- restore -------------------------------------------------------------------------------
    def restore(self, spec: DeploySpec, digest: str, number: int) -> None:
        """Serve revision ``number`` again after a gateway restart. It served before, so it is the
        serving revision at once; its launch is prepared again from its snapshot, one runner starts
        (more as work comes; keep_alive stops it when idle). Failures (preparing it, or its runners)
        back off and are retried."""
        rev = self.revisions.add(Revision(number, digest, spec, snapshots_dir(self.name) / f"rev-{number}"))
        self.revisions.current, self.spec = rev, spec
        self.lifecycle.restoring()
        self.log.event(f"Restoring revision {number} of {self.name} from its snapshot, after a gateway restart.")
        self._prepare(rev)

    def retry_restore(self) -> None:
        """Prepare the restored revision again, if that failed and its back-off has passed."""
        rev = self.revisions.current
        if (
            rev is not None
            and rev.launch is None
            and self._preparing is None
            and self.lifecycle.status in (AppStatus.DEPLOYING, AppStatus.CRASH_LOOPING)
            and self.lifecycle.may_start()
            and not self.pool.closing
        ):
            self._prepare(rev)

    def _prepare(self, rev: Revision) -> None:
        self._preparing = self.host.tasks.spawn(self._prepare_restored(rev), name=f"{self.name} restore {rev.number}")

    async def _prepare_restored(self, rev: Revision) -> None:
        try:
            build = await self.host.build(rev.spec, rev.snapshot, copy=False, on_line=self.log.event)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._preparing = None
            self.pool.failure(f"Preparing revision {rev.number} again failed: {type(exc).__name__}: {exc}")
            return
        self._preparing = None
        if rev is not self.revisions.current:
            return  # a redeploy replaced it meanwhile
        rev.apply(build)
        self.revisions.auth = auth_mode(build.config.auth)
        rev.status = RevisionStatus.READY
        if self.lifecycle.status == AppStatus.DEPLOYING:
            self.lifecycle.serving()
        self.save()
        self.log.event(f"Revision {rev.number} serves again: {wire.local_app(self.name)}")
        self.queue.pump()
        if not self.pool.closing and not any(r.state in LIVE for r in self.pool.of(rev.number)):
            self.pool.spawn(rev)  # warm, as after a deploy: its schema is served again, a broken one shows

    # -- the end -------------------------------------------------------------------------------
    def fail(self, message: str) -> None:
        """Its first deploy failed: nothing serves, and every waiting request ends with the reason."""
        self.lifecycle.failed(message)
        for runner in list(self.pool.runners):
            self.pool.stop_later(runner)
        self.queue.drop_all(f"App {self.name} failed: {message}")
        self.save()

    async def stop(self) -> None:
        """Stop the app: its rollout, its waiting work, its runners."""
        if self.revisions.rolling is not None:
            self._supersede(self.revisions.rolling)
        if self._preparing is not None:
            self._preparing.cancel()
        self.lifecycle.stopped()
        self.queue.drop_all(f"App {self.name} was stopped.")
        await self.pool.stop_all()
        self.log.event(f"Stopped {self.name}.")
        self.save()

    def abandon(self) -> None:
        """The gateway shuts down: a rollout or a restore under way is abandoned."""
        for task in (self._rollout, self._preparing):
            if task is not None:
                task.cancel()
