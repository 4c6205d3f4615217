"""An app's log alone (app/log.py): events, the log file, and runner output in request logs."""

from __future__ import annotations

import asyncio

import pytest
from fake_runtime import FakeClock, FakeRunner

from fal_notebook.gateway.app import log as app_log
from fal_notebook.gateway.app.log import AppLog
from fal_notebook.gateway.paths import app_log_path
from fal_notebook.gateway.runners import Launch
from fal_notebook.gateway.store import Store
from fal_notebook.secrets import Redactor

pytestmark = pytest.mark.usefixtures("fal_env")  # the app's log file goes to its own FAL_NOTEBOOK_HOME
ACCESS = 'INFO:     127.0.0.1:51234 - "POST / HTTP/1.1" 200 OK'


def test_runner_output_goes_to_the_log_file_and_to_the_logs_of_its_queued_requests_with_secrets_hidden(tmp_path):
    store, woken = Store(tmp_path / "queue.sqlite3"), []
    log = AppLog("app", FakeClock(), store, woken.append)
    log.redact = Redactor(["s3cret-value"])
    runner = FakeRunner("app-r1-1", 1, Launch(["app"], tmp_path, {}), log.runner_output)
    for request_id in ("queued", "sync"):
        store.add_request(request_id, "app", "/", {}, body=b"{}")
    runner.in_flight.update(queued=True, sync=False)  # a sync call keeps no logs
    log.runner_output(runner, "stdout", "WARNING: loading with s3cret-value")
    log.runner_output(runner, "stderr", "a traceback line")
    log.runner_output(runner, "stderr", ACCESS)  # the server's access line: the file only
    log.close()
    entries = store.logs("queued")
    assert [(e["level"], e["message"]) for e in entries] == [
        ("WARNING", "WARNING: loading with ***"),
        ("STDERR", "a traceback line"),
    ]
    assert store.logs("sync") == [] and woken == ["queued", "queued"]
    text = app_log_path("app").read_text()
    assert "[app-r1-1] WARNING: loading with ***" in text and ACCESS in text and "s3cret-value" not in text
    store.close()


def test_events_are_kept_numbered_and_wake_a_long_poll(tmp_path):
    async def scenario() -> None:
        log = AppLog("app", FakeClock(), Store(tmp_path / "queue.sqlite3"), lambda _id: None)
        log.event("Deploying revision 1.")
        waiting = asyncio.ensure_future(log.news(since=1, timeout=30))
        await asyncio.sleep(0)
        assert not waiting.done()  # nothing after event 1 yet
        log.event("Revision 1 is serving.")
        await asyncio.wait_for(waiting, 5)
        assert [(e.seq, e.message) for e in log.after(1)] == [(2, "Revision 1 is serving.")]
        await asyncio.wait_for(log.news(since=0, timeout=30), 5)  # there is news already: at once
        log.close()

    asyncio.run(scenario())


def test_the_log_file_is_rotated_beyond_its_size(tmp_path, monkeypatch):
    monkeypatch.setattr(app_log, "LOG_ROTATE_BYTES", 1000)
    log = AppLog("app", FakeClock(), Store(tmp_path / "queue.sqlite3"), lambda _id: None)
    for n in range(40):
        log.event(f"event {n} " + "x" * 40)
    log.close()
    path = app_log_path("app")
    numbers = [
        [int(line.split()[3]) for line in f.read_text().splitlines()] for f in (path.with_name("app.log.1"), path)
    ]
    assert numbers[0][-1] + 1 == numbers[1][0] and numbers[1][-1] == 39  # one log, cut where it grew too large
    assert path.stat().st_size <= 1000 + 100  # (a line beyond the size at most)
