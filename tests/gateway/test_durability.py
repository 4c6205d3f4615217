"""The queue survives the gateway: SQLite keeps every accepted request, and every webhook still to
deliver, through a SIGKILL."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sqlite3
from pathlib import Path

from gateway_apps import echo
from test_webhooks import receiver  # noqa: F401  (the fixture)

from fal_notebook import wire
from fal_notebook.gateway import gateway_status, start_gateway
from fal_notebook.gateway.store import INLINE_BODY, AppRecord, Store
from fal_notebook.gateway.webhooks import retry_delays, verify
from fal_notebook.statuses import AppStatus
from tests.gateway_helpers import TEST_WEBHOOK_WINDOW
from tests.polling import wait_for

RETRY_DELAYS = retry_delays(TEST_WEBHOOK_WINDOW)


def kill_gateway(gateway) -> None:
    pid = gateway_status().pid
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not alive(pid), what="the gateway to die")


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def test_gateway_killed_with_requests_queued_completes_them_after_restart(gateway):
    gateway.deploy(echo(), "durable", auth="public", max_concurrency=1)
    runner_pid = gateway.info("durable")["runners"][0]["pid"]
    cmd = "python -m http.server $PORT --bind 127.0.0.1"
    gateway.deploy("", "static", mode="server", cmd=cmd, auth="public")
    server_pid = gateway.info("static")["runners"][0]["pid"]
    with gateway.http() as client:
        handles = [
            client.post("/queue/local/durable", json={"text": f"job {i}", "delay": 1.0}).json() for i in range(4)
        ]
        wait_for(
            lambda: client.get(handles[0]["status_url"]).json()["status"] == "IN_PROGRESS",
            what="first request running",
        )
    # every accepted request is in the database before its submission was answered
    db = sqlite3.connect(gateway.home / "gateway" / "gateway.sqlite3")
    stored = {row[0] for row in db.execute("SELECT id FROM requests")}
    db.close()
    assert {h["request_id"] for h in handles} <= stored

    gateway_pid = gateway_status().pid
    os.kill(gateway_pid, signal.SIGKILL)
    wait_for(lambda: not alive(gateway_pid), what="the gateway to die")
    wait_for(lambda: not alive(runner_pid), what="its runner to die with it")
    wait_for(lambda: not alive(server_pid), what="the --cmd server to die with it")

    assert start_gateway().pid != gateway_pid
    with gateway.http() as client:
        statuses = [gateway.wait_completed(client, h["status_url"], timeout=90) for h in handles]
        assert all("error" not in s for s in statuses), statuses
        assert [client.get(h["response_url"]).json()["words"] for h in handles] == [2, 2, 2, 2]
    retried = [entry["message"] for entry in statuses[0]["logs"]]
    assert "The gateway restarted while this request ran; retrying it." in retried


def test_results_are_kept_an_hour_then_purged(tmp_path):
    store = Store(tmp_path / "queue.sqlite3")
    store.save_body("r1", b"{}")
    store.add_request("r1", "app", "/", {})
    store.add_log("r1", {"timestamp": "t", "level": "STDOUT", "source": "USER", "message": "hello"})
    store.complete("r1", 200, b'{"ok": true}', "application/json")
    assert store.purge() == 0
    assert store.result("r1").body == b'{"ok": true}'
    store.db.execute("UPDATE requests SET completed = completed - 3601 WHERE id = 'r1'")
    assert store.purge() == 1
    assert store.get("r1") is None and store.logs("r1") == []


def test_a_webhook_pending_when_the_gateway_is_killed_is_delivered_once_after_restart(gateway, receiver):  # noqa: F811
    """The receiver refuses; the gateway dies between two attempts; the one that starts again takes up the
    schedule where it stood (attempt counts go on, each attempt logged once) and delivers once the
    receiver takes deliveries again."""
    gateway.deploy(echo(), "hooked", auth="public")
    receiver.answers = [503] * 100
    with gateway.http() as client:
        handle = client.post("/queue/local/hooked", params={"fal_webhook": receiver.url}, json={"text": "a b c"}).json()
        gateway.wait_completed(client, handle["status_url"])
    before = len(receiver.wait(9))  # the next attempt waits RETRY_DELAYS[8] (2.56 s): the gateway dies meanwhile
    kill_gateway(gateway)
    assert len(receiver.received) < 1 + len(RETRY_DELAYS)

    start_gateway()
    receiver.wait(before + 1)  # a first attempt after the restart, still refused
    receiver.answers.clear()  # the receiver takes deliveries again
    wait_for(lambda: 200 in receiver.answered, timeout=60, what="the delivery")

    answers = receiver.answered
    assert answers.count(200) == 1 and answers[-1] == 200 and set(answers[:-1]) == {503}
    bodies = {body for _, body in receiver.received}
    assert len(bodies) == 1 and json.loads(bodies.pop())["payload"]["words"] == 3
    with gateway.http() as client:
        keys = client.get(wire.JWKS_PATH).json()  # the same key after the restart
    headers, body = receiver.received[-1]
    assert verify(headers, body, keys) and headers[wire.WEBHOOK_REQUEST_ID] == handle["request_id"]

    log = (gateway.home / "gateway" / "logs" / "hooked.log").read_text()
    numbers = [int(n) for n in re.findall(rf"request {handle['request_id']}: attempt (\d+)/11", log)]
    assert numbers == list(range(1, len(receiver.received) + 1))  # one entry per attempt, counted on
    assert f"the gateway restarted after attempt {before}/11; resuming." in log
    attempts = [line for line in log.splitlines() if f"request {handle['request_id']}: attempt" in line]
    assert (
        " answered 200; delivered, signed with the gateway's key (receivers verify it at http://127.0.0.1:"
        in attempts[-1]
    )
    assert attempts[-1].endswith("/.well-known/jwks.json).")
    db = sqlite3.connect(gateway.home / "gateway" / "gateway.sqlite3")
    [(outcome,)] = db.execute("SELECT webhook_outcome FROM requests WHERE id = ?", (handle["request_id"],))
    db.close()
    assert outcome == f"delivered: attempt {len(receiver.received)} answered 200"


def test_pending_webhooks_are_the_completed_requests_whose_delivery_has_not_ended(tmp_path):
    store = Store(tmp_path / "queue.sqlite3")
    for request_id, webhook in (("plain", None), ("hooked", "http://127.0.0.1:9/h"), ("queued", "http://h/")):
        store.save_body(request_id, b"{}")
        store.add_request(request_id, "app", "/", {}, webhook=webhook)
    for request_id in ("plain", "hooked"):
        store.complete(request_id, 200, b"{}", "application/json")
    store.webhook_attempt("hooked", 3)
    assert [(r.id, r.webhook_attempts) for r in store.pending_webhooks()] == [("hooked", 3)]
    store.db.execute("UPDATE requests SET completed = completed - 3601")
    assert store.purge() == 1  # "plain"; a webhook still to deliver keeps its request
    store.webhook_ended("hooked", "delivered: attempt 4 answered 200")
    assert store.pending_webhooks() == [] and store.purge() == 1


def committed(path: Path, request_id: str) -> sqlite3.Row | None:
    """The request as another process sees it: only what was committed."""
    db = sqlite3.connect(path)
    db.row_factory = sqlite3.Row
    try:
        return db.execute("SELECT status FROM requests WHERE id = ?", (request_id,)).fetchone()
    finally:
        db.close()


def test_submissions_and_results_are_committed_before_the_store_returns(tmp_path):
    path = tmp_path / "queue.sqlite3"
    store = Store(path)

    async def scenario() -> list[str | None]:
        seen = []
        store.add_request("r1", "app", "/", {}, body=b'{"small": "body"}')
        seen.append(committed(path, "r1")["status"])  # answered only after this: it survives a kill
        store.start("r1", 1, "runner-1")  # acknowledges nothing: joins the next commit
        await asyncio.sleep(0)
        seen.append(committed(path, "r1")["status"])
        store.start("r1", 2, "runner-1")
        store.complete("r1", 200, b'{"ok": true}', "application/json")  # commits the start with it
        seen.append(committed(path, "r1")["status"])
        return seen

    assert asyncio.run(scenario()) == ["IN_QUEUE", "IN_PROGRESS", "COMPLETED"]
    assert store.get("r1").attempts == 2
    assert not hasattr(store.get("r1"), "body") and store.body("r1") is None  # it went with the completion
    store.close()


def test_what_the_store_answers_from_memory_is_what_its_database_holds(tmp_path):
    """A request's state, its place in the queue and its result come from the store's memory: the
    same as what a store that reads the database finds (another process, or the gateway restarted)."""
    path = tmp_path / "queue.sqlite3"
    store = Store(path)
    ids = [f"r{i}" for i in range(7)]
    for n, request_id in enumerate(ids):
        webhook = "http://127.0.0.1:9/hook" if request_id == "r5" else None
        store.add_request(request_id, "app", "/", {"x-n": str(n)}, body=b"{}", priority=n % 2, webhook=webhook)
    store.start("r0", 1, "runner-1")
    store.requeue("r0")  # back in the queue: its place is by its priority and its arrival
    store.start("r2", 1, "runner-1")
    store.request_cancel("r3")
    store.complete("r4", 200, b'{"ok": 1}', "application/json")
    store.complete("r5", 500, b"{}", "application/json", error="failed", error_type="internal_error")
    store.webhook_attempt("r5", 2)
    store.commit()
    fresh = Store(path)
    for request_id in [*ids, "unknown"]:
        assert store.get(request_id) == fresh.get(request_id)
        assert store.result(request_id) == fresh.result(request_id)
    queued = fresh.queued("app")  # in the database's order
    assert [r.id for r in queued] == ["r0", "r6", "r1", "r3"]
    assert [store.queue_position(r) for r in queued] == [fresh.queue_position(r) for r in queued] == [0, 1, 2, 3]
    assert store.queue_length("app") == fresh.queue_length("app") == 4
    store.close()
    fresh.close()


def test_a_body_is_written_once_in_the_database_or_beside_it_and_goes_when_its_request_completes(tmp_path):
    store = Store(tmp_path / "queue.sqlite3")
    large = b"x" * (INLINE_BODY + 1)
    store.add_request("small", "app", "/", {}, body=b'{"text": "hi"}')
    store.save_body("large", large)  # (off the event loop, in the gateway)
    store.add_request("large", "app", "/", {})
    assert store.body("small") == b'{"text": "hi"}' and store.body("large") == large
    assert not (store.bodies / "small").exists() and (store.bodies / "large").read_bytes() == large
    store.start("small", 1, "runner-1")
    assert store.body("small") == b'{"text": "hi"}'  # a change of the row leaves the body be
    for request_id in ("small", "large"):
        store.complete(request_id, 200, b"{}", "application/json")
        assert store.body(request_id) is None
    assert list(store.bodies.iterdir()) == []
    store.close()


V1_SCHEMA = """
CREATE TABLE requests (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, app TEXT NOT NULL,
    path TEXT NOT NULL, body BLOB NOT NULL, headers TEXT NOT NULL, priority INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, runner TEXT, created REAL NOT NULL, started REAL,
    completed REAL, start_deadline REAL, cancel_requested INTEGER NOT NULL DEFAULT 0, result_status INTEGER,
    result_body BLOB, result_type TEXT, error TEXT, error_type TEXT, inference_time REAL);
