"""The Playground's sessions with realtime and websocket endpoints against a fake client with the
client's interface (no kernel, no network): the states a user sees, the outputs as they arrive,
errors, and the connection closed with the widget."""

from __future__ import annotations

import ast

import pytest
from websockets.exceptions import ConnectionClosedError
from websockets.frames import Close

from fal_notebook.errors import FalNotebookError, InputError, RealtimeError, RequestError
from fal_notebook.widgets import realtime
from fal_notebook.widgets.playground import Playground
from tests.polling import wait_for

from .. import sample_apps
from .fake_client import FakeClient
from .test_playground import html_of

PICTURE = "https://cdn.example/frame.png"


def drawn(message: dict, n: int = 1) -> list[dict]:
    image = {"url": PICTURE, "content_type": "image/png", "width": 8, "height": 8}
    return [{"image": image, "prompt": f"{message['prompt']} {i + 1}"} for i in range(n)]


def respond(path: str, message):
    if path == "/chat":
        return [message[::-1], '{"words": 2}']
    return drawn(message, 3 if path == "/frames" else 1)


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("FAL_NOTEBOOK_HOME", str(tmp_path))
    monkeypatch.delenv("FAL_KEY", raising=False)


@pytest.fixture
def client():
    return FakeClient(sample_apps.fal_document(sample_apps.LiveApp), respond, endpoint_id="alice/live")


def connected(pg: Playground) -> Playground:
    pg.connect()
    wait_for(lambda: pg.session.state == "connected", "the connection")
    return pg


def showing(pg: Playground, received: int) -> None:
    """Wait until the view shows ``received`` outputs (the status line is written last)."""
    wait_for(lambda: f" {received} received" in status(pg), f"{received} outputs shown")


def buttons(pg: Playground) -> dict[str, bool]:
    """The buttons under the form: description → enabled."""
    return {b.description: not b.disabled for b in pg._buttons.children}


def primary(pg: Playground) -> list[str]:
    """The buttons that stand out (the next step)."""
    return [b.description for b in pg._buttons.children if b.button_style == "primary"]


def status(pg: Playground) -> str:
    return pg.session._status.value


def test_a_realtime_endpoint_gets_connect_send_disconnect_instead_of_run(client):
    pg = Playground(client, endpoint="/realtime")
    assert pg.session.endpoint.protocol == "realtime"
    assert buttons(pg) == {"Connect": True, "Send": False, "Disconnect": False, "Reset": True}
    assert primary(pg) == ["Connect"]
    assert pg._result_tab.children == (pg.session.panel,)
    assert "Not connected" in status(pg) and pg.session.error == ""
    assert list(pg.fields) == ["prompt", "steps"] and pg.fields["prompt"].value == "a cat"

    connected(pg)
    assert buttons(pg) == {"Connect": False, "Send": True, "Disconnect": True, "Reset": True}
    assert primary(pg) == ["Send"]
    assert "Connected to /realtime · 0 sent · 0 received" in status(pg) and "fal-pg-status-running" in status(pg)

    pg.set_values({"prompt": "a dog"})
    pg.send()
    showing(pg, 1)
    [session] = client.sessions
    assert session.path == "/realtime" and session.sent == [{"prompt": "a dog"}]  # defaults left out, as Run does
    assert pg.session.received == drawn({"prompt": "a dog"})
    assert f'<img src="{PICTURE}"' in html_of(pg.session.panel) and "a dog 1" in html_of(pg.session.panel)
    assert "Connected to /realtime · 1 sent · 1 received" in status(pg)

    pg.disconnect()
    wait_for(lambda: pg.session.state == "closed", "the end of the session")
    assert session.closed.is_set() and pg.session.error == ""
    assert "Disconnected · 1 sent · 1 received" in status(pg) and "fal-pg-error" not in html_of(pg.session.panel)
    assert buttons(pg) == {"Connect": True, "Send": False, "Disconnect": False, "Reset": True}
    assert primary(pg) == ["Connect"]
    assert f'<img src="{PICTURE}"' in html_of(pg.session.panel)  # the outputs stay until the next Connect


