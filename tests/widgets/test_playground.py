"""The Playground against a fake client with the client's interface (no kernel, no network)."""

from __future__ import annotations

import ast

import ipywidgets as W
import pytest

from fal_notebook.backends.base import Deployment
from fal_notebook.errors import FalNotebookError, InputError, RequestError
from fal_notebook.protocol import fal_address, resolve_address
from fal_notebook.widgets.fields import data_uri
from fal_notebook.widgets.playground import Playground, default_uploader

from .. import sample_apps
from .fake_client import FakeClient, FakeHandle, request_error

IMAGES = {
    "images": [{"url": "https://cdn.example/out.png", "content_type": "image/png", "width": 8, "height": 8}],
    "seed": 7,
    "caption": "a cat, drawn",
}


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("FAL_NOTEBOOK_HOME", str(tmp_path))
    monkeypatch.delenv("FAL_KEY", raising=False)
    return tmp_path


@pytest.fixture
def client():
    return FakeClient(sample_apps.fal_document(sample_apps.ImageApp), lambda path, args: IMAGES)


def html_of(widget) -> str:
    """All HTML shown inside a widget tree."""
    parts = [widget.value] if isinstance(widget, W.HTML) else []
    for child in getattr(widget, "children", ()):
        parts.append(html_of(child))
    return "\n".join(parts)


def run(playground: Playground):
    return playground.submit().result(timeout=10)


def test_layout_picker_and_fields(client):
    pg = Playground(client)
    assert isinstance(pg.widget, W.VBox) and "fal-pg" in pg.widget._dom_classes
    assert [value for _, value in pg._picker.options] == ["/", "/count", "*"]  # "*": any request
    assert list(pg.fields)[:2] == ["prompt", "image_url"] and "debug" not in pg.fields
    assert pg.fields["prompt"].value == "a cat in a hat"
    assert pg._tabs.titles == ("Result", "Code", "History")
    bundle = pg._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == pg.widget.model_id
    assert bundle["text/plain"] == "Playground('alice/painter', endpoint='/')"


def test_run_sends_the_minimal_input_and_renders_the_output(client):
    pg = Playground(client)
    pg.set_values({"prompt": "a dog", "steps": 4})
    output = run(pg)
    assert output == IMAGES and pg.result == IMAGES
    assert client.calls == [("/", {"prompt": "a dog", "image_url": "https://example.com/cat.png", "steps": 4})]
    page = html_of(pg._output_box)
    assert '<img src="https://cdn.example/out.png"' in page and "a cat, drawn" in page
    assert (
        "Completed · inference 0.25 s · total" in pg._status_line.value
        and "fal-pg-status-completed" in pg._status_line.value
    )
    logs = pg._log_view.value
    assert "12:00:01 loading model\n12:00:02 step 1/2\n12:00:03 done" in logs
    assert not pg._run.disabled and pg._cancel.disabled
    (call,) = pg.history
    assert (call.status, call.request_id, call.arguments["prompt"]) == ("COMPLETED", "req-1", "a dog")
    assert call.metrics == {"inference_time": 0.25} and call.duration is not None


def test_a_calls_outcome_is_published_in_one_step(client):
    """Whoever sees a new ``.result`` also sees the call in ``.history``, with no call running."""
    seen = []

    class Watched(Playground):
        def __setattr__(self, name, value):
            if name == "result" and value is not None:
                seen.append([call.status for call in self.history] + [self._running])
            super().__setattr__(name, value)

    pg = Watched(client)
    assert run(pg) == IMAGES == pg.result
    assert seen == [["COMPLETED", None]]


def test_invalid_values_are_marked_and_nothing_is_sent(client):
    pg = Playground(client)
    pg.set_values({"prompt": "", "image_url": "https://x/y.png"})
    pg.fields["sizes"].value = [{"width": 100}]
    pg.fields["sizes"].control.slots[0].control.rows["width"].control.input.value = 65
    pg.fields["seed"].value = 5
    with pytest.raises(InputError, match="prompt is required"):
        pg.submit()
    assert client.calls == []
    assert "is required" in pg.fields["prompt"].slot.error.value
    assert "fal-pg-invalid" in pg.fields["prompt"]._dom_classes
    pg.set_values({"prompt": "ok"})
    run(pg)
    assert "fal-pg-invalid" not in pg.fields["prompt"]._dom_classes
    assert client.calls[0][1]["sizes"] == [{"width": 65}]


