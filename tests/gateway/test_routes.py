"""fal's protocol on the local gateway, against a real fal.App served by `fal run --local`."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time

import pytest
from gateway_apps import SECRET_SERVER, SERVER, echo

from fal_notebook.backends import deploy
from fal_notebook.backends.base import Deployment
from fal_notebook.backends.local import LocalBackend
from tests.gateway_helpers import TEST_MAX_BODY
from tests.polling import wait_for


@pytest.fixture(scope="module")
def app(gateway):
    """The Echo app: private (fal's default), one runner, so requests queue behind each other."""
    return gateway.deploy(echo(), "echo", max_concurrency=1)


@pytest.fixture(scope="module")
def public(gateway):
    return gateway.deploy(echo(), "echo-public", auth="public")


@pytest.fixture
def client(gateway):
    with gateway.http() as c:
        yield c


def test_deploy_returns_and_records_the_local_deployment(gateway, app):
    assert app.status == "ready"
    assert app.endpoint_id == "local/echo"
    assert app.url == f"http://127.0.0.1:{gateway.port}/local/echo"
    assert app.queue_url == f"http://127.0.0.1:{gateway.port}/queue/local/echo"
    assert app.path == str(gateway.apps_dir / "echo")
    assert Deployment.load("echo").url == app.url
    assert app.detail.auth == "private" and app.detail.env == "kernel"


def test_deploy_shows_its_progress(gateway):
    dep = gateway.deploy(echo(), "echo-progress", auth="public")
    text = "\n".join(gateway.progress)
    assert "Starting runner echo-progress-r1-1" in text
    assert "is ready on port" in text
    assert dep.url in text
    dep.stop()


def test_the_key_file_is_private_to_the_user(gateway):
    key_file = gateway.home / "gateway" / "key"
    key_id, _, secret = key_file.read_text().strip().partition(":")
    assert key_id and len(secret) >= 32
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600


def test_sync_call(client, app):
    response = client.post("/local/echo", json={"text": "the cat and the hat"})
    assert response.status_code == 200
    assert response.json()["words"] == 5
    assert response.headers["x-fal-request-id"]


def test_private_app_needs_the_key(gateway, app):
    with gateway.http(key=False) as anonymous:
        response = anonymous.post("/local/echo", json={"text": "a"})
        assert response.status_code == 401
        assert "Authorization: Key" in response.json()["detail"]
        wrong = anonymous.post("/local/echo", json={"text": "a"}, headers={"Authorization": "Key abc:def"})
        assert wrong.status_code == 401
        assert anonymous.post("/queue/local/echo", json={"text": "a"}).status_code == 401
        assert anonymous.get("/_fal_notebook/apps").status_code == 401


def test_public_app_needs_no_key(gateway, public):
    with gateway.http(key=False) as anonymous:
        response = anonymous.post("/local/echo-public", json={"text": "a b"})
    assert response.status_code == 200 and response.json()["words"] == 2


def test_unknown_app_and_path_are_404_in_fals_shape(client, app):
    unknown_app = client.post("/local/no-such-app", json={})
    assert unknown_app.status_code == 404
    assert "local/no-such-app" in unknown_app.json()["detail"]
    unknown_path = client.post("/local/echo/no-such-path", json={})
    assert unknown_path.status_code == 404
    assert unknown_path.json() == {"detail": "Path /no-such-path not found"}


def test_invalid_json_and_schema_violations_are_422(client, app):
    bad_json = client.post("/local/echo", content=b"{bad", headers={"content-type": "application/json"})
    assert bad_json.status_code == 422
    assert bad_json.json()["detail"][0]["type"] == "json_invalid"
    missing = client.post("/local/echo", json={"txt": "a"})
    assert missing.status_code == 422
    assert missing.json()["detail"][0]["loc"] == ["body", "text"]
    queued_bad_json = client.post("/queue/local/echo", content=b"{bad", headers={"content-type": "application/json"})
    assert queued_bad_json.status_code == 422
    assert queued_bad_json.json()["detail"][0]["type"] == "json_invalid"


def test_oversized_body_is_413(client, app):
    big = {"text": "x" * (TEST_MAX_BODY + 10)}
    assert client.post("/local/echo", json=big).status_code == 413
    response = client.post("/queue/local/echo", json=big)
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]