CREATE INDEX requests_queue ON requests (app, status, priority, seq);
CREATE INDEX requests_completed ON requests (completed);
CREATE TABLE logs (id INTEGER PRIMARY KEY AUTOINCREMENT, request_id TEXT NOT NULL, timestamp TEXT NOT NULL,
    level TEXT NOT NULL, source TEXT NOT NULL, message TEXT NOT NULL);
CREATE TABLE apps (name TEXT PRIMARY KEY, record TEXT NOT NULL);
INSERT INTO requests (id, app, path, body, headers, status, created) VALUES ('queued', 'app', '/', x'7b7d', '{}',
    'IN_QUEUE', 1.0);
INSERT INTO requests (id, app, path, body, headers, status, created, completed, result_status, result_body,
    result_type) VALUES ('done', 'app', '/', x'5b5d', '{}', 'COMPLETED', 2.0, 3.0, 200, x'31', 'application/json');
INSERT INTO apps VALUES ('app', '{"status": "ready"}');
"""


def test_a_database_of_the_previous_gateway_keeps_its_requests_and_apps(tmp_path):
    path = tmp_path / "queue.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(V1_SCHEMA)
    db.close()
    store = Store(path)
    assert [request.id for request in store.queued("app")] == ["queued"]
    assert store.body("queued") == b"{}" and store.body("done") is None
    assert store.result("done").body == b"1" and store.result("queued") is None
    assert store.apps() == {"app": AppRecord(status=AppStatus.READY)}
    store.add_request("new", "app", "/", {}, body=b"{}")
    assert store.queue_position(store.get("new")) == 1
    store.close()
