"""The queue survives the gateway: SQLite keeps every accepted request through a SIGKILL."""

from __future__ import annotations

import os
import signal
import sqlite3
from pathlib import Path

from gateway_apps import echo

from fal_notebook.gateway import gateway_status, start_gateway
from fal_notebook.gateway.store import Store


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
        gateway.wait_for(
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
    gateway.wait_for(lambda: not alive(gateway_pid), what="the gateway to die")
    gateway.wait_for(lambda: not alive(runner_pid), what="its runner to die with it")
    gateway.wait_for(lambda: not alive(server_pid), what="the --cmd server to die with it")

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
    assert store.get("r1")["result_body"] == b'{"ok": true}'
    store.db.execute("UPDATE requests SET completed = completed - 3601 WHERE id = 'r1'")
    assert store.purge() == 1
    assert store.get("r1") is None and store.logs("r1") == []
