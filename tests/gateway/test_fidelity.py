"""The local gateway behaves like fal where production code depends on it (docs/fal-conformance.md):
each test is a row of that table, against the real gateway and a real fal.App served by
``fal run --local``."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest
from gateway_apps import FIDELITY, echo

from tests.gateway_helpers import messages


@pytest.fixture(scope="module")
def app(gateway):
    """The Fidelity app: private, one runner, so that requests queue behind each other."""
    return gateway.deploy(FIDELITY, "fidelity", max_concurrency=1)


@pytest.fixture
def client(gateway):
    with gateway.http() as c:
        yield c


def app_log(gateway, name: str) -> str:
    return (gateway.home / "gateway" / "logs" / f"{name}.log").read_text()


def busy(client, seconds: float) -> dict:
    """Occupy the app's one runner for ``seconds`` (returns the submit answer once it runs)."""
    held = client.post("/queue/local/fidelity", json={"delay": seconds}).json()
    deadline = time.monotonic() + 30
    while client.get(held["status_url"]).json()["status"] == "IN_QUEUE":
        assert time.monotonic() < deadline, "the holding request never started"
        time.sleep(0.05)
    return held


# -- status and results ---------------------------------------------------------------------------
def test_submit_answer_and_status_bodies_carry_the_request_ids(gateway, client, app):
    submitted = client.post("/queue/local/fidelity", json={}).json()
    assert submitted["gateway_request_id"] == submitted["request_id"]
    done = gateway.wait_completed(client, submitted["status_url"])
    assert done["request_id"] == submitted["request_id"]
    assert client.get(submitted["status_url"]).json()["request_id"] == submitted["request_id"]


def test_the_result_is_also_at_its_response_url(gateway, client, app):
    submitted = client.post("/queue/local/fidelity", json={}).json()
    gateway.wait_completed(client, submitted["status_url"])
    at_request = client.get(submitted["response_url"])
    at_response = client.get(submitted["response_url"] + "/response")
    assert at_response.status_code == 200 and at_response.json() == at_request.json()
    assert at_response.json()["attempt"] == 1


def test_status_stream_sends_keep_alive_comments_and_each_log_entry_once(client, app):
    submitted = client.post("/queue/local/fidelity", json={"delay": 2.5}).json()
    comments, entries = 0, []
    with client.stream("GET", submitted["status_url"] + "/stream", params={"logs": 1}) as response:
        for line in response.iter_lines():
            if line.startswith(":"):
                comments += 1
            elif line.startswith("data: "):
                event = json.loads(line[len("data: ") :])
                entries += messages(event["logs"] or [])
    assert comments >= 1
    assert len([m for m in entries if m.startswith("attempt 1 on")]) == 1, entries


# -- timeouts and limits --------------------------------------------------------------------------
def test_max_queue_length_answers_429_and_never_reaches_the_app(gateway, client, app):
    held = busy(client, 2.0)
    queued = client.post("/queue/local/fidelity/headers?fal_max_queue_length=5&x=1", json={})
    assert queued.status_code == 200
    refused = client.post("/queue/local/fidelity/headers?fal_max_queue_length=1", json={})
    assert refused.status_code == 429 and "fal_max_queue_length=1" in refused.json()["detail"]
    bad = client.post("/queue/local/fidelity?fal_max_queue_length=many", json={})
    assert bad.status_code == 400 and bad.json()["error_type"] == "bad_request"
    seen = gateway.wait_completed(client, queued.json()["status_url"])
    assert seen["status"] == "COMPLETED"
    assert client.get(queued.json()["response_url"]).json()["query"] == "x=1"
    gateway.wait_completed(client, held["status_url"])


def test_a_queued_request_past_its_start_deadline_is_504_with_the_timeout_type(gateway, client, app):
    held = busy(client, 2.0)
    late = client.post("/queue/local/fidelity", json={}, headers={"X-Fal-Request-Timeout": "0.5"}).json()
    status = gateway.wait_completed(client, late["status_url"])
    assert status["error_type"] == "request_timeout"
    result = client.get(late["response_url"])
    assert result.status_code == 504
    assert result.headers["x-fal-request-timeout-type"] == "user"
    assert result.headers["x-fal-error-type"] == "request_timeout"
    gateway.wait_completed(client, held["status_url"])


# -- headers the app sees -------------------------------------------------------------------------
PLATFORM = {
    "X-Fal-No-Retry": "1",
    "X-Fal-Store-IO": "0",
    "X-Fal-Runner-Hint": "nobody",
    "X-Fal-Queue-Priority": "normal",
    "X-Fal-Retry-Config": '{"timeout": {"retries": 0}}',
    "x-fal-caller-user-id": "spoofed",
}


def test_the_app_sees_the_callers_headers_and_fals_identity_headers_only(gateway, client, app):
    sync = client.post("/local/fidelity/headers", json={}, headers={"X-Trace": "t-1", **PLATFORM})
    assert sync.status_code == 200
    submitted = client.post("/queue/local/fidelity/headers", json={}, headers={"X-Trace": "t-2", **PLATFORM}).json()
    gateway.wait_completed(client, submitted["status_url"])
    queued = client.get(submitted["response_url"]).json()
    key_id = gateway.key.partition(":")[0]
    for seen, trace in ((sync.json()["headers"], "t-1"), (queued["headers"], "t-2")):
        assert seen["x-trace"] == trace
        assert seen["x-fal-endpoint"] == "local/fidelity/headers"
        assert seen["x-fal-caller-user-id"] == key_id
        assert seen["x-fal-request-id"]
        platform = {name for name in seen if name.startswith("x-fal-")}
        assert platform == {"x-fal-request-id", "x-fal-endpoint", "x-fal-caller-user-id"}
        assert "authorization" not in seen and gateway.key not in json.dumps(seen)
    assert queued["headers"]["x-fal-request-id"] == submitted["request_id"]


# -- a sync or stream caller that disconnects cancels its request ----------------------------------
@pytest.fixture(scope="module")
def slow(gateway):
    return gateway.deploy(echo(), "echo-gone", auth="public", max_concurrency=1)


def test_a_sync_caller_that_disconnects_cancels_its_request(gateway, slow):
    def call() -> None:
        with httpx.Client(base_url=gateway.base, timeout=httpx.Timeout(30, read=1.5)) as caller:
            try:
                caller.post("/local/echo-gone/slow", json={"text": "x", "delay": 30})
            except httpx.ReadTimeout:
                pass  # the caller gives up and closes its connection

    thread = threading.Thread(target=call)
    thread.start()
    thread.join(30)
    gateway.wait_for(lambda: "cancelled by the caller" in app_log(gateway, "echo-gone"), what="the app to cancel")
    log = app_log(gateway, "echo-gone")
    assert "disconnected: cancelling it" in log
    with gateway.http() as client:  # the runner is free again at once, not after 30 s
        started = time.monotonic()
        assert client.post("/local/echo-gone", json={"text": "a b"}).json()["words"] == 2
        assert time.monotonic() - started < 20


def test_a_stream_caller_that_disconnects_cancels_its_request(gateway, client, app, tmp_path):
    gate = tmp_path / "never"
    with client.stream("POST", "/local/fidelity/hold-stream", json={"path": str(gate)}) as response:
        assert response.status_code == 200
        next(response.iter_lines())  # the first event: the app is streaming
    gateway.wait_for(lambda: "stream cancelled" in app_log(gateway, "fidelity"), what="the app to cancel its stream")
    assert "disconnected: cancelling it" in app_log(gateway, "fidelity")
