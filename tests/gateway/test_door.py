"""The gateway's door (issue 12, items 3 and 4): bounded bodies, memory and queue, slow clients
dropped, and no 500 for odd input; the Host check against DNS rebinding; the identity's secrets."""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from fal_notebook.gateway.paths import db_path
from tests.bad_files import MANIFEST_EDITS, PYPROJECT_EDITS, edit_file
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


@pytest.mark.parametrize("since", ["²", "-1", "1.5", "x", "1" * 5000])
@pytest.mark.parametrize("name", ["since", "wait"])
def test_since_or_wait_that_is_not_a_whole_number_is_a_422(client, name, since):
    response = client.get("/_fal_notebook/apps/door", params={name: since})
    assert response.status_code == 422 and name in response.json()["detail"]


@pytest.mark.parametrize("length", ["²", "1" * 5000, "-1", "1e3", ""])
def test_a_max_queue_length_that_is_not_a_whole_number_is_a_400_without_a_key(door, length):
    with door.http(key=False) as client:
        response = client.post("/queue/local/door", params={"fal_max_queue_length": length}, json={})
    assert response.status_code == 400 and "fal_max_queue_length" in response.json()["detail"]


@pytest.mark.parametrize(
    ("kind", "what"), [("manifest", w) for w in MANIFEST_EDITS] + [("pyproject", w) for w in PYPROJECT_EDITS]
)
def test_deploying_a_hand_edited_project_is_a_422(door, client, kind, what):
    project = door.capture(HOLD_SERVER, "edited", auth="public", force=True)
    name, edits = (".fal-notebook.json", MANIFEST_EDITS) if kind == "manifest" else ("pyproject.toml", PYPROJECT_EDITS)
    edit_file(project.path / name, edits[what])
    spec = {"path": str(project.path), "env": "kernel", "python": sys.executable}
    response = client.put("/_fal_notebook/apps/edited", json=spec)
    assert response.status_code in (202, 422), response.text


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


CORS_SERVER = """
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

app = FastAPI()
app.add_middleware(CORSMiddleware, allow_origin_regex=".*", allow_credentials=True, allow_methods=["*"])


@app.post("/")
def run() -> dict:
    return {"secret": "only for this machine"}
"""


@pytest.mark.parametrize("origin", ["https://evil.example", "http://127.0.0.1.evil.example", "null", "file://"])
def test_a_web_page_elsewhere_neither_calls_a_public_app_nor_reads_its_answer(door, origin):
    """A public app that echoes any Origin with credentials allowed (fal's runners do): a page elsewhere
    is refused at the door, before the app runs, preflight included (issue 20, item 5)."""
    door.deploy(CORS_SERVER, "cors", auth="public")
    with httpx.Client(base_url=door.base, headers={"Origin": origin}) as page:
        called = page.post("/local/cors", json={})
        preflight = page.options("/local/cors", headers={"Access-Control-Request-Method": "POST"})
    for answer in (called, preflight):
        assert answer.status_code == 403 and "access-control-allow-origin" not in answer.headers
        assert "only for this machine" not in answer.text


@pytest.mark.parametrize("origin", ["http://localhost:5173", "http://127.0.0.1:8888", "https://[::1]"])
def test_a_page_of_this_machine_calls_and_reads_a_public_app(door, origin):
    door.deploy(CORS_SERVER, "cors", auth="public")
    with httpx.Client(base_url=door.base, headers={"Origin": origin}) as page:
        called = page.post("/local/cors", json={})
    assert called.json() == {"secret": "only for this machine"}
    assert called.headers["access-control-allow-origin"] == origin


def test_the_identity_tells_folder_and_pid_only_to_the_key(door):
    with door.http(key=False) as anonymous:
        public = anonymous.get("/_fal_notebook/identity").json()
    assert "home" not in public and "pid" not in public and public["state_id"]
    with door.http() as keyed:
        private = keyed.get("/_fal_notebook/identity").json()
    assert private["home"] == str(door.home) and private["pid"]