def test_a_stream_of_outputs_is_shown_newest_first_and_bounded(client):
    client.respond = lambda path, message: drawn(message, 25)
    pg = connected(Playground(client, endpoint="/frames"))
    pg.send()
    showing(pg, 25)
    shown = pg.session._outputs.children
    assert len(shown) == realtime.SHOWN
    assert "#25 ·" in html_of(shown[0]) and "a cat 25" in html_of(shown[0]) and "#6 ·" in html_of(shown[-1])
    pg.send()
    showing(pg, 50)
    assert "Connected to /frames · 2 sent · 50 received" in status(pg)


def test_an_invalid_message_is_marked_and_not_sent(client):
    pg = connected(Playground(client, endpoint="/realtime"))
    pg.set_values({"prompt": ""})
    pg.fields["prompt"].value = None
    with pytest.raises(InputError, match="prompt is required"):
        pg.send()
    assert client.sessions[0].sent == [] and "is required" in pg.fields["prompt"].slot.error.value
    pg.session._send.click()  # the button says nothing more: the field shows it
    assert client.sessions[0].sent == [] and pg.session.error == ""


def test_the_apps_error_is_shown_and_connect_starts_again(client):
    def fail(path, message):
        raise RealtimeError(
            "alice/live: the realtime session with /realtime ended with INTERNAL_ERROR: boom. Connect again.",
            error_type="INTERNAL_ERROR",
            detail="boom",
        )

    client.respond = fail
    pg = connected(Playground(client, endpoint="/realtime"))
    pg.send()
    wait_for(lambda: pg.session.state == "failed", "the failure")
    assert "INTERNAL_ERROR: boom" in pg.session.error
    assert "Failed · 1 sent · 0 received" in status(pg) and "fal-pg-status-failed" in status(pg)
    assert '<div class="fal-pg-error">alice/live: the realtime session' in html_of(pg.session.panel)
    assert buttons(pg)["Connect"] and not buttons(pg)["Send"]
    client.respond = respond
    connected(pg)
    assert pg.session.error == "" and len(client.sessions) == 2


def test_fals_timeout_ending_a_session_is_a_note_not_a_failure(client):
    def ended(path, message):
        raise RealtimeError(
            "alice/live: the realtime session with /frames ended with TIMEOUT: no inputs, reconnect when needed! "
            "Connect again to send more.",
            error_type="TIMEOUT",
            detail="no inputs, reconnect when needed!",
        )

    client.respond = ended
    pg = connected(Playground(client, endpoint="/frames"))
    pg.send()
    wait_for(lambda: pg.session.state == "closed", "the end of the session")
    assert "Disconnected · 1 sent · 0 received" in status(pg) and "Connect again" in pg.session.error
    assert '<div class="fal-pg-help">alice/live: the realtime session' in pg.session._error.value


def test_a_refused_connection_is_shown(client):
    client.refuse = RequestError("alice/live: the websocket /realtime was refused: Unauthorized.", status_code=401)
    pg = Playground(client, endpoint="/realtime")
    pg._buttons.children[0].click()  # Connect
    wait_for(lambda: pg.session.state == "failed", "the refusal")
    assert pg.session.error == "Could not connect: alice/live: the websocket /realtime was refused: Unauthorized."
    assert buttons(pg)["Connect"]


def test_the_app_closing_the_connection_is_said(client):
    pg = connected(Playground(client, endpoint="/realtime"))
    client.sessions[0].close()
    wait_for(lambda: pg.session.state == "closed", "the close")
    assert pg.session.error == "The app closed the connection to /realtime."


def test_closing_the_widget_closes_the_connection(client):
    pg = connected(Playground(client, endpoint="/realtime"))
    pg.widget.close()
    wait_for(lambda: client.sessions[0].closed.is_set(), "the connection to close")
    pg.session.wait(10)
    assert pg.session.state == "closed"

    pg = connected(Playground(client, endpoint="/realtime"))
    pg.close()
    wait_for(lambda: client.sessions[1].closed.is_set(), "the connection to close")