def test_run_button_shows_invalid_input_without_raising(client):
    pg = Playground(client)
    pg.set_values({"prompt": ""})
    pg._run.click()
    assert client.calls == [] and "is required" in pg.fields["prompt"].slot.error.value


def test_a_422_is_mapped_onto_the_fields(client):
    def reject(path, args):
        raise request_error(
            422,
            {
                "detail": [
                    {"loc": ["body", "prompt"], "msg": "String should not mention dogs", "type": "value_error"},
                    {"loc": ["body", "size", "width"], "msg": "too wide for this model", "type": "value_error"},
                    {"loc": ["body", "unknown"], "msg": "the server knows more", "type": "value_error"},
                ]
            },
            "req-1",
        )

    client.respond = reject
    pg = Playground(client)
    with pytest.raises(RequestError):
        run(pg)
    assert "String should not mention dogs" in pg.fields["prompt"].slot.error.value
    assert "too wide" in pg.fields["size"].control.rows["width"].slot.error.value
    assert pg.fields["size"].body.selected_index == 0  # opened to show it
    message = pg._message.value
    assert "HTTP 422" in message and "unknown the server knows more" in message and "request id req-1" in message
    assert pg.history[-1].status == "FAILED" and "Failed" in pg._status_line.value


def test_other_errors_show_status_detail_and_request_id(client):
    def crash(path, args):
        raise request_error(500, "Internal Server Error", "req-1")

    client.respond = crash
    pg = Playground(client)
    with pytest.raises(RequestError):
        run(pg)
    assert "the app failed (HTTP 500): Internal Server Error. (request id req-1)" in pg._message.value


def test_run_does_not_block_and_cancel_cancels_the_request(client):
    client.gate = __import__("threading").Event()
    pg = Playground(client)
    future = pg.submit()
    assert client.started.wait(5)
    assert not future.done() and pg._run.disabled and not pg._cancel.disabled  # the kernel is free
    assert "Running" in pg._status_line.value or "queue" in pg._status_line.value
    with pytest.raises(FalNotebookError, match="already running"):
        pg.submit()
    pg._cancel.click()
    with pytest.raises(RequestError):
        future.result(timeout=5)
    assert client.cancels == ["req-1"]
    assert pg.history[-1].status == "CANCELLED" and "Cancelled" in pg._status_line.value
    assert pg.result is None


def test_a_call_the_app_finishes_despite_cancel_counts_as_completed(client, monkeypatch):
    monkeypatch.setattr(FakeHandle, "cancel", lambda handle: client.cancels.append(handle.request_id))
    client.gate = __import__("threading").Event()
    pg = Playground(client)
    future = pg.submit()
    assert client.started.wait(5)
    pg.cancel()
    client.gate.set()
    assert future.result(timeout=5) == IMAGES == pg.result
    assert client.cancels == ["req-1"] and pg.history[-1].status == "COMPLETED"
    assert "finished the call before the cancellation reached it" in pg._message.value
    assert "a cat, drawn" in html_of(pg._output_box)


def test_query_parameter_endpoint(client):
    pg = Playground(client, endpoint="/count")
    assert list(pg.fields) == ["text", "limit", "exact"]
    pg.set_values({"text": "a b", "exact": True})
    run(pg)
    assert client.calls == [("/count?text=a+b&exact=true", {})]


def test_endpoint_picker_switches_the_form(client):
    pg = Playground(client)
    pg._picker.value = "/count"
    assert pg.endpoint.path == "/count" and list(pg.fields) == ["text", "limit", "exact"]
    pg.select("/")
    assert pg._picker.value == "/" and "prompt" in pg.fields
    with pytest.raises(FalNotebookError, match="no endpoint"):
        pg.select("/nope")


