"""Addresses, keys and headers: which URL and which key each endpoint gets."""

from __future__ import annotations

import json

import pytest

from fal_notebook import protocol
from fal_notebook.backends.base import Deployment
from fal_notebook.client import connect
from fal_notebook.errors import ConfigError
from fal_notebook.protocol import fal_address

from .fakes import KEY, recording, write_gateway_key

pytestmark = pytest.mark.usefixtures("fal_env")


def test_local_endpoint_urls_and_gateway_key(monkeypatch, tmp_path):
    monkeypatch.setenv("FAL_NOTEBOOK_GATEWAY_PORT", "9911")
    monkeypatch.setenv("FAL_KEY", "fal-key-id:fal-key-secret-xyz")
    write_gateway_key(tmp_path)
    transport, seen = recording(body={"request_id": "r1"})
    client = connect("local/echo", transport=transport)
    assert (client.endpoint_id, client.url, client.queue_url) == (
        "local/echo",
        "http://127.0.0.1:9911/local/echo",
        "http://127.0.0.1:9911/queue/local/echo",
    )
    client.run({"prompt": "hi"})
    client.run({"prompt": "hi"}, path="/generate")
    handle = client.submit({"prompt": "hi"}, path="generate")
    assert [str(r.url) for r in seen] == [
        "http://127.0.0.1:9911/local/echo",
        "http://127.0.0.1:9911/local/echo/generate",
        "http://127.0.0.1:9911/queue/local/echo/generate",
    ]
    assert {r.headers["authorization"] for r in seen} == {f"Key {KEY}"}  # the gateway's key, never FAL_KEY
    assert json.loads(seen[0].content) == {"prompt": "hi"}
    assert handle.status_url == "http://127.0.0.1:9911/queue/local/echo/requests/r1/status"


def test_no_key_no_header():
    transport, seen = recording()
    connect("local/echo", transport=transport).run({})
    connect("http://127.0.0.1:8000", transport=transport).run({})
    assert all("authorization" not in r.headers for r in seen)


def test_fal_endpoint_with_fal_key(monkeypatch):
    monkeypatch.setenv("FAL_KEY", "fal-key-id:fal-key-secret-xyz")
    transport, seen = recording(body={"request_id": "r1"})
    client = connect("fal-ai/flux/dev", transport=transport)
    client.run({"prompt": "x"})
    client.submit({"prompt": "x"}, webhook_url="https://hooks.example.com/done", priority="low")
    assert str(seen[0].url) == "https://fal.run/fal-ai/flux/dev"
    assert seen[1].url.copy_with(query=None) == "https://queue.fal.run/fal-ai/flux/dev"
    assert seen[1].url.params["fal_webhook"] == "https://hooks.example.com/done"
    assert seen[1].headers["x-fal-queue-priority"] == "low"
    assert {r.headers["authorization"] for r in seen} == {"Key fal-key-id:fal-key-secret-xyz"}


def test_fal_hosts_from_the_environment(monkeypatch):
    monkeypatch.setenv("FAL_KEY_ID", "id")
    monkeypatch.setenv("FAL_KEY_SECRET", "secret")
    monkeypatch.setenv("FAL_RUN_HOST", "127.0.0.1:8765")
    monkeypatch.setenv("FAL_QUEUE_RUN_HOST", "127.0.0.1:8765/queue")
    transport, seen = recording(body={"request_id": "r1"})
    client = connect("me/app", transport=transport)
    client.run({})
    client.submit({})
    assert [str(r.url) for r in seen] == ["https://127.0.0.1:8765/me/app", "https://127.0.0.1:8765/queue/me/app"]
    assert seen[0].headers["authorization"] == "Key id:secret"


def test_a_fal_deployment_owned_by_local_is_called_on_fal(monkeypatch, tmp_path):
    """The record of a fal deployment names fal, even when its owner is called ``local``."""
    monkeypatch.setenv("FAL_KEY", "fal-key-id:fal-key-secret-xyz")
    monkeypatch.setenv("FAL_RUN_HOST", "127.0.0.1:9443")
    monkeypatch.setenv("FAL_QUEUE_RUN_HOST", "127.0.0.1:9443/queue")
    record = Deployment(
        "words", "fal", "local/words", "https://fal.run/local/words", "https://queue.fal.run/local/words", "ready"
    )
    client = record.client()
    assert (client.url, client.queue_url) == (
        "https://127.0.0.1:9443/local/words",
        "https://127.0.0.1:9443/queue/local/words",
    )
    transport, seen = recording(body={"request_id": "r1"})
    connect(fal_address(record.endpoint_id), transport=transport).submit({})
    assert str(seen[0].url) == "https://127.0.0.1:9443/queue/local/words"
    assert seen[0].headers["authorization"] == "Key fal-key-id:fal-key-secret-xyz"


def test_explicit_key_wins_and_urls_keep_their_layout(monkeypatch):
    monkeypatch.setenv("FAL_KEY", "fal-key-id:fal-key-secret-xyz")
    transport, seen = recording(body={"request_id": "r1"})
    client = connect("https://fal.run/me/app", key="other:key", transport=transport)
    assert client.queue_url == "https://queue.fal.run/me/app"
    client.submit({})
    assert seen[0].headers["authorization"] == "Key other:key"


def test_openapi_is_read_from_the_app_root():
    transport, seen = recording(body={"openapi": "3.1.0", "paths": {}})
    assert connect("me/app/sub", transport=transport).openapi()["openapi"] == "3.1.0"
    assert (seen[0].method, str(seen[0].url)) == ("GET", "https://fal.run/me/app/openapi.json")


def test_bad_input_to_connect():
    with pytest.raises(ConfigError, match="local/<name>"):
        connect("echo")
    with pytest.raises(ConfigError, match="priority"):
        connect("local/echo", transport=recording()[0]).submit({}, priority="urgent")


def test_an_endpoint_path_keeps_its_trailing_slash():
    for target, path in [
        ("local/items/items/", "/items/"),
        ("local/items/items", "/items"),
        ("alice/app/v1/run/", "/v1/run/"),
        ("http://127.0.0.1:8765/local/items/items/", "/items/"),
        ("https://fal.run/alice/app/items/", "/items/"),
    ]:
        address = protocol.resolve_address(target)
        assert address.path == path and address.url.endswith(path) and address.endpoint_id.endswith(path)
    assert protocol.resolve_address("local/items/").path == "/"
