"""The gateway's door (issue 12, items 3 and 4): bounded bodies, memory and queue, slow clients
dropped, and no 500 for odd input; the Host check against DNS rebinding; the identity's secrets."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from fal_notebook.gateway.paths import db_path
from tests.polling import wait_for

HOLD_SERVER = """
import asyncio
import os

from fastapi import FastAPI

app = FastAPI()


@app.post("/")
async def run(payload: dict) -> dict:
    while os.path.exists(payload.get("wait_while", "")):
        await asyncio.sleep(0.05)
    return {"size": len(str(payload))}
"""
MAX_BODY = 1 << 20  # tests/conftest.py sets it for every test gateway
LIMITS = {
    "FAL_NOTEBOOK_GATEWAY_MAX_BODIES": str(int(2.5 * MAX_BODY)),
    "FAL_NOTEBOOK_GATEWAY_MAX_QUEUE": "3",
    "FAL_NOTEBOOK_GATEWAY_HEADER_TIMEOUT": "2",
    "FAL_NOTEBOOK_GATEWAY_BODY_TIMEOUT": "2",
}


@pytest.fixture(scope="module")
def limits():
    with pytest.MonkeyPatch.context() as mp:
        for name, value in LIMITS.items():
            mp.setenv(name, value)
        yield


@pytest.fixture(scope="module")
def door(limits, gateway):
    """The module's gateway, started with small limits, and a public app that waits on a file."""
    gateway.deploy(HOLD_SERVER, "door", auth="public", max_concurrency=1)
    return gateway


@pytest.fixture
def client(door):
    with door.http() as c:
        yield c


