"""The Playground against real apps on the local gateway (``fal run --local`` runners, the real client):
the form filled programmatically, the calls, the rendered outputs, cancel, 422s, streaming, the code
snippet executed, and the history persisted."""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import os
import struct
import subprocess
import sys

import pytest

from fal_notebook.client import connect
from fal_notebook.errors import InputError, RequestError
from fal_notebook.gateway import client_environment
from fal_notebook.widgets.playground import Playground
from tests.polling import wait_for

from .playground_apps import BADGE, FILE_INFO, LIVE_BADGES, TEXT
from .test_fields import upload
from .test_playground import html_of

TIMEOUT = 60


@pytest.fixture(scope="module")
def text_app(gateway):
    """One runner, so that a second call waits in the queue while the first runs."""
    return gateway.deploy(TEXT, "text-tools", max_concurrency=1)


@pytest.fixture(scope="module")
def badge(gateway):
    return gateway.deploy(BADGE, "badge-maker")


@pytest.fixture(scope="module")
def file_info(gateway):
    return gateway.deploy(FILE_INFO, "file-info")


@pytest.fixture(scope="module")
def live_badges(gateway):
    return gateway.deploy(LIVE_BADGES, "live-badges")


def run(pg: Playground):
    return pg.submit().result(timeout=TIMEOUT)


def test_text_call_renders_the_output_logs_and_status(text_app):
    pg = Playground(text_app)
    assert pg.endpoint_id == "local/text-tools" and pg.local
    assert [value for _, value in pg._picker.options] == ["/", "/count", "/slow", "/slow/cancel", "/stream", "*"]
    assert pg.fields["text"].value == "the cat sat on the mat"  # the example pre-fills the form
    pg.set_values({"text": "hello world", "repeat": 2})
    assert run(pg) == {"text": "hello world hello world", "words": 4} == pg.result
    page = html_of(pg._output_box)
    assert '<div class="fal-pg-text">hello world hello world</div>' in page
    assert "saying 4 words" in pg._log_view.value
    assert "Completed · inference" in pg._status_line.value
    call = pg.history[-1]
    assert call.status == "COMPLETED" and call.request_id and call.arguments == {"text": "hello world", "repeat": 2}


def test_scalar_parameters_travel_as_the_query_string(text_app):
    pg = Playground(text_app, endpoint="/count")
    pg.set_values({"text": "one two three four", "limit": 2})
    assert run(pg) == {"first": ["one", "two"]}


def test_image_output_is_rendered_inline(badge):
    pg = Playground(badge)
    pg.set_values({"text": "from a test", "width": 120})
    output = run(pg)
    image = output["image"]
    assert output["caption"] == "A badge: from a test"
    assert image["url"].startswith("data:image/png;base64,") and image["content_type"] == "image/png"
    png = base64.b64decode(image["url"].split(",", 1)[1])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", png[16:24]) == (120, 64)
    page = html_of(pg._output_box)
    assert f'<img src="{image["url"]}"' in page
    assert '<div class="fal-pg-text">A badge: from a test</div>' in page


def test_an_uploaded_file_reaches_the_app_as_a_data_uri(file_info):
    pg = Playground(file_info)
    content = b"first line\nsecond line\n"
    control = pg.fields["document_url"].control
    upload(control, content, "notes.txt", "text/plain")
    assert "notes.txt" in control.note.value and pg.arguments["document_url"].startswith("data:text/plain;base64,")
    assert run(pg) == {
        "size": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
        "content_type": "text/plain",
        "first_line": "first line",
    }


def test_cancel_a_running_call(text_app):
    pg = Playground(text_app, endpoint="/slow")
    future = pg.submit()
    wait_for(lambda: "waiting started" in pg._log_view.value, "the app to start waiting")
    assert "Running" in pg._status_line.value
    pg._cancel.click()
    with pytest.raises(RequestError) as failure:
        future.result(timeout=TIMEOUT)
    assert failure.value.status_code == 499  # not the {"waited": 30} of a call that ran to its end
    wait_for(lambda: not pg._run.disabled, "the Run button to come back")
    assert pg.history[-1].status == "CANCELLED" and "Cancelled" in pg._status_line.value
    assert "waiting cancelled" in pg._log_view.value
    assert "Cancelled" in pg._message.value and "request id" in pg._message.value


def test_cancel_a_queued_call(text_app):
    busy, waiting = Playground(text_app, endpoint="/slow"), Playground(text_app)
    running = busy.submit()
    wait_for(lambda: "waiting started" in busy._log_view.value, "the first call to run")
    queued = waiting.submit()
    wait_for(lambda: "In queue" in waiting._status_line.value, "the second call to wait in the queue")
    waiting.cancel()
    with pytest.raises(RequestError) as failure:
        queued.result(timeout=TIMEOUT)
    assert failure.value.status_code == 499 and waiting.history[-1].status == "CANCELLED"
    assert not running.done()
    busy.cancel()
    with pytest.raises(RequestError):
        running.result(timeout=TIMEOUT)


def test_a_422_from_the_app_is_shown_on_its_field(text_app):
    pg = Playground(text_app)
    pg.set_values({"text": "a rude remark"})  # the schema allows it: only the app's validator refuses
    with pytest.raises(RequestError) as failure:
        run(pg)
    assert failure.value.status_code == 422
    assert "must be polite" in pg.fields["text"].slot.error.value
    assert "fal-pg-invalid" in pg.fields["text"]._dom_classes
    assert "HTTP 422" in pg._message.value and failure.value.request_id in pg._message.value
    pg.set_values({"text": "a kind remark"})
    assert run(pg)["words"] == 3
    assert "fal-pg-invalid" not in pg.fields["text"]._dom_classes


