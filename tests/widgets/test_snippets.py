"""Code snippets for exactly the form's values."""

from __future__ import annotations

import ast
import json
import shlex

import pytest

from fal_notebook.widgets.snippets import py_literal, snippets

pytestmark = pytest.mark.usefixtures("fal_env")  # fal's hosts as fal_client's defaults: no FAL_RUN_HOST

ARGS = {
    "prompt": "it's a cat",
    "steps": 4,
    "enhance": True,
    "seed": None,
    "sizes": [{"width": 64, "height": 64}, {"width": 128, "height": 128}],
    "note": "x" * 70,
}


def test_python_for_fal_uses_fal_client():
    code = snippets("alice/painter", "/", ARGS)["Python"]
    tree = ast.parse(code)  # valid Python
    call = tree.body[1].value
    assert ast.unparse(call.func) == "fal_client.subscribe"
    assert ast.literal_eval(call.args[0]) == "alice/painter"
    assert ast.literal_eval(call.keywords[0].value) == ARGS
    assert "path=" not in code and "with_logs=True" in code


def test_python_path_and_query():
    code = snippets("alice/painter", "/count?text=a+b", {})["Python"]
    call = ast.parse(code).body[1].value
    assert {k.arg: ast.literal_eval(k.value) for k in call.keywords}["path"] == "/count?text=a+b"


def test_python_for_the_local_gateway_uses_plain_http():
    code = snippets("local/painter", "/edit", ARGS, local_url="http://127.0.0.1:9999/local/painter")["Python"]
    tree = ast.parse(code)
    assert "fal_client" not in code and "import httpx" in code and "Authorization" not in code
    post = tree.body[1].value
    assert ast.literal_eval(post.args[0]) == "http://127.0.0.1:9999/local/painter/edit"
    assert ast.literal_eval(post.keywords[0].value) == ARGS


def test_local_snippets_read_the_gateway_key_from_its_file():
    found = snippets("local/p", "/", {}, local_url="http://h/local/p", key_file="/home/u/gateway/key")
    ast.parse(found["Python"])
    assert 'key = Path("/home/u/gateway/key").read_text().strip()' in found["Python"]
    assert 'headers={"Authorization": f"Key {key}"}' in found["Python"]
    assert 'readFileSync("/home/u/gateway/key", "utf8")' in found["JavaScript"]
    assert "Authorization: Key $(cat '/home/u/gateway/key')" in found["cURL"]


def test_javascript_for_fal_and_local():
    code = snippets("alice/painter", "/edit", ARGS)["JavaScript"]
    assert 'import { fal } from "@fal-ai/client";' in code and 'fal.subscribe("alice/painter/edit"' in code
    body = code[code.index("input: ") + 7 : code.index(",\n  logs: true")]
    assert json.loads(body) == ARGS
    local = snippets("local/p", "/", ARGS, local_url="http://127.0.0.1:1/local/p")["JavaScript"]
    assert 'fetch("http://127.0.0.1:1/local/p"' in local and "@fal-ai/client" not in local


def test_curl_is_one_shell_command_with_the_exact_json():
    code = snippets("alice/painter", "/", ARGS)["cURL"]
    words = shlex.split(code.replace("\\\n", " "))
    assert words[:4] == ["curl", "-X", "POST", "https://fal.run/alice/painter"]
    assert "Authorization: Key $FAL_KEY" in words
    assert json.loads(words[words.index("-d") + 1]) == ARGS  # the apostrophe survived quoting


def test_streaming_snippets():
    python = snippets("alice/chat", "/stream", {"q": 1}, streaming=True)["Python"]
    ast.parse(python)
    assert "fal_client.stream(" in python and 'path="/stream"' in python
    assert 'fal.stream("alice/chat", {' in snippets("alice/chat", "/stream", {}, streaming=True)["JavaScript"]
    assert snippets("alice/chat", "/stream", {}, streaming=True)["cURL"].startswith("curl -N ")


def test_py_literal_round_trips_and_wraps():
    text = py_literal(ARGS)
    assert ast.literal_eval(text) == ARGS and max(map(len, text.splitlines())) <= 88
    assert py_literal({"a": 1, "b": [True, None, "it's"]}) == '{"a": 1, "b": [True, None, "it\'s"]}'


def test_curl_for_fal_follows_fal_run_host(monkeypatch):
    assert shlex.split(snippets("alice/painter", "/edit", {})["cURL"])[3] == "https://fal.run/alice/painter/edit"
    monkeypatch.setenv("FAL_RUN_HOST", "fal.example.test")
    assert shlex.split(snippets("alice/painter", "/", {})["cURL"])[3] == "https://fal.example.test/alice/painter"


def test_realtime_snippets_use_fal_clients_realtime_and_ours():
    found = snippets("alice/live", "/realtime", {"prompt": "a cat"}, protocol="realtime")
    tree = ast.parse(found["Python"])
    opened = [ast.unparse(node.items[0].context_expr) for node in tree.body if isinstance(node, ast.With)]
    assert opened == [
        "fal_client.realtime('alice/live', path='/realtime')",
        "fal_notebook.connect('alice/live').realtime('/realtime')",
    ]
    assert found["Python"].count('connection.send({"prompt": "a cat"})') == 2
    js = found["JavaScript"]
    assert 'fal.realtime.connect("alice/live", {\n  path: "/realtime",' in js
    assert json.loads(js[js.index("connection.send(") + 16 : js.rindex(");")]) == {"prompt": "a cat"}
    assert "curl" not in found["cURL"] and "speaks no websocket" in found["cURL"]


def test_local_realtime_snippets_need_fal_env_and_no_jwt():
    found = snippets(
        "local/live", "/realtime", {"prompt": "a cat"}, local_url="http://127.0.0.1:1/local/live", protocol="realtime"
    )
    ast.parse(found["Python"])
    assert "%fal_env" in found["Python"]
    assert 'fal_client.realtime("local/live", path="/realtime", use_jwt=False)' in found["Python"]
    assert "fixed to fal.run" in found["JavaScript"] and "fal.realtime" not in found["JavaScript"]


def test_websocket_snippets_send_text():
    text = snippets("alice/live", "/chat", "hello", protocol="websocket")["Python"]
    assert 'fal_client.ws_connect("alice/live", path="/chat")' in text and 'connection.send("hello")' in text
    assert 'fal_notebook.connect("alice/live").websocket("/chat")' in text and "import json" not in text
    as_json = snippets("alice/live", "/chat", {"a": 1}, protocol="websocket")["Python"]
    ast.parse(as_json)
    assert 'connection.send(json.dumps({"a": 1}))' in as_json and as_json.startswith("import json\n")
    assert "realtime endpoints only" in snippets("alice/live", "/chat", "x", protocol="websocket")["JavaScript"]
