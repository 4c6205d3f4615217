"""Runners as real processes: scaling, keep-alive, timeouts, dying runners, redeploys, crash loops."""

from __future__ import annotations

import os
import signal
import time

import pytest
from gateway_apps import BROKEN, CRASHING, echo

from fal_notebook.backends.base import Deployment
from fal_notebook.errors import DeployError
from tests.gateway_helpers import free_port
from tests.polling import wait_for


@pytest.fixture
def client(gateway):
    with gateway.http() as c:
        yield c


def live_runners(gateway, name):
    return [r for r in gateway.info(name)["runners"] if r["state"] in ("starting", "ready")]


def events(gateway, name, text):
    """The app's deploy and scaling events that contain ``text``."""
    return [e["message"] for e in gateway.info(name)["events"] if text in e["message"]]


def test_scales_up_to_max_concurrency_and_down_after_keep_alive(gateway, client):
    gateway.deploy(echo(), "scaled", auth="public", max_concurrency=3, keep_alive=2)
    handles = [client.post("/queue/local/scaled", json={"text": f"w{i}", "delay": 2.0}).json() for i in range(6)]
    peak = wait_for(lambda: len(live_runners(gateway, "scaled")) == 3 or None, what="3 runners")
    assert peak
    results = [gateway.wait_completed(client, h["status_url"]) for h in handles]
    assert all(r["status"] == "COMPLETED" and "error" not in r for r in results)
    assert len(events(gateway, "scaled", "Starting runner")) == 3  # never above max_concurrency
    runners = {client.get(h["response_url"]).json()["runner"] for h in handles}
    assert len(runners) == 3
    wait_for(lambda: gateway.info("scaled")["runners"] == [], timeout=15, what="scale down to zero")
    assert any("idle for keep_alive=2 s" in e["message"] for e in gateway.info("scaled")["events"])
    # scaled to zero: the next call starts a runner again (a cold start)
    assert client.post("/local/scaled", json={"text": "cold start"}).json()["words"] == 2


def test_min_concurrency_keeps_runners_warm(gateway, client):
    gateway.deploy(echo(), "warm", auth="public", min_concurrency=2, max_concurrency=3, keep_alive=1)

    def ready() -> int:
        return len([r for r in gateway.info("warm")["runners"] if r["state"] == "ready"])

    wait_for(lambda: ready() == 2, what="two warm runners")
    handles = [client.post("/queue/local/warm", json={"text": f"w{i}", "delay": 3}).json() for i in range(3)]
    wait_for(lambda: len(events(gateway, "warm", "is ready on port")) == 3, what="a third runner")
    for handle in handles:
        gateway.wait_completed(client, handle["status_url"])
    # Once idle past keep_alive, the runners above min_concurrency go, and only they.
    wait_for(lambda: events(gateway, "warm", "idle for keep_alive"), what="the idle runner stopped")
    assert len(events(gateway, "warm", "idle for keep_alive")) == 1 and ready() == 2
    Deployment.load("warm").stop()


def test_max_multiplexing_runs_requests_side_by_side_on_one_runner(gateway, client):
    gateway.deploy(echo(), "multiplexed", auth="public", max_multiplexing=3, max_concurrency=1)
    handles = [client.post("/queue/local/multiplexed/slow", json={"text": "a", "delay": 3}).json() for _ in range(3)]

    def all_running() -> bool:
        return all(client.get(h["status_url"]).json()["status"] == "IN_PROGRESS" for h in handles)

    wait_for(all_running, what="three requests in progress at once")
    assert len(gateway.info("multiplexed")["runners"]) == 1
    for handle in handles:
        gateway.wait_completed(client, handle["status_url"])
    assert len({client.get(h["response_url"]).json()["runner"] for h in handles}) == 1


def test_runner_killed_mid_request_is_replaced_and_the_request_retried(gateway, client):
    gateway.deploy(echo(), "killed", auth="public")
    victim = gateway.info("killed")["runners"][0]
    data = client.post("/queue/local/killed", json={"text": "survive this", "delay": 2.0}).json()
    wait_for(lambda: client.get(data["status_url"]).json()["status"] == "IN_PROGRESS", what="running")
    os.kill(victim["pid"], signal.SIGKILL)
    status = gateway.wait_completed(client, data["status_url"], timeout=60)
    assert "error" not in status
    result = client.get(data["response_url"]).json()
    assert result["words"] == 2 and result["runner"] != victim["id"]
    assert any("retrying" in entry["message"] for entry in status["logs"])


def test_request_timeout_is_enforced(gateway, client):
    gateway.deploy(echo(), "timed", auth="public", request_timeout=1, skip_retry_conditions=["timeout"])
    started = time.monotonic()
    data = client.post("/queue/local/timed", json={"text": "too slow", "delay": 30}).json()
    status = gateway.wait_completed(client, data["status_url"])
    assert time.monotonic() - started < 15
    assert status["error_type"] == "request_timeout"
    assert client.get(data["response_url"]).status_code == 504
    sync = client.post("/local/timed", json={"text": "too slow", "delay": 30})
    assert sync.status_code == 504 and sync.json()["error_type"] == "request_timeout"
    # the stuck runner was replaced: the app still answers
    assert client.post("/local/timed", json={"text": "quick"}).json()["words"] == 1