def test_queue_submit_status_logs_and_result(gateway, client, app):
    submitted = client.post("/queue/local/echo", json={"text": "one two three", "delay": 0.5})
    assert submitted.status_code == 200
    data = submitted.json()
    request_id = data["request_id"]
    base = f"http://127.0.0.1:{gateway.port}/queue/local/echo/requests/{request_id}"
    assert data["status_url"] == base + "/status"
    assert data["response_url"] == base
    assert data["cancel_url"] == base + "/cancel"

    seen = set()

    def completed() -> dict | None:
        response = client.get(data["status_url"], params={"logs": 1})
        body = response.json()
        seen.add(body["status"])
        assert response.status_code == (200 if body["status"] == "COMPLETED" else 202)
        return body if body["status"] == "COMPLETED" else None

    body = wait_for(completed, "the request to complete")
    assert "IN_PROGRESS" in seen
    messages = [entry["message"] for entry in body["logs"]]
    assert messages == ["counting 'one two three'", "done counting"]
    assert {entry["level"] for entry in body["logs"]} == {"STDOUT"}
    assert all(set(entry) >= {"timestamp", "message", "level", "source"} for entry in body["logs"])
    assert body["metrics"]["inference_time"] >= 0.5
    assert "error" not in body

    without_logs = client.get(data["status_url"]).json()
    assert without_logs["logs"] is None

    result = client.get(data["response_url"])
    assert result.status_code == 200
    assert result.json()["words"] == 3


def test_queue_position_while_waiting(gateway, client, app):
    first = client.post("/queue/local/echo/slow", json={"text": "a", "delay": 1.5}).json()
    second = client.post("/queue/local/echo", json={"text": "b"}).json()
    third = client.post("/queue/local/echo", json={"text": "c"}).json()
    wait_for(lambda: client.get(first["status_url"]).json()["status"] == "IN_PROGRESS", what="first running")
    assert client.get(second["status_url"]).json() == {
        "status": "IN_QUEUE",
        "request_id": second["request_id"],
        "queue_position": 0,
        "response_url": second["response_url"],
    }
    assert client.get(third["status_url"]).json()["queue_position"] == 1
    for handle in (first, second, third):
        assert gateway.wait_completed(client, handle["status_url"])["status"] == "COMPLETED"


def test_request_that_cannot_start_in_time_ends_with_504(gateway, client, app):
    busy = client.post("/queue/local/echo/slow", json={"text": "a", "delay": 2}).json()
    late = client.post("/queue/local/echo", json={"text": "b"}, headers={"X-Fal-Request-Timeout": "0.5"}).json()
    status = gateway.wait_completed(client, late["status_url"])
    assert status["error_type"] == "request_timeout"
    assert client.get(late["response_url"]).status_code == 504
    gateway.wait_completed(client, busy["status_url"])


def test_failed_request_completes_with_the_apps_error(gateway, client, app):
    data = client.post("/queue/local/echo", json={"txt": "wrong field"}).json()
    status = gateway.wait_completed(client, data["status_url"])
    assert "text" in status["error"]
    result = client.get(data["response_url"])
    assert result.status_code == 422
    assert result.json()["detail"][0]["loc"] == ["body", "text"]


def test_result_before_completion_is_refused(client, app, gateway):
    data = client.post("/queue/local/echo", json={"text": "a", "delay": 1.0}).json()
    response = client.get(data["response_url"])
    assert response.status_code == 400
    gateway.wait_completed(client, data["status_url"])


