"""Health checks of an app's ready runners, as its revision's settings ask (settings.py): a runner
that fails ``failure_threshold`` checks in a row, once older than the start period, is replaced. And,
for every app, every :data:`LOOPBACK_EVERY` seconds: a runner found listening beyond loopback (a
server that rebinds after its start) is stopped, as a failure."""

from __future__ import annotations

import httpx

from ...statuses import RunnerState
from ..runners import Runner, exposed
from ..settings import HealthProbe
from .host import Host
from .pool import RunnerPool
from .revision import Revisions

#: Seconds between two looks at where an app's ready runners listen (listeners.py).
LOOPBACK_EVERY = 1.0


class HealthChecks:
    def __init__(self, host: Host, revisions: Revisions, pool: RunnerPool):
        self.host = host
        self.clock = host.clock
        self.revisions = revisions
        self.pool = pool
        self.next_look = 0.0

    def check(self) -> None:
        """Probe each ready runner whose probe is due, in the background; stop one found listening
        beyond loopback."""
        now = self.clock.monotonic()
        if now >= self.next_look:
            self.next_look = now + LOOPBACK_EVERY
            ready = [r for r in self.pool.runners if r.state == RunnerState.READY]
            found = exposed(set().union(*(r.ports for r in ready))) if ready else []
            for runner in ready:
                public = runner.beyond_loopback(found)
                if public:
                    message = runner.exposed_message(public)
                    self.pool.retire(runner, f"{message} It is stopped.")
                    self.pool.failure(message)
        for runner in self.pool.runners:
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
            response = await self.host.probes.request(probe.method, runner.url + probe.path, timeout=probe.timeout)
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
            self.pool.retire(
                runner,
                f"Runner {runner.id} is unhealthy: {runner.health_failures} health checks of {probe.path} failed in "
                f"a row ({why}); it is replaced.",
            )
