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
from test_conformance import fal_env, run_fal_client  # noqa: F401  (the module's fal_env fixture)

from tests.gateway_helpers import messages
from tests.polling import wait_for


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
    wait_for(lambda: client.get(held["status_url"]).json()["status"] != "IN_QUEUE", "the holding request to start")
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
    wait_for(lambda: "cancelled by the caller" in app_log(gateway, "echo-gone"), what="the app to cancel")
    log = app_log(gateway, "echo-gone")
    assert "disconnected: cancelling it" in log
    with gateway.http() as client:  # the runner is free again at once, not after 30 s
        started = time.monotonic()
        assert client.post("/local/echo-gone", json={"text": "a b"}).json()["words"] == 2
        assert time.monotonic() - started < 20


def test_a_sync_caller_that_leaves_while_waiting_for_a_runner_takes_no_slot(gateway, slow):
    busy = threading.Thread(
        target=lambda: httpx.post(f"{gateway.base}/local/echo-gone/slow", json={"text": "x", "delay": 3}, timeout=30)
    )
    cancelled = app_log(gateway, "echo-gone").count("disconnected: cancelling it")
    busy.start()  # holds the app's only runner for 3 s
    wait_for(lambda: gateway.info("echo-gone")["runners"][0]["in_flight"] == 1, what="the runner to be busy")
    impatient = httpx.Timeout(30, read=0.5)
    with pytest.raises(httpx.ReadTimeout):  # gives up while it waits for the runner, and closes its connection
        httpx.post(f"{gateway.base}/local/echo-gone", json={"text": "left waiting"}, timeout=impatient)
    busy.join(30)
    with gateway.http() as client:
        assert client.post("/local/echo-gone", json={"text": "a b"}).json()["words"] == 2
    assert gateway.info("echo-gone")["runners"][0]["in_flight"] == 0
    log = app_log(gateway, "echo-gone")  # it never took the runner: nothing sent, nothing to cancel
    assert "counting 'left waiting'" not in log and log.count("disconnected: cancelling it") == cancelled


def test_a_stream_caller_that_disconnects_cancels_its_request(gateway, client, app, tmp_path):
    gate = tmp_path / "never"
    with client.stream("POST", "/local/fidelity/hold-stream", json={"path": str(gate)}) as response:
        assert response.status_code == 200
        next(response.iter_lines())  # the first event: the app is streaming
    wait_for(lambda: "stream cancelled" in app_log(gateway, "fidelity"), what="the app to cancel its stream")
    assert "disconnected: cancelling it" in app_log(gateway, "fidelity")


# -- retries as fal does them ---------------------------------------------------------------------
KEEP = {"x-fal-stop-runner": "false"}  # a 503 that keeps its runner: retries without a new runner each time


def run_queued(gateway, client, body: dict, headers: dict | None = None) -> tuple[dict, httpx.Response]:
    submitted = client.post("/queue/local/fidelity", json=body, headers=headers or {}).json()
    status = gateway.wait_completed(client, submitted["status_url"])
    return status, client.get(submitted["response_url"])


def attempts_made(counter) -> int:
    return int(counter.read_text())


def test_a_503_is_retried_with_backoff_until_it_succeeds(gateway, client, app, tmp_path):
    counter = tmp_path / "n"
    status, result = run_queued(
        gateway, client, {"status": 503, "headers": KEEP, "failures": 2, "counter": str(counter)}
    )
    assert result.status_code == 200 and result.json()["attempt"] == 3 and attempts_made(counter) == 3
    logs = messages(status["logs"])
    assert any("Attempt 1 failed" in m and "server_error: retrying in 0.1 s" in m for m in logs), logs
    assert any("Attempt 2 failed" in m and "server_error: retrying in 0.2 s" in m for m in logs), logs


def test_an_apps_503_with_no_retry_runs_once_and_replaces_its_runner(gateway, client, app, tmp_path):
    counter = tmp_path / "n"
    status, result = run_queued(
        gateway, client, {"status": 503, "failures": 5, "counter": str(counter)}, {"X-Fal-No-Retry": "1"}
    )
    assert result.status_code == 503 and attempts_made(counter) == 1
    assert any("not retried: the caller sent X-Fal-No-Retry" in m for m in messages(status["logs"]))
    assert "answered 503: it is replaced" in app_log(gateway, "fidelity")


def test_the_apps_needs_retry_header_forces_or_prevents_a_retry(gateway, client, app, tmp_path):
    forced, plain = tmp_path / "forced", tmp_path / "plain"
    needs = {"X-Fal-Needs-Retry": "1"}
    _, result = run_queued(gateway, client, {"status": 500, "headers": needs, "failures": 1, "counter": str(forced)})
    assert result.status_code == 200 and attempts_made(forced) == 2
    assert "x-fal-needs-retry" not in {name.lower() for name in result.headers}
    _, result = run_queued(gateway, client, {"status": 500, "failures": 1, "counter": str(plain)})
    assert result.status_code == 500 and attempts_made(plain) == 1  # a 500 is not retried
    prevented = tmp_path / "prevented"
    no = {"X-Fal-Needs-Retry": "0", **KEEP}
    _, result = run_queued(gateway, client, {"status": 503, "headers": no, "failures": 1, "counter": str(prevented)})
    assert result.status_code == 503 and attempts_made(prevented) == 1


