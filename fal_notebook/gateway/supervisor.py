"""The runtime's two seams: background tasks held and supervised, and the clock it reads.

Every background task of the gateway is started through a ``Supervisor``: it keeps a reference
until the task ends, logs and counts a task that fails, and cancels what is left on ``close()``.
The runtime reads time and sleeps through a ``Clock``, so tests drive it with a fake one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger("fal_notebook.gateway")


class Supervisor:
    """A set of running background tasks, each held until it ends."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()
        self.failures = 0

    def spawn(self, work: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(work, name=name)
        self.tasks.add(task)
        task.add_done_callback(self._ended)
        return task

    def _ended(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self.failures += 1
            log.error("Background task %s failed", task.get_name(), exc_info=exc)

    async def close(self) -> None:
        """Cancel every task and wait until they have ended (tasks they start meanwhile too)."""
        while self.tasks:
            pending = list(self.tasks)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)


class Clock:
    """Time as the runtime reads it: ``monotonic`` for intervals, ``time`` for wall-clock deadlines."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