def test_status_stream_sends_events_until_completed(client, app):
    data = client.post("/queue/local/echo", json={"text": "x y", "delay": 0.3}).json()
    events = []
    with client.stream("GET", data["status_url"] + "/stream", params={"logs": 1}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[len("data: ") :]))
    assert events[-1]["status"] == "COMPLETED"
    assert any(e["status"] == "IN_PROGRESS" for e in events)
    # each event carries the entries added since the one before (fal's clients add them up)
    assert [entry["message"] for e in events for entry in e["logs"] or []] == ["counting 'x y'", "done counting"]


def test_query_parameters_reach_the_app_sync_and_queued(gateway, client, app):
    """Scalar endpoint parameters are query parameters; the queue keeps them (but not fal_webhook)."""
    assert client.post("/local/echo/repeat?word=hi&times=2").json() == {"words": ["hi", "hi"]}
    data = client.post(
        "/queue/local/echo/repeat", params={"word": "yo", "times": 3, "fal_webhook": "http://127.0.0.1:9/hook"}
    ).json()
    gateway.wait_completed(client, data["status_url"])
    assert client.get(data["response_url"]).json() == {"words": ["yo", "yo", "yo"]}


def test_cancel_a_queued_request(gateway, client, app):
    busy = client.post("/queue/local/echo/slow", json={"text": "a", "delay": 1.5}).json()
    waiting = client.post("/queue/local/echo", json={"text": "never runs"}).json()
    response = client.put(waiting["cancel_url"])
    assert response.status_code == 202
    assert response.json() == {"status": "CANCELLATION_REQUESTED"}
    status = client.get(waiting["status_url"]).json()
    assert status["status"] == "COMPLETED" and status["error_type"] == "client_cancelled"
    assert client.get(waiting["response_url"]).status_code == 499
    gateway.wait_completed(client, busy["status_url"])
    assert client.put(waiting["cancel_url"]).json() == {"status": "ALREADY_COMPLETED"}


def test_cancel_an_in_progress_request_is_forwarded_to_the_app(gateway, client, app):
    data = client.post("/queue/local/echo/slow", json={"text": "a", "delay": 30}).json()

    def started() -> bool:  # IN_PROGRESS means handed to the runner; the app logs when its task runs
        logs = client.get(data["status_url"], params={"logs": 1}).json().get("logs") or []
        return "slow work started" in [entry["message"] for entry in logs]

    wait_for(started, what="the app to start the work")
    started = time.monotonic()
    assert client.put(data["cancel_url"]).status_code == 202
    status = gateway.wait_completed(client, data["status_url"], timeout=10)
    assert time.monotonic() - started < 10
    assert status["error_type"] == "client_cancelled"
    assert "cancelled by the caller" in [entry["message"] for entry in status["logs"]]
    assert client.get(data["response_url"]).status_code == 499


def test_cancel_unknown_request(client, app):
    response = client.put("/queue/local/echo/requests/00000000-0000-0000-0000-000000000000/cancel")
    assert response.status_code == 404
    assert response.json() == {"status": "NOT_FOUND"}
    assert client.get("/queue/local/echo/requests/nope/status").status_code == 404


def test_stream_endpoint_relays_server_sent_events(client, app):
    with client.stream("POST", "/local/echo/stream", json={"text": "red green blue"}) as response:
        assert response.status_code == 200
        events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]
    assert events == [{"word": "red"}, {"word": "green"}, {"word": "blue"}]