def test_an_apps_504_is_a_server_error_for_the_retry_budgets(gateway, client, app, tmp_path):
    no_server_errors = {"X-Fal-Retry-Config": '{"server_error": {"retries": 0}}'}
    no_timeouts = {"X-Fal-Retry-Config": '{"timeout": {"retries": 0}}'}
    once, twice = tmp_path / "once", tmp_path / "twice"
    _, result = run_queued(gateway, client, {"status": 504, "failures": 1, "counter": str(once)}, no_server_errors)
    assert result.status_code == 504 and attempts_made(once) == 1
    _, result = run_queued(gateway, client, {"status": 504, "failures": 1, "counter": str(twice)}, no_timeouts)
    assert result.status_code == 200 and attempts_made(twice) == 2


def test_the_start_deadline_is_kept_across_attempts(gateway, client, app, tmp_path):
    counter = tmp_path / "n"
    body = {"status": 503, "headers": KEEP, "failures": 20, "counter": str(counter), "delay": 0.3}
    status, result = run_queued(gateway, client, body, {"X-Fal-Request-Timeout": "1"})
    assert result.status_code in (503, 504) and 1 < attempts_made(counter) < 6
    assert any("not retried" in m or "did not start" in m for m in messages(status["logs"])) or (
        result.status_code == 504 and result.headers["x-fal-request-timeout-type"] == "user"
    )


def test_sync_calls_are_never_retried(client, app, tmp_path):
    counter = tmp_path / "n"
    answer = client.post(
        "/local/fidelity", json={"status": 503, "headers": KEEP, "failures": 1, "counter": str(counter)}
    )
    assert answer.status_code == 503 and attempts_made(counter) == 1
    assert "x-fal-stop-runner" not in {name.lower() for name in answer.headers}


def test_the_apps_stop_runner_header_replaces_the_runner_whatever_the_status(gateway, client, app):
    first = client.post("/local/fidelity", json={"status": 200})
    stopped = client.post("/local/fidelity", json={"status": 500, "headers": {"x-fal-stop-runner": "true"}})
    assert stopped.status_code == 500
    assert "answered 500 with x-fal-stop-runner: it is replaced" in app_log(gateway, "fidelity")
    after = client.post("/local/fidelity", json={"status": 200})
    assert after.json()["runner"] != first.json()["runner"]


@pytest.fixture(scope="module")
def skipping(gateway):
    return gateway.deploy(FIDELITY, "fidelity-skip", skip_retry_conditions=["server_error"], max_concurrency=1)


def test_skip_retry_conditions_skips_the_apps_503(gateway, client, skipping, tmp_path):
    counter = tmp_path / "n"
    submitted = client.post(
        "/queue/local/fidelity-skip", json={"status": 503, "headers": KEEP, "failures": 1, "counter": str(counter)}
    ).json()
    status = gateway.wait_completed(client, submitted["status_url"])
    assert client.get(submitted["response_url"]).status_code == 503 and attempts_made(counter) == 1
    assert any("skip_retry_conditions" in m for m in messages(status["logs"]))


# -- X-Fal-Runner-Hint ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hinted(gateway):
    return gateway.deploy(FIDELITY, "hinted", min_concurrency=2, max_concurrency=2)


def test_runner_hints_route_requests_to_the_runner_that_gave_them(gateway, client, hinted):
    def call(delay: float = 0.0, hint: str | None = None) -> str:
        headers = {"X-Fal-Runner-Hint": hint} if hint else {}
        return client.post("/local/hinted", json={"delay": delay}, headers=headers).json()["runner"]

    wait_for(lambda: len(gateway.info("hinted")["runners"]) == 2, what="two runners")
    wait_for(lambda: all(r["state"] == "ready" for r in gateway.info("hinted")["runners"]), what="two ready runners")
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(call(delay=1.0))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(set(results)) == 2  # both runners answered once: the gateway knows their hints
    wanted = max(results)
    assert {call(hint=f"runner-{wanted}") for _ in range(4)} == {wanted}
    submitted = client.post("/queue/local/hinted", json={}, headers={"X-Fal-Runner-Hint": f"runner-{wanted}"}).json()
    gateway.wait_completed(client, submitted["status_url"])
    assert client.get(submitted["response_url"]).json()["runner"] == wanted
    assert call(hint="runner-none") in set(results)  # an unknown hint: any runner


RETRIES = """
import json

import fal_client

keep = {"x-fal-stop-runner": "false"}
failing = {"status": 503, "headers": keep, "failures": 2}
out = {"retried": fal_client.subscribe("local/fidelity", {**failing, "counter": "{retried}"})}
try:
    fal_client.subscribe("local/fidelity", {**failing, "counter": "{once}"}, headers={"X-Fal-No-Retry": "1"})
except fal_client.FalClientHTTPError as exc:
    out["no_retry"] = exc.status_code
print(json.dumps(out))
"""


def test_fal_clients_queue_calls_are_retried_as_on_fal(gateway, app, fal_env, tmp_path):  # noqa: F811
    retried, once = tmp_path / "retried", tmp_path / "once"
    script = RETRIES.replace("{retried}", str(retried)).replace("{once}", str(once))
    out = run_fal_client(script, fal_env, tmp_path)
    assert out["retried"]["attempt"] == 3 and attempts_made(retried) == 3
    assert out["no_retry"] == 503 and attempts_made(once) == 1
