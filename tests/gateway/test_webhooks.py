"""Webhooks as fal delivers them: payload, signature (checked against the gateway's JWKS the way a
receiver checks fal's), retries on fal's schedule scaled down, every attempt in the app's log, and
never a change to the request's own result."""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from gateway_apps import FIDELITY, echo
from test_conformance import fal_env, run_fal_client  # noqa: F401  (the module's fal_env fixture)

from fal_notebook import wire
from fal_notebook.gateway.webhooks import DELIVERIES, RETRY_DELAYS, verify
from tests.polling import wait_for


@dataclass
class Receiver:
    """A webhook receiver on the loopback: answers ``answers`` in turn (then 200), records each POST
    (``received``) and then its answer (``answered``)."""

    port: int
    answers: list[int] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    answered: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook?token=s3cret"

    def wait(self, count: int, timeout: float = 60.0) -> list[tuple[dict[str, str], bytes]]:
        wait_for(lambda: len(self.received) >= count, f"{count} deliveries", timeout=timeout)
        return self.received


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state: dict[str, Receiver] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            hook = state["receiver"]
            status = hook.answers.pop(0) if hook.answers else 200
            hook.received.append((dict(self.headers.items()), body))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()
            hook.answered.append(status)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state["receiver"] = Receiver(server.server_address[1])
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield state["receiver"]
    server.shutdown()


@pytest.fixture(scope="module")
def app(gateway):
    return gateway.deploy(FIDELITY, "hooked", max_concurrency=1)


@pytest.fixture
def client(gateway):
    with gateway.http() as c:
        yield c


def app_log(gateway) -> str:
    return (gateway.home / "gateway" / "logs" / "hooked.log").read_text()


def test_a_completed_request_is_delivered_signed(gateway, client, app, receiver):
    submitted = client.post("/queue/local/hooked", params={"fal_webhook": receiver.url}, json={}).json()
    gateway.wait_completed(client, submitted["status_url"])
    [(headers, body)] = receiver.wait(1)
    assert json.loads(body) == {
        "request_id": submitted["request_id"],
        "gateway_request_id": submitted["request_id"],
        "status": "OK",
        "payload": {"attempt": 1, "runner": json.loads(body)["payload"]["runner"]},
    }
    keys = client.get(wire.JWKS_PATH).json()
    assert keys["keys"][0]["kty"] == "OKP" and keys["keys"][0]["crv"] == "Ed25519"
    assert verify(headers, body, keys)
    assert headers[wire.WEBHOOK_USER_ID] == gateway.key.partition(":")[0]
    assert not verify(headers, body + b" ", keys)  # the body is what is signed
    assert not verify(headers, body, keys, now=int(headers[wire.WEBHOOK_TIMESTAMP]) + 301)  # fal's tolerance
    wait_for(lambda: "delivered" in app_log(gateway), "the delivery in the app's log")
    assert "attempt 1/11 to http://127.0.0.1" in app_log(gateway)
    assert "s3cret" not in app_log(gateway)  # the webhook URL's query may carry a token


def test_a_failed_request_is_delivered_as_an_error(gateway, client, app, receiver):
    submitted = client.post("/queue/local/hooked", params={"fal_webhook": receiver.url}, json={"status": 422}).json()
    gateway.wait_completed(client, submitted["status_url"])
    [(_, body)] = receiver.wait(1)
    delivered = json.loads(body)
    assert delivered["status"] == "ERROR" and delivered["error"] == "Invalid status code: 422"
    assert delivered["payload"] == {"detail": "failing attempt 1"}


def test_a_failing_receiver_is_retried_and_never_changes_the_result(gateway, client, app, receiver):
    receiver.answers = [500, 503]
    submitted = client.post("/queue/local/hooked", params={"fal_webhook": receiver.url}, json={}).json()
    status = gateway.wait_completed(client, submitted["status_url"])
    assert "error" not in status and client.get(submitted["response_url"]).json()["attempt"] == 1
    received = receiver.wait(3)
    assert len({body for _, body in received}) == 1  # the same payload each time
    # Each attempt's line is written once its answer is in: wait for the third.
    wait_for(lambda: "attempt 3/11" in app_log(gateway), "attempt 3 in the app's log")
    log = app_log(gateway)
    assert (
        f"attempt 1/11 to http://127.0.0.1:{receiver.port}/hook answered 500; retrying in {RETRY_DELAYS[0]:g} s" in log
    )
    assert "attempt 2/11" in log and "answered 503" in log
    assert "attempt 3/11" in log


