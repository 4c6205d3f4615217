"""What an app's runtime needs from the gateway that holds it (``core.Gateway``): its store, its
HTTP clients, its supervisor and clock, how a revision is built and how a runner is made. Tests give
the runtime a fake host (tests/gateway/fake_runtime.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import httpx

from ..admin_api import DeploySpec
from ..envs import OnLine
from ..runners import Launch, OnOutput, Runner
from ..store import AppRecord, Store
from ..supervisor import Clock, Supervisor
from ..upstream import Upstream
from .resources import Resources
from .revision import Build


class Host(Protocol):
    store: Store
    probes: httpx.AsyncClient  # readiness probes and health checks: the gateway's own, on connections of their own
    http: httpx.AsyncClient  # schemas, cancellations
    upstream: Upstream  # the proxy hop to runners
    state_id: str
    tasks: Supervisor
    clock: Clock
    resources: Resources  # what runners take from the machine

    def notify(self, request_id: str) -> None:
        """Wake whoever watches the request (its status stream)."""

    def save_app(self, name: str, record: AppRecord) -> None:
        """Record the app's state, so that a restarted gateway restores it."""

    def last_revision(self, name: str) -> int:
        """The last revision number recorded for app ``name`` (0 for none)."""

    def completed(self, request_id: str) -> None:
        """A queued request ended (its webhook is due)."""

    async def build(self, spec: DeploySpec, snapshot: Path, *, copy: bool, on_line: OnLine) -> Build:
        """Snapshot the project (``copy``) into ``snapshot``, load it, and prepare its runners' launch."""

    def new_runner(self, runner_id: str, revision: int, launch: Launch, on_output: OnOutput) -> Runner:
        """A runner, not started yet."""
