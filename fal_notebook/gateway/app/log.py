"""An app's log: its deploy and runtime events, and its runners' output.

Events are kept (the last EVENTS_KEPT) for the front end that follows a deploy, and every event and
output line goes to the app's log file (``<FAL_NOTEBOOK_HOME>/gateway/logs/<name>.log``, rotated
beyond LOG_ROTATE_BYTES). A runner's output lines also go to the logs of the requests it works on
(fal's request logs), secrets redacted.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Callable
from datetime import UTC, datetime

from ... import wire
from ...secrets import Redactor
from ...wire import LogLevel
from ..admin_api import Event
from ..paths import app_log_path
from ..runners import Runner
from ..store import Store
from ..supervisor import Clock

EVENTS_KEPT = 500
#: The app's log file is rotated (to ``<name>.log.1``) beyond this size.
LOG_ROTATE_BYTES = 20 * 1024 * 1024
_ACCESS_LINE = re.compile(r'^INFO:\s+\S+:\d+ - "[A-Z]+ ')
_LEVEL_PREFIX = re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL)[:\s]")


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


class AppLog:
    """The events and the log file of app ``name``; ``notify`` wakes the watchers of a request
    whose logs grew."""

    def __init__(self, name: str, clock: Clock, store: Store, notify: Callable[[str], None]):
        self.clock = clock
        self.store = store
        self.notify = notify
        self.events: list[Event] = []
        #: Hides the values of the app's secrets (set once per deploy, not per output line).
        self.redact = Redactor()
        self._seq = itertools.count(1)
        self._news = asyncio.Event()  # set (and replaced) by each event
        self._path = app_log_path(name)
        self._file = self._path.open("a")
        self._size = self._file.tell()
        self._flush_soon: asyncio.Handle | None = None  # lines reach the file at the end of their loop turn

    def event(self, message: str) -> None:
        """A deploy/runtime event: shown by the deploying front end and written to the app's log."""
        self.events.append(Event(next(self._seq), self.clock.time(), message))
        del self.events[:-EVENTS_KEPT]
        self._write(f"[gateway] {message}")
        news, self._news = self._news, asyncio.Event()
        news.set()

    def after(self, since: int) -> list[Event]:
        """The events after event ``since``."""
        return [e for e in self.events if e.seq > since]

    async def news(self, since: int, timeout: float) -> None:
        """Return when there are events after ``since``, or after ``timeout`` seconds."""
        if not self.events or self.events[-1].seq <= since:
            try:
                await asyncio.wait_for(self._news.wait(), timeout)
            except TimeoutError:
                pass

    def runner_output(self, runner: Runner, stream: str, line: str) -> None:
        """A line a runner wrote: to the app's log, and (but HTTP access lines) to the logs of the
        requests it works on that keep their logs (queued ones)."""
        line = self.redact(line)
        self._write(f"[{runner.id}] {line}")
        if _ACCESS_LINE.match(line) or not runner.in_flight:
            return
        prefix = _LEVEL_PREFIX.match(line)
        level = (
            wire.log_level(prefix.group(1)) if prefix else LogLevel.STDERR if stream == "stderr" else LogLevel.STDOUT
        )
        entry = {"timestamp": now_iso(), "message": line, "level": level, "source": wire.LOG_SOURCE}
        for request_id, keep in list(runner.in_flight.items()):
            if keep:
                self.store.add_log(request_id, entry)
                self.notify(request_id)

    def request_log(self, request_id: str, message: str) -> None:
        """A line of the gateway's own in a request's logs."""
        self.store.add_log(
            request_id, {"timestamp": now_iso(), "message": message, "level": LogLevel.WARN, "source": wire.LOG_SOURCE}
        )

    def close(self) -> None:
        if self._flush_soon is not None:
            self._flush_soon.cancel()
        self._file.close()

    def _write(self, line: str) -> None:
        """One line to the log file; the lines of one turn of the event loop are written at its end,
        together (a runner writes a line per request: one write, not one per line)."""
        text = f"{now_iso()} {line}\n"
        self._file.write(text)
        self._size += len(text)
        if self._size > LOG_ROTATE_BYTES:
            self._file.close()
            self._path.replace(self._path.with_name(self._path.name + ".1"))
            self._file, self._size = self._path.open("a"), 0
        elif self._flush_soon is None:
            try:
                self._flush_soon = asyncio.get_running_loop().call_soon(self._flush)
            except RuntimeError:  # no event loop (tools, tests)
                self._file.flush()

    def _flush(self) -> None:
        self._flush_soon = None
        if not self._file.closed:
            self._file.flush()
