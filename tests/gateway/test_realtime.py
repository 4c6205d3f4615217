"""Realtime and websocket endpoints of a fal.App through the gateway, with our own websocket client and
with the official fal_client over the gateway's HTTPS listener (``use_jwt=False``: fal_client fetches
its tokens from fal's REST host, which it does not let be redirected). The ``live`` fixture (tests/conftest.py)
deploys the LIVE app (tests/realtime_apps.py)."""

from __future__ import annotations

import socket

import pytest
from test_conformance import fal_env, run_fal_client  # noqa: F401  (the module's fal_env fixture)
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.polling import wait_for


def ws_url(gateway, path: str) -> str:
    return f"ws://127.0.0.1:{gateway.port}/local/live{path}"


def test_a_websocket_endpoint_through_the_gateway(gateway, live):
    with connect(ws_url(gateway, "/ws"), additional_headers={"Authorization": f"Key {gateway.key}"}) as ws:
        ws.send("hello")
        assert ws.recv(timeout=30) == "olleh"
        ws.send("who")
        assert ws.recv(timeout=30) == gateway.key.partition(":")[0]
        ws.send("bye")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=30)
    assert closed.value.rcvd.code == 4000 and closed.value.rcvd.reason == "bye"
    # written once the gateway saw the close too
    wait_for(lambda: "WebSocket /ws closed" in gateway.app_log("live"), what="the close in the app's log")


def test_handshakes_the_gateway_refuses_are_http_errors(gateway, live):
    with pytest.raises(InvalidStatus) as anonymous:
        connect(ws_url(gateway, "/ws"))
    assert anonymous.value.response.status_code == 401
    with pytest.raises(InvalidStatus) as unknown:
        connect(f"ws://127.0.0.1:{gateway.port}/local/nothing-here/ws")
    assert unknown.value.response.status_code == 404
    with pytest.raises(InvalidStatus) as no_path:
        connect(ws_url(gateway, "/no-such-socket"), additional_headers={"Authorization": f"Key {gateway.key}"})
    assert no_path.value.response.status_code in (403, 404)


REALTIME = """
import json

import fal_client

out = {}
with fal_client.realtime("local/live", use_jwt=False) as connection:
    connection.send({"text": "quiet"})
    out["realtime"] = connection.recv()
with fal_client.ws_connect("local/live", use_jwt=False, path="/ws") as ws:
    ws.send("stressed")
    out["ws"] = ws.recv()
print(json.dumps(out))
"""


def test_fal_clients_realtime_and_ws_connect_over_https(gateway, live, fal_env, tmp_path):  # noqa: F811
    out = run_fal_client(REALTIME, fal_env, tmp_path)
    assert out["realtime"] == {"upper": "QUIET"}
    assert out["ws"] == "desserts"


def test_our_client_speaks_to_realtime_and_websocket_endpoints(gateway, live):
    from fal_notebook import connect
    from fal_notebook.errors import RequestError

    client = connect("local/live")
    with client.realtime() as session:
        session.send({"text": "loud"})
        assert session.recv(timeout=30) == {"upper": "LOUD"}
    with client.websocket("/ws") as ws:
        ws.send("drawer")
        assert ws.recv(timeout=30) == "reward"
    with pytest.raises(RequestError) as refused, client.websocket("/nowhere"):
        pass
    assert refused.value.status_code in (403, 404) and "the websocket /nowhere was refused" in str(refused.value)


def test_our_realtime_session_raises_fals_error_message_and_ends_at_a_normal_close(gateway, live):
    from fal_notebook import connect
    from fal_notebook.errors import RealtimeError

    with connect("local/live").realtime() as session:
        session.send({"no_text": 1})  # not a Ping: fal's session sends its error message, then closes
        with pytest.raises(RealtimeError) as failed:
            session.recv(timeout=30)
    assert failed.value.error_type == "INTERNAL_ERROR" and "text" in failed.value.detail
    assert str(failed.value).startswith("local/live: the realtime session with /realtime ended with INTERNAL_ERROR: ")
    with connect("local/live").realtime() as session:
        session.send({"text": "a"})
        assert session.recv(timeout=30) == {"upper": "A"}
        session.close()
        assert session.recv(timeout=30) is None


def handshake(gateway, path: str, **headers: str) -> bytes:
    """The first line of the gateway's answer to a websocket handshake with the key and ``headers``."""
    lines = [f"GET /local/live{path} HTTP/1.1", "Upgrade: websocket", "Connection: Upgrade"]
    lines += ["Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"]
    lines += [f"Authorization: Key {gateway.key}", *(f"{name}: {value}" for name, value in headers.items())]
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=30) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return sock.recv(4096).split(b"\r\n", 1)[0]


@pytest.mark.parametrize("path", ["/ws", "/realtime"])
def test_websockets_pass_the_host_and_origin_checks(gateway, live, path):
    """Before: any Host and Origin were let in (issue 20, item 5). A browser opens a websocket without
    asking, so a page elsewhere is refused at the handshake; a page of this machine is not."""
    assert handshake(gateway, path, Host="evil.example") == b"HTTP/1.1 403 Forbidden"
    assert handshake(gateway, path, Host="127.0.0.1", Origin="https://evil.example") == b"HTTP/1.1 403 Forbidden"
    assert handshake(gateway, path, Host="127.0.0.1") == b"HTTP/1.1 101 Switching Protocols"
    assert (
        handshake(gateway, path, Host="localhost", Origin="http://localhost:8888")
        == b"HTTP/1.1 101 Switching Protocols"
    )
