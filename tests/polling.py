"""The one way tests wait for something that happens in another process or thread: poll a
condition until it holds, and fail, saying what did not happen, at a deadline. Never a fixed sleep:
a loaded machine makes it too short, an idle one too long."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    condition: Callable[[], T],
    what: str,
    *,
    timeout: float = 30.0,
    interval: float = 0.05,
    details: Callable[[], str] | None = None,
) -> T:
    """``condition()``'s first true value, polled every ``interval`` seconds; AssertionError naming
    ``what`` (and ``details()``, a log's tail...) after ``timeout`` seconds. A condition that can
    tell it will never hold raises at once."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(_timed_out(what, timeout) + (f"\n{details()}" if details else ""))
        time.sleep(interval)
    return value


async def wait_for_async(condition: Callable[[], T], what: str, *, timeout: float = 30.0, interval: float = 0.05) -> T:
    """``wait_for`` inside an event loop (a test that shares its loop with a server it waits on)."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(_timed_out(what, timeout))
        await asyncio.sleep(interval)
    return value


def _timed_out(what: str, timeout: float) -> str:
    return f"timed out after {timeout:g} s waiting for {what}"