def test_streaming_endpoint_shows_partial_outputs():
    client = FakeClient(
        sample_apps.fal_document(sample_apps.ChatApp),
        lambda path, args: iter([{"answer": "Ray"}, {"answer": "Rayleigh scattering"}]),
    )
    pg = Playground(client, endpoint="/stream")
    assert pg.endpoint.streaming
    assert run(pg) == {"answer": "Rayleigh scattering"}
    assert client.calls == [("/stream", {"question": "why is the sky blue?"})]
    assert "Rayleigh scattering" in html_of(pg._output_box)


def test_set_values_errors_name_the_field(client):
    pg = Playground(client)
    with pytest.raises(InputError, match="no field 'promt'"):
        pg.set_values({"promt": "x"})
    with pytest.raises(InputError, match="style: must be one of"):
        pg.set_values({"style": "oil"})


def test_code_tab_follows_the_form(client):
    pg = Playground(client)
    pg._tabs.selected_index = 1
    assert "fal_client.subscribe" in pg._code_view.value
    pg.fields["prompt"].control.input.value = "typed into the form"
    assert "typed into the form" in pg._code_view.value
    call = ast.parse(pg.code("Python")).body[1].value
    assert ast.literal_eval(call.keywords[0].value) == pg.arguments
    pg._language.value = "cURL"
    assert "curl -X POST" in pg._code_view.value
    pg.set_values({"prompt": ""})
    assert "Fix the form" in pg._code_view.value and "prompt is required" in pg._code_view.value


def test_history_reloads_into_the_form_and_persists(client, home):
    pg = Playground(client)
    pg.set_values({"prompt": "first", "style": "anime"})
    run(pg)
    pg.set_values({"prompt": "second", "image_url": "https://x/y.png"}, reset=True)
    run(pg)
    assert [c.arguments["prompt"] for c in pg.history] == ["first", "second"]
    assert pg.fields["style"].value == "photo"  # reset went back to defaults
    entries = pg._history_box.children
    assert len(entries) == 2 and "second" in entries[0].children[0].value  # newest first
    entries[1].children[1].click()  # "Load" on the first call
    assert pg.fields["prompt"].value == "first" and pg.fields["style"].value == "anime"
    again = Playground(FakeClient(client.document, client.respond))
    assert [c.arguments["prompt"] for c in again.history] == ["first", "second"]
    assert (home / "history" / "alice_painter.json").is_file()


def test_deployment_on_the_local_gateway(monkeypatch, home):
    client = FakeClient(sample_apps.fal_document(sample_apps.ImageApp), lambda p, a: IMAGES, endpoint_id="local/p")
    deployment = Deployment(
        name="painter",
        target="local",
        endpoint_id="local/painter",
        url="http://127.0.0.1:4321/local/painter",
        queue_url="http://127.0.0.1:4321/queue/local/painter",
        status="ready",
    )
    monkeypatch.setattr(Deployment, "client", lambda self, key=None: client)
    pg = deployment.playground()
    assert pg.name == "painter" and pg.local_url == "http://127.0.0.1:4321/local/painter"
    code = pg.code("Python")
    assert "http://127.0.0.1:4321/local/painter" in code and "fal_client" not in code and "Key" not in code
    key_file = home / "gateway" / "key"
    key_file.parent.mkdir()
    key_file.write_text("id:secret-of-the-gateway")
    code = pg.code("Python")
    assert str(key_file) in code and "secret-of-the-gateway" not in code
    assert pg.uploader is data_uri


def test_a_fal_deployment_owned_by_local_shows_fal_code(monkeypatch, home):
    client = FakeClient(
        sample_apps.fal_document(sample_apps.ImageApp), lambda p, a: IMAGES, endpoint_id="local/painter"
    )
    deployment = Deployment(
        name="painter",
        target="fal",
        endpoint_id="local/painter",
        url="https://fal.run/local/painter",
        queue_url="https://queue.fal.run/local/painter",
        status="ready",
    )
    monkeypatch.setattr(Deployment, "client", lambda self, key=None: client)
    pg = deployment.playground()
    assert not pg.local and pg.local_url is None
    code = pg.code("Python")
    assert "fal_client" in code and '"local/painter"' in code and "127.0.0.1" not in code