def test_a_receiver_that_never_answers_2xx_is_given_up_after_fals_count(gateway, client, app, receiver):
    receiver.answers = [500] * 20
    submitted = client.post("/queue/local/hooked", params={"fal_webhook": receiver.url}, json={}).json()
    gateway.wait_completed(client, submitted["status_url"])
    receiver.wait(len(RETRY_DELAYS) + 1)
    wait_for(lambda: "giving up after 11 attempts" in app_log(gateway), what="the last attempt")
    assert client.get(submitted["response_url"]).status_code == 200


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example/x",
        "http://[::1",
        "http://127.0.0.1:99999/hook",
        "http://127.0.0.1:0/hook",
        "http://127.0.0.1:-1/hook",
        "http://\u2603\u2603.invalid/",
        "http://xn--zz/",
        "http:///hook",
        "http://h" + "o" * 3000 + "k/",
    ],
)
def test_a_webhook_url_must_be_one_the_gateway_can_send_to(client, app, url):
    """Refused at the submit with a 400 (it was accepted, then crashed its delivery task, or a 500)."""
    refused = client.post("/queue/local/hooked", params={"fal_webhook": url}, json={})
    assert refused.status_code == 400, refused.text
    assert "fal_webhook must be an absolute http(s) URL" in refused.json()["detail"]


SUBMIT = """
import json
import sys

import fal_client

handle = fal_client.submit("local/hooked", {}, webhook_url=sys.argv[1] if len(sys.argv) > 1 else "{url}")
print(json.dumps({"request_id": handle.request_id, "result": handle.get()}))
"""


def test_fal_clients_webhook_url_is_delivered(gateway, app, receiver, fal_env, tmp_path):  # noqa: F811
    out = run_fal_client(SUBMIT.replace("{url}", receiver.url), fal_env, tmp_path)
    [(headers, body)] = receiver.wait(1)
    assert json.loads(body)["request_id"] == out["request_id"] and json.loads(body)["payload"] == out["result"]
    assert headers[wire.WEBHOOK_REQUEST_ID] == out["request_id"]


@pytest.fixture
def silent_receiver() -> Iterator[list[socket.socket]]:
    """A loopback port that accepts connections and never answers (what it accepted, held open)."""
    held: list[socket.socket] = []
    server = socket.create_server(("127.0.0.1", 0), backlog=512)
    server.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield held, server.getsockname()[1]
    stop.set()
    thread.join(5)
    for connection in [*held, server]:
        connection.close()


def test_webhooks_at_a_receiver_that_never_answers_starve_no_probe(gateway, app, client, silent_receiver):
    """120 deliveries to a receiver that never answers (the issue's 300, scaled; more than a shared pool
    of 100 connections held): they take a bounded share of connections (webhooks.DELIVERIES), while a
    deploy's readiness probes, on connections of their own, find the new runner (issue 20, item 3)."""
    held, port = silent_receiver
    url = f"http://127.0.0.1:{port}/never"
    gateway.deploy(FIDELITY, "hooked-public", auth="public")
    with gateway.http(key=False) as anonymous:  # no key needed: a public app
        for _ in range(120):
            assert anonymous.post("/queue/local/hooked-public", params={"fal_webhook": url}, json={}).status_code == 200
    wait_for(lambda: len(held) >= DELIVERIES, "deliveries under way")
    probed = gateway.deploy(echo(), "probed-meanwhile", auth="public", startup_timeout=30)
    assert probed.status == "ready"
    assert client.post("/local/probed-meanwhile", json={"text": "found in time"}).json()["words"] == 3
    assert 0 < len([c for c in held if still_open(c)]) <= DELIVERIES  # the deliveries' share, and no more


def still_open(connection: socket.socket) -> bool:
    """Whether the gateway keeps this connection open (an attempt that timed out closes its own)."""
    connection.setblocking(False)
    try:
        while connection.recv(65536):  # what the attempt sent, read and dropped
            pass
    except BlockingIOError:
        return True  # nothing more to read, and no end
    except OSError:
        return False
    return False  # the end: the gateway closed it
