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

import pytest
from hypothesis import HealthCheck, settings, strategies as st

from fal_notebook.errors import FalNotebookError

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


#: Values of a query parameter that should be a whole number (``since``, ``wait``, ``fal_max_queue_length``):
#: digits of other scripts, signs, floats, 5,000 digits, and plain text.
count_texts = st.one_of(
    st.integers(-10, 10**30).map(str),
    st.text(alphabet="0123456789²³¹٣੩߉۵١٢ -+.e_x", max_size=12),
    st.sampled_from(["1" * 5000, "", " ", "0x10", "1_000", "١٢", "1e3", "inf", "nan", "-0"]),
    st.text(max_size=10),
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


@pytest.fixture
def place(tmp_path, monkeypatch):
    """A notebook folder ``nb`` with an ``outside`` sibling; FAL_KEY holds a secret to watch for."""
    (tmp_path / "nb").mkdir()
    (tmp_path / "outside").mkdir()
    monkeypatch.setenv("FAL_NOTEBOOK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FAL_KEY", SECRET)
    monkeypatch.chdir(tmp_path / "nb")
    return tmp_path


def check_capture(place, call) -> None:
    """Run ``call``; it may fail only with the package's errors, and writes only inside ``nb``/``home``;
    FAL_KEY's value is in no message, result or written file."""
    before = snapshot(place)
    with no_hang(60):
        try:
            result = call()
        except FalNotebookError as exc:
            message = str(exc)
            assert SECRET not in message
        else:
            for item in result if isinstance(result, list) else [result]:  # projects, or what a call returned
                assert SECRET not in (item.summary() if hasattr(item, "summary") else repr(item))
    changed = written(before, snapshot(place))
    allowed = (str(place / "nb"), str(place / "home"))
    assert [p for p in changed if not p.startswith(allowed)] == [], "written outside the notebook's folder"
    for path in changed:
        if path.startswith(str(place / "nb")) and (place / path).is_file():
            assert SECRET.encode() not in (place / path).read_bytes(), f"the secret is in {path}"