def test_not_a_client():
    with pytest.raises(FalNotebookError, match="needs a Deployment"):
        Playground(object())


def test_default_uploader(fal_env, monkeypatch):
    import fal_notebook.uploads

    assert default_uploader(resolve_address("local/x")) is data_uri
    assert default_uploader(resolve_address("alice/x")) is data_uri  # no fal credentials
    monkeypatch.setenv("FAL_KEY", "id:secret-value")
    uploads = []
    monkeypatch.setattr(
        fal_notebook.uploads,
        "upload_file",
        lambda data, ctype, file_name: uploads.append((data, ctype, file_name)) or "https://v3/x",
    )
    assert default_uploader(resolve_address("alice/x"))(b"1", "image/png", "a.png") == "https://v3/x"
    assert uploads == [(b"1", "image/png", "a.png")]
    assert default_uploader(resolve_address("local/x")) is data_uri  # the gateway's apps get data: URIs
    # A fal app whose owner is called "local" is on fal: its files go to fal's storage.
    assert default_uploader(fal_address("local/painter")) is not data_uri


def test_a_fal_deployment_owned_by_local_uploads_to_fal(monkeypatch, home):
    client = FakeClient(
        sample_apps.fal_document(sample_apps.ImageApp), lambda p, a: IMAGES, endpoint_id="local/painter"
    )
    deployment = Deployment(
        name="painter",
        target="fal",
        endpoint_id="local/painter",
        url="https://fal.run/local/painter",
        queue_url="https://queue.fal.run/local/painter",
        status="ready",
    )
    monkeypatch.setattr(Deployment, "client", lambda self, key=None: client)
    monkeypatch.setenv("FAL_KEY", "id:secret-value")
    assert Playground(deployment).uploader is not data_uri
    local = Deployment("painter", "local", "local/painter", "http://127.0.0.1:4321/local/painter", "", "ready")
    assert Playground(local).uploader is data_uri


def test_an_app_without_a_readable_schema_gets_the_form_for_any_request():
    def answer(path, call):
        method, options = call
        return {"method": method, "path": path, **{k: v for k, v in options.items() if k != "files"}}

    no_schema = FakeClient({}, answer)
    no_schema.openapi = lambda: (_ for _ in ()).throw(request_error(404, "Not Found"))
    pg = Playground(no_schema)
    assert pg.endpoint.path == "*" and "HTTP 404" in pg.schema_note
    pg.set_values({"method": "PUT", "path": "/things/1", "query": "a=1", "json": {"x": 1}})
    assert pg.submit().result(timeout=10) == {"method": "PUT", "path": "/things/1", "params": "a=1", "json": {"x": 1}}
    pg.set_values({"json": {"x": 1}, "form": {"a": "b"}})
    with pytest.raises(InputError, match="either a JSON body or form fields"):
        pg.submit()  # nothing is sent
    assert "either a JSON body" in pg._message.value
    pg.set_values(
        {"method": "POST", "path": "/up", "form": {"a": 1}, "files": [data_uri(b"x", "text/plain")]}, reset=True
    )
    assert pg.submit().result(timeout=10)["data"] == {"a": "1"}
    assert no_schema.calls[-1][1]["files"] == [("file", ("upload", b"x", "text/plain"))]

    broken = FakeClient(
        {"paths": {"/": {"post": {"requestBody": {"content": {"application/json": {"schema": 1}}}}}}}, answer
    )
    assert "cannot be read" in Playground(broken).schema_note
    refused = FakeClient({}, answer)
    refused.openapi = lambda: (_ for _ in ()).throw(request_error(401, "No key"))
    with pytest.raises(RequestError):
        Playground(refused)  # the key, not the app: said as it is
