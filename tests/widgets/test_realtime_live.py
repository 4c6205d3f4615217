"""The Playground's realtime mode against a real fal.App on the local gateway (the LIVE app of
tests/realtime_apps.py served by ``fal run --local``, the real client): Connect, Send, Disconnect as a
user presses them, the outputs in the widget as they arrive, an invalid message kept back, and the
connection seen closed by the gateway. The same accessors as the fake-client tests (test_realtime.py)."""

from __future__ import annotations

import pytest

from fal_notebook.errors import InputError
from fal_notebook.widgets.playground import Playground
from tests.polling import wait_for

from .test_playground import html_of
from .test_realtime import buttons, status

TIMEOUT = 60  # the first connection waits for a runner to start


def press(pg: Playground, description: str) -> None:
    """Click a button under the form, as a user does."""
    [button] = [b for b in pg._buttons.children if b.description == description]
    assert not button.disabled, f"{description} is disabled"
    button.click()


def connect(pg: Playground) -> None:
    press(pg, "Connect")
    wait_for(lambda: pg.session.state == "connected", "the connection", timeout=TIMEOUT)


def showing(pg: Playground, received: int) -> None:
    wait_for(lambda: f" {received} received" in status(pg), f"{received} outputs shown", timeout=TIMEOUT)


def sockets(gateway, event: str) -> int:
    """How often the gateway logged ``WebSocket <path> <opened|closed>`` for the live app."""
    return gateway.app_log("live").count(f"WebSocket {event} ")


def test_realtime_connect_send_an_invalid_message_and_disconnect(gateway, live):
    pg = Playground(live, endpoint="/realtime")
    assert pg.session.endpoint.protocol == "realtime" and list(pg.fields) == ["text"]
    assert buttons(pg) == {"Connect": True, "Send": False, "Disconnect": False, "Reset": True}
    opened, closed = sockets(gateway, "/realtime opened"), sockets(gateway, "/realtime closed")

    connect(pg)
    assert buttons(pg) == {"Connect": False, "Send": True, "Disconnect": True, "Reset": True}
    wait_for(lambda: sockets(gateway, "/realtime opened") == opened + 1, what="the gateway to log the open")
    pg.fields["text"].value = "quiet"
    press(pg, "Send")
    showing(pg, 1)
    assert pg.session.received == [{"upper": "QUIET"}]
    assert "QUIET" in html_of(pg.session.panel)
    assert "Connected to /realtime · 1 sent · 1 received" in status(pg)

    # a message without its required text is marked in the form and never sent: had it been sent, fal's
    # session would have answered with its error message and closed the connection
    pg.fields["text"].value = None
    with pytest.raises(InputError, match="text is required"):
        pg.send()
    assert "is required" in pg.fields["text"].slot.error.value
    press(pg, "Send")  # the button says nothing more: the field shows it
    assert pg.session.sent == 1 and pg.session.error == ""

    pg.fields["text"].value = "loud"
    press(pg, "Send")
    showing(pg, 2)
    assert pg.session.state == "connected" and pg.session.received == [{"upper": "QUIET"}, {"upper": "LOUD"}]
    assert "Connected to /realtime · 2 sent · 2 received" in status(pg)
    shown = pg.session._outputs.children  # newest first
    assert "#2 ·" in html_of(shown[0]) and "LOUD" in html_of(shown[0]) and "QUIET" in html_of(shown[1])

    press(pg, "Disconnect")
    wait_for(lambda: pg.session.state == "closed", "the end of the session", timeout=TIMEOUT)
    wait_for(lambda: sockets(gateway, "/realtime closed") == closed + 1, what="the gateway to log the close")
    assert pg.session.error == "" and "Disconnected · 2 sent · 2 received" in status(pg)
    assert buttons(pg) == {"Connect": True, "Send": False, "Disconnect": False, "Reset": True}
    assert "LOUD" in html_of(pg.session.panel)  # the outputs stay until the next Connect


def test_a_websocket_endpoint_exchanges_text_frames_until_the_app_closes(gateway, live):
    pg = Playground(live, endpoint="/ws")
    assert pg.session.endpoint.protocol == "websocket" and list(pg.fields) == ["message"]
    opened, closed = sockets(gateway, "/ws opened"), sockets(gateway, "/ws closed")
    connect(pg)
    for text in ("stressed", "who"):
        pg.fields["message"].value = text
        press(pg, "Send")
    showing(pg, 2)
    assert pg.session.received == ["desserts", gateway.key.partition(":")[0]]  # the caller is the key's id
    assert '<div class="fal-pg-text">desserts</div>' in html_of(pg.session.panel)

    pg.fields["message"].value = "bye"  # the app closes the connection itself, with code 4000
    press(pg, "Send")
    wait_for(lambda: pg.session.state != "connected", "the app to close the connection", timeout=TIMEOUT)
    assert pg.session.state == "closed"
    assert pg.session.error == "The app closed the connection to /ws (code 4000: bye)."
    assert "Disconnected · 3 sent · 2 received" in status(pg) and "fal-pg-error" not in html_of(pg.session.panel)
    wait_for(lambda: sockets(gateway, "/ws closed") == closed + 1, what="the gateway to log the close")

    connect(pg)  # and again, until the user disconnects
    assert pg.session.received == [] and pg.session.error == ""
    pg.fields["message"].value = "drawer"
    press(pg, "Send")
    showing(pg, 1)
    assert pg.session.received == ["reward"]
    press(pg, "Disconnect")
    wait_for(lambda: pg.session.state == "closed", "the end of the session", timeout=TIMEOUT)
    assert pg.session.error == ""
    wait_for(lambda: sockets(gateway, "/ws closed") == closed + 2, what="the gateway to log the close")
    assert sockets(gateway, "/ws opened") == opened + 2