# -- item 3: resource bounds ---------------------------------------------------------------------
class Upload:
    """An upload on a raw connection that sent ``sent`` bytes of a ``length``-byte body (with the
    gateway's ``key``, or without) and then goes on a byte every ``every`` seconds, never finishing."""

    def __init__(self, port: int, *, length: int, sent: int, key: str | None = None, every: float = 0.5):
        self.sock = raw_connection(port)
        auth = f"Authorization: Key {key}\r\n".encode() if key else b""
        head = b"POST /queue/local/door HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        self.sock.sendall(head + auth + b"Content-Length: %d\r\n\r\n{" % length + b" " * (sent - 1))
        self.every, self.stop = every, threading.Event()
        self.thread = threading.Thread(target=self._trickle, daemon=True)
        self.thread.start()

    def _trickle(self) -> None:
        while not self.stop.wait(self.every):
            try:
                self.sock.sendall(b" ")
            except OSError:
                return

    def answer(self, within: float) -> bytes:
        """What the gateway answered (b"" if nothing within ``within`` seconds)."""
        self.sock.settimeout(within)
        try:
            return self.sock.recv(4096)
        except TimeoutError:
            return b""

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


@contextlib.contextmanager
def uploads(*started: Upload) -> Iterator[list[Upload]]:
    try:
        yield list(started)
    finally:
        for upload in started:
            upload.close()


def test_bodies_held_at_once_are_bounded(door, client):
    """Two unfinished uploads hold the almost max_body bytes each that they sent; a third body would
    pass max_bodies: refused with Retry-After, and served once the uploads end."""
    big = {"x": "y" * (MAX_BODY - 100)}
    with uploads(*(Upload(door.port, length=MAX_BODY, sent=MAX_BODY - 200, key=door.key) for _ in range(2))):
        busy = wait_for(
            lambda: (answer := client.post("/queue/local/door", json=big)).status_code == 503 and answer,
            "the uploads' bytes to be held",
        )
        assert "FAL_NOTEBOOK_GATEWAY_MAX_BODIES" in busy.json()["detail"] and busy.headers["retry-after"]
    # the gateway notices the closed uploads and gives their bytes back
    wait_for(lambda: client.post("/local/door", json=big).status_code == 200, "the uploads' bytes to be given back")


def test_bodies_without_the_key_hold_half_the_budget_at_most(door, client):
    """Callers of a public app without the key: the second upload passes their share and is refused;
    a keyed body still finds room (before: every byte of max_bodies could be theirs; issue 20, item 4)."""
    with uploads(*(Upload(door.port, length=MAX_BODY, sent=MAX_BODY - 200) for _ in range(2))) as both:
        answers = [b"", b""]

        def one_refused() -> bool:
            for i, upload in enumerate(both):
                answers[i] = answers[i] or upload.answer(within=0.2)
            return any(answers)

        wait_for(one_refused, "one upload refused")
        assert sorted(answer[:12] for answer in answers) == [b"", b"HTTP/1.1 503"]  # the other still uploads
        assert client.post("/local/door", json={"x": "y" * (MAX_BODY - 100)}).status_code == 200


def test_slow_senders_hold_no_budget_and_are_cut(door, client):
    """Five uploads declare max_body and send a byte a second (the issue's slow senders): they hold
    only what they sent, keyed calls are served meanwhile, and each is cut once it has taken
    body_timeout and averages under min_body_rate (before: 503 for every keyed call; issue 20, item 4)."""
    started = time.monotonic()
    with uploads(*(Upload(door.port, length=MAX_BODY, sent=1, every=1.0) for _ in range(5))) as slow:
        assert client.post("/local/door", json={"x": "y" * (MAX_BODY - 100)}).status_code == 200
        answers = [upload.answer(within=15) for upload in slow]
    assert all(answer.startswith(b"HTTP/1.1 408") and b"too slowly" in answer for answer in answers), answers
    assert time.monotonic() - started < 15


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
