"""A shared watch over a snapshot (e.g. the apps and the gateway's state) for any number of followers.

One loop computes ``snapshot()`` (in a thread) while at least one follower listens: every
``interval`` seconds, and at once when ``poke()`` is called (from any thread, e.g. when a deploy
job ends). Followers get the latest snapshot first, then each one that differs. With no follower,
nothing runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

log = logging.getLogger(__name__)


class Watch:
    def __init__(self, snapshot: Callable[[], Any], interval: float = 2.0):
        self._snapshot, self.interval = snapshot, interval
        self._latest: Any = None
        self._version = 0
        self._followers = 0
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._next: asyncio.Event | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def follow(self) -> AsyncIterator[Any]:
        """The latest snapshot, then every changed one, until the follower stops iterating."""
        self._followers += 1
        if not self.running:
            self._start()
        else:
            self.poke()  # a new follower gets a fresh snapshot soon
        seen = 0
        try:
            while True:
                changed = self._next
                if self._version != seen:
                    seen = self._version
                    yield self._latest
                    continue
                await changed.wait()
        finally:
            self._followers -= 1
            if self._followers == 0 and self._task is not None:
                self._task.cancel()
                self._task = None

    def poke(self) -> None:
        """Compute a new snapshot now (thread-safe; nothing happens when no one follows)."""
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def _start(self) -> None:
        self._latest, self._version = None, 0  # nobody followed: what was seen last may be old
        self._loop = asyncio.get_running_loop()
        self._wake, self._next = asyncio.Event(), asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="fal-notebook-watch")
        self._task.add_done_callback(self._ended)

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                snapshot = await asyncio.to_thread(self._snapshot)
            except Exception as exc:  # shown to the followers; the watch goes on
                log.warning("fal-notebook: computing the snapshot failed: %s", exc)
                snapshot = {"error": f"{type(exc).__name__}: {exc}"}
            if snapshot != self._latest or self._version == 0:
                self._latest, self._version = snapshot, self._version + 1
                changed, self._next = self._next, asyncio.Event()
                changed.set()
            try:
                await asyncio.wait_for(self._wake.wait(), self.interval)
            except TimeoutError:
                pass

    def _ended(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("fal-notebook: the watch stopped: %r", task.exception())
