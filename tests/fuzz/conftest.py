"""Fuzzing as regression tests (issue 12): hypothesis over cells, schemas and HTTP requests.

``FAL_NOTEBOOK_FUZZ=full`` runs at least 1,000 examples per target with a random seed (README,
"Security"); by default (and in CI) each target runs a few dozen examples from a fixed seed, so
that CI stays fast and a failure there is reproducible.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

from hypothesis import HealthCheck, settings

FULL = os.environ.get("FAL_NOTEBOOK_FUZZ", "").strip().lower() == "full"
FULL_EXAMPLES = 1000
SECRET = "fuzz-secret-4f1c9a7e:b8d2e6035a"  # the FAL_KEY of every fuzzed run: it must never show up


def fuzz_settings(ci_examples: int) -> settings:
    """``ci_examples`` (fixed seed) by default, :data:`FULL_EXAMPLES` (random) when fuzzing for real."""
    return settings(
        max_examples=FULL_EXAMPLES if FULL else ci_examples,
        derandomize=not FULL,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=True,
    )


class Hang(Exception):
    """An example took longer than the fuzz target allows."""


@contextlib.contextmanager
def no_hang(seconds: int) -> Iterator[None]:
    """Fail the example (rather than the whole run) if it takes more than ``seconds``."""

    def alarm(signum, frame):
        raise Hang(f"no answer after {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def snapshot(folder: Path) -> dict[str, float]:
    """Every path under ``folder`` with its modification time (to see what a call wrote)."""
    return {str(p): p.lstat().st_mtime for p in folder.rglob("*")} if folder.exists() else {}


def written(before: dict[str, float], after: dict[str, float]) -> list[str]:
    return sorted(p for p, t in after.items() if before.get(p) != t)
