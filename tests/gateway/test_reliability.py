"""Issue 13's observations against a real gateway: a runner killed during a restore, a crash loop
that backs off and recovers, headers that cannot be forwarded, and a hung runner found by its
health check. Nothing accepted is stranded, no slot is kept, and a public app stays public."""

from __future__ import annotations

import contextlib
import os
import signal
import time

from gateway_apps import echo
from test_durability import alive

from fal_notebook import cli, wire
from fal_notebook.gateway import gateway_status, start_gateway
from tests.polling import wait_for

FLAKY = """
from pathlib import Path

import fal


class Flaky(fal.App):
    def setup(self):
        starts = Path("starts.txt")  # in the revision's snapshot: counts this app's runner starts
        with starts.open("a") as f:
            f.write("start\\n")
        self.start = len(starts.read_text().splitlines())
        if self.start in (2, 3):
            raise RuntimeError(f"start {self.start}: out of memory while loading the model")

    @fal.endpoint("/")
    def run(self) -> dict:
        return {"start": self.start}
"""


def kill_gateway() -> None:
    pid = gateway_status().pid
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not alive(pid), "the killed gateway to be gone", timeout=20)


def test_a_runner_killed_while_the_gateway_restores_strands_nothing(gateway):
    """Observation 1: the app comes back, its 5 queued requests complete, and it stays public."""
    gateway.deploy(echo(), "restoring", auth="public", max_concurrency=2)
    with gateway.http(key=False) as client:
        handles = [
            client.post("/queue/local/restoring", json={"text": f"job {i}", "delay": 1.0}).json() for i in range(5)
        ]
        kill_gateway()
        start_gateway()
        first = wait_for(
            lambda: next((r for r in gateway.info("restoring")["runners"] if r["pid"]), None),
            what="the restored app's first runner",
        )
        os.kill(first["pid"], signal.SIGKILL)
        statuses = [gateway.wait_completed(client, h["status_url"], timeout=120) for h in handles]  # no key: public
        assert all("error" not in s for s in statuses), statuses
        assert [client.get(h["response_url"]).json()["words"] for h in handles] == [2] * 5
        info = gateway.info("restoring")
        assert info["status"] == "ready" and info["auth"] == "public"
        assert any(
            "exited unexpectedly" in e["message"] or "before it was ready" in e["message"] for e in info["events"]
        )


def test_a_crash_loop_backs_off_reports_and_recovers(gateway, capsys):
    """Observation 2: crash-looping, not failed: it says when it tries again and why it failed; a
    queued request waits for it, one with a start deadline ends with fal's error at that deadline."""
    gateway.deploy(FLAKY, "flaky", auth="public", min_concurrency=1, max_concurrency=1)
    with gateway.http(key=False) as client:
        os.kill(gateway.info("flaky")["runners"][0]["pid"], signal.SIGKILL)  # start 1 dies before serving
        info = wait_for(
            lambda: (i := gateway.info("flaky"))["status"] == "crash-looping" and i, timeout=60, what="crash-looping"
        )
        assert "out of memory while loading the model" in info["last_exit"]
        assert info["next_attempt"] > time.time()
        assert cli.main(["apps"]) == 0
        listed = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("flaky"))
        assert "crash-looping" in listed and "next attempt" in listed and "out of memory" in listed
        sync = client.post("/local/flaky", json={})
        assert sync.status_code == 503 and "crash-looping" in sync.json()["detail"]
        waiting = client.post("/queue/local/flaky", json={}).json()
        impatient = client.post("/queue/local/flaky", json={}, headers={wire.REQUEST_TIMEOUT: "0.5"}).json()
        ended = gateway.wait_completed(client, impatient["status_url"], timeout=10)
        assert ended["error_type"] == "request_timeout"
        status = gateway.wait_completed(client, waiting["status_url"], timeout=90)
        assert "error" not in status and client.get(waiting["response_url"]).json() == {"start": 4}
        assert gateway.info("flaky")["status"] == "ready"


def test_a_header_that_cannot_be_forwarded_is_refused_at_the_door_and_wedges_nothing(gateway):
    """Observation 3: 400 at the door, and the app keeps serving queued and sync calls."""
    gateway.deploy(echo(), "headers", auth="public", max_concurrency=1)
    with gateway.http(key=False) as client:
        for name, value in (("X-Fal-Foo", b"\xff\xfe"), ("User-Agent", "café".encode())):
            for _ in range(2):
                sync = client.post("/local/headers", json={"text": "a b"}, headers={name: value})
                assert sync.status_code == 400 and sync.json()["error_type"] == "bad_request"
                assert name.lower() in sync.json()["detail"].lower()
        queued = client.post("/queue/local/headers", json={"text": "a b"}, headers={"X-Fal-Foo": b"\xff\xfe"})
        assert queued.status_code == 400
        handles = [client.post("/queue/local/headers", json={"text": f"ok {i}"}).json() for i in range(4)]
        for handle in handles:
            assert "error" not in gateway.wait_completed(client, handle["status_url"], timeout=60)
        assert client.post("/local/headers", json={"text": "still fine"}, timeout=30).json()["words"] == 2


def test_a_hung_runner_is_found_by_its_health_check_and_its_request_retried(gateway):
    health = {"path": "/health", "method": "GET", "timeout_seconds": 1, "failure_threshold": 1}
    gateway.deploy(echo(), "hung", auth="public", startup_timeout=10, health_check=health)
    victim = gateway.info("hung")["runners"][0]
    with gateway.http(key=False) as client:
        handle = client.post("/queue/local/hung", json={"text": "wait for me", "delay": 1.0}).json()
        wait_for(lambda: client.get(handle["status_url"]).json()["status"] == "IN_PROGRESS", what="running")
        os.killpg(victim["pid"], signal.SIGSTOP)  # hung: alive, but answers nothing (its sandbox too)
        try:
            status = gateway.wait_completed(client, handle["status_url"], timeout=90)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(victim["pid"], signal.SIGKILL)
        assert "error" not in status, status
        assert client.get(handle["response_url"]).json()["runner"] != victim["id"]
    assert any("is unhealthy" in e["message"] for e in gateway.info("hung")["events"])


def test_after_a_restart_a_running_request_gets_the_apps_own_retry_budget(gateway):
    """A request running when the gateway died is retried only if the app's retry_config allows it."""
    gateway.deploy(echo(), "no-retries", auth="public", retry_config={"connection_error": {"retries": 0}})
    with gateway.http(key=False) as client:
        handle = client.post("/queue/local/no-retries", json={"text": "once only", "delay": 3.0}).json()
        wait_for(lambda: client.get(handle["status_url"]).json()["status"] == "IN_PROGRESS", what="running")
        kill_gateway()
        start_gateway()
        status = gateway.wait_completed(client, handle["status_url"], timeout=60)
        assert status["error_type"] == "runner_disconnected" and "cannot be retried" in status["error"]
        assert client.get(handle["response_url"]).status_code == 503