def raw_connection(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def closed_by_server(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionError:
        return True


# -- item 4: no 500 at the door ------------------------------------------------------------------
def test_deeply_nested_json_is_a_422_not_a_500(client):
    response = client.post("/queue/local/door", content=b"[" * 5000 + b"]" * 5000)
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"


@pytest.mark.parametrize("since", ["²", "-1", "1.5", "x"])
def test_since_that_is_not_an_event_number_is_a_422(client, since):
    response = client.get("/_fal_notebook/apps/door", params={"since": since})
    assert response.status_code == 422 and "since" in response.json()["detail"]


@pytest.mark.parametrize("timeout", ["nan", "inf", "-inf", "1e999", "Infinity"])
def test_a_request_timeout_that_never_expires_is_a_400(client, timeout):
    response = client.post("/queue/local/door", json={}, headers={"X-Fal-Request-Timeout": timeout})
    assert response.status_code == 400 and "X-Fal-Request-Timeout" in response.json()["detail"]


@pytest.mark.parametrize("suffix", ["%00", "%3Fa=1", "%23x", "a%20b", "%25"])
def test_odd_app_paths_reach_the_app_encoded(client, suffix):
    """Found by the fuzzer: a NUL in the path was a 500 that kept the runner's slot taken."""
    assert client.post(f"/local/door/{suffix}", json={}).status_code == 404  # the app has no such path
    assert client.post("/local/door", json={}).status_code == 200


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8765", "192.0.2.1", "127.0.0.1.evil.example"])
def test_a_foreign_host_header_reaches_nothing(door, host):
    with httpx.Client(base_url=door.base, headers={"Host": host}) as rebound:
        assert rebound.get("/_fal_notebook/identity").status_code == 421
        assert rebound.post("/local/door", json={}).status_code == 421


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost:1234", "[::1]:8765", "LOCALHOST"])
def test_loopback_host_headers_are_served(door, host):
    with httpx.Client(base_url=door.base, headers={"Host": host}) as local:
        assert local.get("/_fal_notebook/identity").status_code == 200


def test_the_identity_tells_folder_and_pid_only_to_the_key(door):
    with door.http(key=False) as anonymous:
        public = anonymous.get("/_fal_notebook/identity").json()
    assert "home" not in public and "pid" not in public and public["state_id"]
    with door.http() as keyed:
        private = keyed.get("/_fal_notebook/identity").json()
    assert private["home"] == str(door.home) and private["pid"]


# -- item 3: resource bounds ---------------------------------------------------------------------
def test_bodies_held_at_once_are_bounded(door, client):
    """Each of two unfinished uploads holds (declares) almost max_body; a third would pass max_bodies."""
    holders = []
    for _ in range(2):
        sock = raw_connection(door.port)
        sock.sendall(
            b"POST /queue/local/door HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n{" % (MAX_BODY - 10)
        )
        holders.append(sock)
    big = {"x": "y" * (MAX_BODY - 100)}  # a sync call: refused while the uploads hold their bytes, else served
    wait_for(lambda: client.post("/local/door", json=big).status_code == 503, "the uploads' bodies to be held")
    try:
        busy = client.post("/queue/local/door", content=b"{" + b" " * (MAX_BODY - 100) + b"}")
        assert busy.status_code == 503 and "FAL_NOTEBOOK_GATEWAY_MAX_BODIES" in busy.json()["detail"]
        assert busy.headers["retry-after"]
    finally:
        for sock in holders:
            sock.close()
    # the gateway notices the closed uploads and gives their bytes back
    wait_for(lambda: client.post("/local/door", json=big).status_code == 200, "the uploads' bytes to be given back")


def test_the_queue_length_is_capped(door, client, tmp_path):
    gate = tmp_path / "gate"
    gate.touch()
    handles = [client.post("/queue/local/door", json={"wait_while": str(gate)}).json() for _ in range(4)]
    try:  # one runs, three wait: the queue is full
        refused = client.post("/queue/local/door", json={})
        assert refused.status_code == 429 and "FAL_NOTEBOOK_GATEWAY_MAX_QUEUE" in refused.json()["detail"]
    finally:
        gate.unlink()
    for handle in handles:
        assert door.wait_completed(client, handle["status_url"])["status"] == "COMPLETED"
    assert client.post("/queue/local/door", json={}).status_code == 200


def test_bodies_are_stored_once_beside_the_database_and_gone_when_done(door, client, tmp_path):
    gate = tmp_path / "gate"
    gate.touch()
    blocker = client.post("/queue/local/door", json={"wait_while": str(gate)}).json()
    database = [db_path(), db_path().with_name(db_path().name + "-wal")]
    before = sum(p.stat().st_size for p in database if p.exists())
    handle = client.post("/queue/local/door", json={"blob": "z" * (MAX_BODY - 1000)}).json()
    bodies = db_path().parent / "bodies"
    try:
        assert (bodies / handle["request_id"]).stat().st_size > MAX_BODY - 1000
        assert sum(p.stat().st_size for p in database) - before < MAX_BODY / 4  # not in SQLite (nor its journal)
    finally:
        gate.unlink()
    for h in (blocker, handle):
        door.wait_completed(client, h["status_url"])
    assert not (bodies / handle["request_id"]).exists()


def test_slow_headers_are_dropped(door):
    """Slowloris: connections that trickle their headers are closed after the header timeout."""
    socks = [raw_connection(door.port) for _ in range(20)]
    for sock in socks:
        sock.sendall(b"GET /_fal_notebook/identity HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    started = time.monotonic()
    for _ in range(3):  # a byte every second keeps the connection busy, never complete
        time.sleep(1)
        for sock in socks:
            try:
                sock.sendall(b"X")
            except OSError:
                pass
    assert all(closed_by_server(sock, within=5) for sock in socks)
    assert time.monotonic() - started < 10
    for sock in socks:
        sock.close()


def test_a_stalled_body_is_dropped(door):
    sock = raw_connection(door.port)
    sock.sendall(b"POST /queue/local/door HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{")
    sock.settimeout(10)
    answer = sock.recv(4096)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 408")


def test_a_bad_limit_setting_is_named(monkeypatch):
    from fal_notebook.errors import GatewayError
    from fal_notebook.gateway.limits import Limits

    monkeypatch.setenv("FAL_NOTEBOOK_GATEWAY_MAX_QUEUE", "²")
    with pytest.raises(GatewayError, match="FAL_NOTEBOOK_GATEWAY_MAX_QUEUE"):
        Limits.from_env()