def test_another_endpoint_closes_the_connection_and_reset_keeps_it(client):
    pg = connected(Playground(client, endpoint="/realtime"))
    pg._reset.click()
    assert pg.session.state == "connected" and not client.sessions[0].closed.is_set()
    pg.select("/")
    wait_for(lambda: client.sessions[0].closed.is_set(), "the connection to close")
    assert pg.session is None and [b.description for b in pg._buttons.children] == ["Run", "Cancel", "Reset"]
    assert pg._result_tab.children == (pg._status_line, pg._log_view, pg._output_box)
    with pytest.raises(FalNotebookError, match="is called with Run"):
        pg.connect()


def test_disconnect_while_connecting_leaves_nothing_open(client):
    client.opening.clear()
    pg = Playground(client, endpoint="/realtime")
    pg.connect()
    assert pg.session.state == "connecting" and "Connecting to /realtime…" in status(pg)
    assert buttons(pg) == {"Connect": False, "Send": False, "Disconnect": True, "Reset": True}
    pg.disconnect()
    client.opening.set()
    pg.session.wait(10)
    assert pg.session.state == "closed" and client.sessions[0].closed.is_set() and pg.session.error == ""


def test_run_is_refused_on_a_realtime_endpoint(client):
    pg = Playground(client, endpoint="/realtime")
    with pytest.raises(FalNotebookError, match="/realtime is a realtime endpoint: connect"):
        pg.submit()
    assert client.calls == []


def test_a_websocket_endpoint_sends_text_and_shows_frames(client):
    pg = Playground(client, endpoint="/chat")
    assert list(pg.fields) == ["message"]
    connected(pg)
    pg.set_values({"message": "hello"})
    pg.send()
    showing(pg, 2)
    assert client.sessions[0].sent == ["hello"]
    assert pg.session.received == ["olleh", {"words": 2}]  # JSON frames read as JSON
    assert '<div class="fal-pg-text">olleh</div>' in html_of(pg.session.panel)
    pg.disconnect()
    wait_for(lambda: pg.session.state == "closed", "the end of the session")
    assert pg.session.error == ""


def test_a_broken_websocket_connection_is_a_failure(client):
    """The app closing with a code of its own is a note (the live test); a server error is a failure."""

    def broken(path, message):
        raise ConnectionClosedError(Close(1011, "oops"), None)

    client.respond = broken
    pg = connected(Playground(client, endpoint="/chat"))
    pg.set_values({"message": "hello"})
    pg.send()
    wait_for(lambda: pg.session.state == "failed", "the failure")
    assert pg.session.error == "The connection to /chat broke (code 1011: oops)."
    assert "Failed · 1 sent · 0 received" in status(pg) and '<div class="fal-pg-error">' in pg.session._error.value


def test_a_realtime_endpoint_with_its_own_encoding_cannot_be_connected(client):
    document = sample_apps.fal_document(sample_apps.LiveApp)
    document["paths"]["/realtime"]["x-fal-protocol"]["contentType"] = "application/x-protobuf"
    client.document = document
    pg = Playground(client, endpoint="/realtime")
    assert not buttons(pg)["Connect"]
    assert "exchanges application/x-protobuf messages" in html_of(pg.session.panel)
    with pytest.raises(FalNotebookError, match="encode_message"):
        pg.connect()
    assert client.sessions == []


def test_the_code_tab_shows_fal_clients_realtime_and_ours(client):
    pg = Playground(client, endpoint="/realtime")
    pg.set_values({"prompt": "a dog"})
    code = pg.code("Python")
    ast.parse(code)
    assert 'with fal_client.realtime("alice/live", path="/realtime") as connection:' in code
    assert 'with fal_notebook.connect("alice/live").realtime("/realtime") as connection:' in code
    assert code.count('connection.send({"prompt": "a dog"})') == 2
    assert 'fal.realtime.connect("alice/live", {' in pg.code("JavaScript")
    assert "speaks no websocket" in pg.code("cURL")