def test_openapi_is_the_apps_own_document(client, app):
    response = client.get("/local/echo/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert {"/", "/slow", "/stream"} <= set(document["paths"])
    assert "Words" in document["components"]["schemas"]


def test_redeploy_unchanged_is_idempotent(gateway, app, client):
    runner = client.post("/local/echo", json={"text": "a"}).json()["runner"]
    again = gateway.deploy(echo(), "echo", max_concurrency=1)
    assert again.detail.revision == app.detail.revision
    assert client.post("/local/echo", json={"text": "a"}).json()["runner"] == runner
    assert len(gateway.info("echo")["runners"]) == 1


def test_server_mode_app(gateway, client):
    dep = gateway.deploy(SERVER, "items", mode="server", auth="public")
    assert dep.status == "ready"
    response = client.post("/local/items", json={"name": "lamp"})
    assert response.status_code == 200 and response.json()["created"] == "lamp"
    assert client.post("/local/items", json={"nom": "lamp"}).status_code == 422
    data = client.post("/queue/local/items", json={"name": "chair"}).json()
    status = gateway.wait_completed(client, data["status_url"])
    assert [entry["message"] for entry in status["logs"]] == ["creating chair"]
    assert client.get(data["response_url"]).json()["created"] == "chair"
    assert "/" in client.get("/local/items/openapi.json").json()["paths"]


def test_logs_and_stop(gateway, client):
    dep = gateway.deploy(echo(), "echo-logs", auth="public")
    client.post("/local/echo-logs", json={"text": "written to the log"})
    lines = dep.logs()
    assert any("counting 'written to the log'" in line for line in lines)
    assert any("[gateway] Revision 1 is serving" in line for line in lines)
    follow = dep.logs(follow=True)
    assert any("Revision 1 is serving" in line for line in follow)
    client.post("/local/echo-logs", json={"text": "followed later"})
    assert any("counting 'followed later'" in line for line in follow)
    follow.close()
    dep.stop()
    assert Deployment.load("echo-logs").status == "stopped"
    assert client.post("/local/echo-logs", json={"text": "a"}).status_code == 404
    assert LocalBackend().refresh(dep).status == "stopped"
    assert gateway.info("echo-logs")["runners"] == []


def test_secrets_reach_the_runners_and_stay_out_of_logs(gateway, client, monkeypatch):
    value = "s3cr3t-value-for-the-gateway-test"
    monkeypatch.setenv("MY_SERVICE_TOKEN", value)
    dep = gateway.deploy(SECRET_SERVER, "secretive", mode="server", auth="public", secrets=["MY_SERVICE_TOKEN"])
    data = client.post("/queue/local/secretive", json={}).json()
    status = gateway.wait_completed(client, data["status_url"])
    assert client.get(data["response_url"]).json() == {"length": len(value)}
    assert [entry["message"] for entry in status["logs"]] == ["the token is ***"]
    assert not any(value in line for line in dep.logs())
    state = gateway.home / "gateway"
    for stored in [*state.glob("gateway.sqlite3*"), *(state / "logs").iterdir()]:
        assert value.encode() not in stored.read_bytes(), stored


HALVES = """
echo "key id ${FAL_KEY%%:*} and secret ${FAL_KEY#*:}"
exec python -m http.server "$PORT" --bind 127.0.0.1
"""


def test_the_fal_keys_halves_stay_out_of_the_logs(gateway, monkeypatch, tmp_path):
    """The gateway started without FAL_KEY; the app is deployed with it set (runners get the user's
    key), and prints each half: the app's log, `fal-notebook logs` and the panel's route show ***."""
    from fal_notebook.server.handlers import app_logs

    key_id, key_secret = "halves-id-0123456789", "halves-secret-abcdefghij"
    (tmp_path / "halves.sh").write_text(HALVES)
    monkeypatch.setenv("FAL_KEY", f"{key_id}:{key_secret}")
    gateway.deploy("", "halves", mode="server", auth="public", cmd=f"sh {tmp_path / 'halves.sh'}", port=8000)
    cli = subprocess.run(
        [sys.executable, "-m", "fal_notebook.cli", "logs", "halves"], capture_output=True, text=True, check=True
    )
    shown = {"app log": gateway.app_log("halves"), "cli": cli.stdout, "panel": "\n".join(app_logs("halves")["lines"])}
    for where, text in shown.items():
        assert "key id *** and secret ***" in text, where
        assert key_id not in text and key_secret not in text, where


def test_deploy_by_name_through_the_backends_api(gateway, app):
    again = deploy("echo", target="local", progress=lambda line: None, env="kernel")
    assert again.url == app.url and again.detail.revision == app.detail.revision