def test_redeploy_replaces_runners_without_dropping_accepted_requests(gateway, client):
    gateway.deploy(echo(version=1), "rolling", auth="public")
    old_runner = gateway.info("rolling")["runners"][0]["id"]
    handles = [client.post("/queue/local/rolling", json={"text": f"r{i}", "delay": 0.5}).json() for i in range(4)]
    dep = gateway.deploy(echo(version=2), "rolling", auth="public")
    assert dep.detail.revision == 2
    versions = []
    for handle in handles:
        status = gateway.wait_completed(client, handle["status_url"])
        assert "error" not in status, status
        versions.append(client.get(handle["response_url"]).json()["version"])
    assert set(versions) <= {1, 2}
    after = client.post("/local/rolling", json={"text": "after"}).json()
    assert after["version"] == 2 and after["runner"] != old_runner
    wait_for(lambda: all(r["revision"] == 2 for r in gateway.info("rolling")["runners"]), what="old runner gone")


def test_runner_that_never_becomes_ready_fails_the_deploy_with_its_logs(gateway):
    with pytest.raises(DeployError) as info:
        gateway.deploy(BROKEN, "broken", auth="public")
    message = str(info.value)
    assert "RuntimeError: the weights are missing" in message
    assert "exited with code" in message
    assert gateway.info("broken")["status"] == "failed"


def test_startup_timeout_bounds_readiness(gateway):
    slow_setup = echo().replace("        self.tasks = {}", "        self.tasks = {}\n        time.sleep(30)")
    started = time.monotonic()
    with pytest.raises(DeployError) as info:
        gateway.deploy(slow_setup, "slow-setup", auth="public", startup_timeout=3)
    assert time.monotonic() - started < 20
    assert "startup_timeout=3" in str(info.value)


def test_crash_loop_is_reported_and_backs_off_but_never_gives_up(gateway, client):
    gateway.deploy(CRASHING, "crashing", auth="public", min_concurrency=1)
    info = wait_for(
        lambda: (i := gateway.info("crashing"))["status"] == "crash-looping" and i,
        timeout=60,
        what="crash loop detected",
    )
    assert "exited with code 3" in info["last_exit"] and info["next_attempt"] > time.time()
    crash_loop = next(
        e["message"] for e in info["events"] if e["message"].startswith("Crash loop: 3 failures in a row")
    )
    assert "loading the model" in crash_loop  # with the runner's output
    response = client.post("/local/crashing", json={})
    assert response.status_code in (200, 503)  # refused while no runner is up, served in its short life
    if response.status_code == 503:
        assert "crash-looping" in response.json()["detail"]
    handle = client.post("/queue/local/crashing", json={})
    assert handle.status_code == 200  # queued: it waits for the app to come back, within its deadlines

    def starts() -> int:
        return sum(e["message"].startswith("Starting runner") for e in gateway.info("crashing")["events"])

    seen = starts()
    wait_for(lambda: starts() > seen, timeout=60, what="another attempt after the back-off")
    gateway.wait_completed(client, handle.json()["status_url"], timeout=60)
    Deployment.load("crashing").stop()


def test_hard_coded_port_command_is_limited_to_one_runner(gateway, client):
    port = free_port()
    cmd = f"python -m http.server {port} --bind 127.0.0.1"
    dep = gateway.deploy("", "static", mode="server", cmd=cmd, port=port, auth="public", max_concurrency=3)
    assert any("limited to one" in note for note in dep.detail.notes)
    assert client.get("/local/static/").status_code == 200
    # a redeploy hands the fixed port over: the old runner goes first, then the new one starts
    again = gateway.deploy("", "static", mode="server", cmd=cmd + " --directory .", port=port, auth="public")
    assert again.status == "ready" and again.detail.revision == 2
    assert client.get("/local/static/").status_code == 200
    assert [r["revision"] for r in gateway.info("static")["runners"]] == [2]


def test_port_variable_command_runs_several_runners(gateway, client):
    cmd = "python -m http.server ${PORT} --bind 127.0.0.1"
    gateway.deploy("", "static-many", mode="server", cmd=cmd, auth="public", min_concurrency=2, max_concurrency=2)
    wait_for(lambda: len(live_runners(gateway, "static-many")) == 2, what="two runners")
    ports = {r["port"] for r in gateway.info("static-many")["runners"]}
    assert len(ports) == 2
    assert client.get("/local/static-many/").status_code == 200


def test_request_that_kills_its_runner_ends_with_an_error_after_its_retries(gateway, client):
    gateway.deploy(echo(), "fatal", auth="public", retry_config={"connection_error": {"retries": 1}})
    data = client.post("/queue/local/fatal/crash", json={}).json()
    status = gateway.wait_completed(client, data["status_url"], timeout=60)
    assert status["error_type"] == "runner_disconnected"
    logs = [entry["message"] for entry in status["logs"]]
    assert logs.count("this request kills its runner") == 2
    assert sum("retrying" in message for message in logs) == 1
    assert client.get(data["response_url"]).status_code == 503
    assert client.post("/local/fatal", json={"text": "still serving"}).json()["words"] == 2
