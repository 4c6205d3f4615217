"""Background tasks, held and supervised: each is kept until it ends, and a failure is logged (to the
gateway's log) with the task's name rather than lost with the task."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger("fal_notebook.gateway")


class TaskSet:
    """The running background tasks of one owner (the gateway, an app, a runner)."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._running: set[asyncio.Task[Any]] = set()

    def spawn(self, work: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run ``work`` in the background, held here until it ends."""
        task = asyncio.create_task(work, name=f"{self.owner}: {name}")
        self._running.add(task)
        task.add_done_callback(self._ended)
        return task

    def _ended(self, task: asyncio.Task[Any]) -> None:
        self._running.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("Background task %r failed", task.get_name(), exc_info=error)

    def __len__(self) -> int:
        return len(self._running)