def test_invalid_input_is_not_sent(text_app):
    pg = Playground(text_app)
    calls = len(pg.history)
    pg.set_values({"text": ""})
    with pytest.raises(InputError, match="text is required"):
        pg.submit()
    assert len(pg.history) == calls and len(Playground(text_app).history) == calls
    assert "is required" in pg.fields["text"].slot.error.value


def test_streaming_shows_partial_outputs(text_app):
    pg = Playground(text_app, endpoint="/stream")
    assert pg.endpoint.streaming
    renders = []
    pg._output_box.observe(lambda change: renders.append(html_of(pg._output_box)), "children")
    pg.set_values({"text": "one two three"})
    assert run(pg) == {"text": "one two three", "words": 3}
    partials = [page for page in renders if "fal-pg-text" in page]
    assert len(partials) >= 3 and ">one<" in partials[0] and ">one two three<" in partials[-1]


@pytest.mark.parametrize(
    "endpoint, values", [("/", {"text": "snippets work", "shout": True}), ("/count", {"text": "a b c", "limit": 1})]
)
def test_the_python_and_curl_snippets_return_what_the_playground_got(text_app, endpoint, values):
    pg = Playground(text_app, endpoint=endpoint)
    pg.set_values(values)
    output = run(pg)
    code = pg.code("Python")
    assert pg.local_url in code and "fal_notebook" not in code
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    assert ast.literal_eval(done.stdout.strip()) == output
    curl = subprocess.run(["sh", "-c", pg.code("cURL")], capture_output=True, text=True, timeout=TIMEOUT)
    assert curl.returncode == 0, curl.stderr
    assert json.loads(curl.stdout) == output


def test_history_is_kept_per_app_and_reloads_into_the_form(text_app):
    first = Playground(text_app)
    first.set_values({"text": "remember me", "repeat": 3, "shout": True})
    run(first)
    again = Playground(connect("local/text-tools"))  # the same app, reached through a client
    call = again.history[-1]
    assert call.arguments == {"text": "remember me", "repeat": 3, "shout": True}
    assert call.output == {"text": "REMEMBER ME REMEMBER ME REMEMBER ME", "words": 6}
    again.select("/count")
    again.load(call)
    assert again.endpoint.path == "/" and again.arguments == call.arguments
    assert again.fields["shout"].value is True


def test_a_realtime_endpoint_shows_its_outputs_errors_and_closes_with_the_widget(gateway, live_badges):
    """A real fal.App's ``@fal.realtime`` endpoints through the gateway: connect, send messages from the
    form, images rendered as they arrive, the app's error shown, the connection closed with the widget."""

    def connect(pg: Playground) -> None:
        pg.connect()
        wait_for(lambda: pg.session.state == "connected", "the connection", timeout=TIMEOUT)

    def sockets(event: str) -> int:
        return gateway.app_log("live-badges").count(f"WebSocket {event}")

    pg = Playground(live_badges, endpoint="/realtime")
    assert {e.path: e.protocol for e in pg.schema.endpoints} == {
        "/": "http",
        "/realtime": "realtime",
        "/frames": "realtime",
        "*": "request",
    }
    assert pg.fields["text"].value == "live"
    connect(pg)
    pg.set_values({"text": "hi"})
    pg.send()
    wait_for(lambda: " 1 received" in pg.session._status.value, "the badge", timeout=TIMEOUT)
    [drawn] = pg.session.received
    assert drawn["caption"] == "Live: hi" and drawn["image"]["url"].startswith("data:image/png;base64,")
    assert f'<img src="{drawn["image"]["url"]}"' in html_of(pg.session.panel)

    pg.select("/frames")  # closes the connection to /realtime
    wait_for(lambda: sockets("/realtime closed") == 1, "the gateway to see /realtime closed", timeout=TIMEOUT)
    connect(pg)
    pg.set_values({"text": "frame", "count": 3})
    pg.send()
    wait_for(lambda: pg.session.state == "closed", "the end of the stream", timeout=TIMEOUT)
    assert [d["caption"] for d in pg.session.received] == ["Live: frame 1", "Live: frame 2", "Live: frame 3"]
    assert html_of(pg.session.panel).count("<img src=") == 3
    # fal ends a server-streaming session after its one message's outputs: a note, not an error
    assert "ended with TIMEOUT" in pg.session.error and "Connect again" in pg.session.error
    assert '<div class="fal-pg-help">' in pg.session._error.value and "Disconnected · 1 sent · 3 received" in (
        pg.session._status.value
    )

    pg.select("/realtime")
    connect(pg)
    pg.set_values({"text": "fail"})
    pg.send()
    wait_for(lambda: pg.session.state == "failed", "the app's error", timeout=TIMEOUT)
    assert "ended with INTERNAL_ERROR: cannot draw 'fail'" in pg.session.error
    assert "Failed · 1 sent · 0 received" in pg.session._status.value
    assert '<div class="fal-pg-error">' in pg.session._error.value

    connect(pg)
    pg.widget.close()
    pg.session.wait(TIMEOUT)
    assert (pg.session.error, pg.session.state) == ("", "closed")
    wait_for(lambda: sockets("/realtime closed") == 3, "the gateway to see the last close", timeout=TIMEOUT)
    assert sockets("/realtime opened") == 3 and sockets("/frames opened") == sockets("/frames closed") == 1


def test_the_realtime_snippet_runs_with_fal_client_and_ours(live_badges):
    pg = Playground(live_badges, endpoint="/realtime")
    pg.set_values({"text": "snippet"})
    env = {**os.environ, **client_environment()}
    done = subprocess.run(
        [sys.executable, "-c", pg.code("Python")], capture_output=True, text=True, timeout=TIMEOUT, env=env
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("'caption': 'Live: snippet'") == 2  # fal_client's answer, then ours
