"""An app's status machine alone (app/lifecycle.py): pure, driven by a fake clock."""

from __future__ import annotations

import pytest
from fake_runtime import FakeClock

from fal_notebook.gateway.app.lifecycle import BACKOFF_CAP, CRASH_LOOP, Lifecycle, backoff
from fal_notebook.statuses import AppStatus

DIED = "Runner app-r1-2 exited with code 1:\nTraceback (most recent call last):\nValueError: no weights"


def test_runner_starts_back_off_exponentially_up_to_a_cap():
    assert [backoff(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert backoff(100) == BACKOFF_CAP


def test_failures_in_a_row_with_no_runner_ready_make_a_crash_loop_that_a_ready_runner_ends():
    clock = FakeClock()
    app = Lifecycle("app", clock)
    app.serving()
    for _ in range(CRASH_LOOP - 1):
        assert not app.runner_failed(DIED, has_current=True, runner_ready=False).began
    assert app.status == AppStatus.READY and not app.may_start()
    failure = app.runner_failed(DIED, has_current=True, runner_ready=False)
    assert failure.began and failure.delay == 4.0 and app.status == AppStatus.CRASH_LOOPING
    assert app.last_exit == "ValueError: no weights"  # the exception its output shows
    assert app.next_attempt() == pytest.approx(clock.time() + 4.0)
    assert "crash-looping (3 failures in a row)" in app.unavailable_reason()
    assert app.takes_work and not app.down  # queued work waits for it
    clock.advance(4.0)
    assert app.may_start() and app.down_for(since=0.0) == 4.0
    assert app.runner_ready() and app.status == AppStatus.READY and app.next_attempt() is None
    assert not app.runner_ready()  # only the end of a crash loop is news


def test_a_ready_runner_or_no_revision_to_serve_keeps_an_app_out_of_a_crash_loop():
    busy = Lifecycle("busy", FakeClock())
    busy.serving()
    assert not any(busy.runner_failed(DIED, has_current=True, runner_ready=True).began for _ in range(5))
    assert busy.status == AppStatus.READY and busy.failures == 5
    busy.served()
    assert busy.failures == 0
    first = Lifecycle("first", FakeClock())
    assert not any(first.runner_failed(DIED, has_current=False, runner_ready=False).began for _ in range(5))
    assert first.status == AppStatus.DEPLOYING


def test_a_deploy_starts_afresh_and_only_a_failed_or_stopped_app_or_one_without_a_revision_is_deploying_again():
    app = Lifecycle("app", FakeClock())
    app.failed("the build failed")
    assert app.down and app.unavailable_reason() == "App app failed: the build failed"
    app.deploying(serving=False)
    assert app.status == AppStatus.DEPLOYING and app.error is None
    app.serving()
    app.runner_failed(DIED, has_current=True, runner_ready=False)
    app.deploying(serving=True)  # a redeploy: the serving revision keeps serving meanwhile
    assert app.status == AppStatus.READY and app.failures == 0 and app.may_start()
    app.stopped()
    assert app.down and app.unavailable_reason() == "App app is stopped; deploy it again."
    assert Lifecycle("restored", FakeClock(), stopped=True).status == AppStatus.STOPPED
