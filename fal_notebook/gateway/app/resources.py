"""What a runner takes from the machine before it starts, and gives back once it stopped: the
pool's one seam for resources that are not endless (GPUs, handed out per runner).

The pool (pool.py) asks ``take`` before it makes a runner and calls ``release`` once for every
runner it made, on every way out (it failed to start, it exited, it was stopped). A runner that
cannot have what it needs now waits: the pool starts it once a runner (of any app) gives its
resources back, its app's requests stay queued meanwhile, and the app's status says why.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..gpus import CUDA_VISIBLE, Gpu, GpuPool, Holder, visible
from ..runners import Launch


@dataclass(frozen=True)
class Claim:
    """What a runner was given: ``env`` is added to its environment (``CUDA_VISIBLE_DEVICES``), and
    ``gpus`` are its GPUs (its launch's ``{gpus}``)."""

    env: Mapping[str, str] = field(default_factory=dict)
    gpus: tuple[Gpu, ...] = ()


class Resources(Protocol):
    def take(self, runner_id: str, app: str, launch: Launch) -> Claim | str:
        """What runner ``runner_id`` of ``app`` (started as ``launch`` says) is given, or why it must wait."""

    def release(self, runner_id: str) -> None:
        """Give back what runner ``runner_id`` took."""

    async def released(self) -> None:
        """Return once some runner has given its resources back."""

    def held(self, runner_id: str) -> list[dict[str, Any]]:
        """What runner ``runner_id`` holds, as JSON (its GPUs)."""


class Released:
    """The moment some runner gave its resources back, for those who wait for one."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def tell(self) -> None:
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait(self) -> None:
        await self._event.wait()


class NoResources:
    """Runners take nothing the machine could run out of."""

    def __init__(self) -> None:
        self._released = Released()

    def take(self, runner_id: str, app: str, launch: Launch) -> Claim | str:
        return Claim()

    def release(self, runner_id: str) -> None:
        self._released.tell()

    async def released(self) -> None:
        await self._released.wait()

    def held(self, runner_id: str) -> list[dict[str, Any]]:
        return []


class GpuResources:
    """Runners take whole GPUs of the gateway's pool (gpus.py): ``launch.gpus`` each, all or none,
    named in their CUDA_VISIBLE_DEVICES (empty for none) where ``launch.visible_devices``."""

    def __init__(self, pool: GpuPool):
        self.pool = pool
        self._released = Released()

    def take(self, runner_id: str, app: str, launch: Launch) -> Claim | str:
        taken = self.pool.take(Holder(app, runner_id), launch.gpus) if launch.gpus else ()
        if taken is None:
            return f"runner {runner_id} waits for a GPU: {self.pool.shortage(launch.gpus)}."
        return Claim({CUDA_VISIBLE: visible(taken)} if launch.visible_devices else {}, taken)

    def release(self, runner_id: str) -> None:
        if self.pool.release(runner_id):
            self._released.tell()

    async def released(self) -> None:
        await self._released.wait()

    def held(self, runner_id: str) -> list[dict[str, Any]]:
        return self.pool.describe(self.pool.held_by(runner_id))
