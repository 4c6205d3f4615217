"""The fal target's full queue flow, end to end, with the local gateway standing in for fal.

fal's cloud cannot be reached here; its protocol can. A Deployment record exactly as the fal backend
writes it from ``fal deploy``'s report (owner ``local``, so the gateway's routes match) must give a
client that talks ``https://<FAL_RUN_HOST>/local/<app>`` and ``https://<FAL_QUEUE_RUN_HOST>/local/<app>``
with ``Authorization: Key <FAL_KEY>``. The hosts point at the gateway behind a TLS terminator with a
self-signed certificate, which the client trusts only through ``SSL_CERT_FILE``.
"""

from __future__ import annotations

import asyncio
import json
import os

import pytest
from gateway_apps import WORDS

import fal_notebook
from fal_notebook.backends import deploy
from fal_notebook.backends.fal import deployment_from_report
from fal_notebook.backends.fal_cli import FalRun
from fal_notebook.client import Completed, Queued, RequestError
from tests.gateway_helpers import hold, messages

NAME = "words-on-fal"


@pytest.fixture(scope="module")
def project(gateway):
    project = gateway.capture(WORDS, NAME, min_concurrency=1, max_concurrency=1, keep_alive=300)
    deploy(project, target="local", env="kernel", progress=gateway.progress.append)  # private
    return project


@pytest.fixture(scope="module")
def fal_deployment(project):
    """The record ``FalBackend.deploy`` makes of fal's deploy report (URLs as fal reports them)."""
    run, queue = f"https://fal.run/local/{NAME}", f"https://queue.fal.run/local/{NAME}"
    report = {
        "revision": "rev-1",
        "app_name": NAME,
        "urls": {
            "playground": {"/": f"https://fal.ai/models/local/{NAME}/"},
            "sync": {"/": f"{run}/", "/stream": f"{run}/stream"},
            "async": {"/": f"{queue}/", "/stream": f"{queue}/stream"},
        },
        "log_url": f"https://fal.ai/dashboard/logs?app={NAME}",
        "auth_mode": "private",
    }
    printed = json.dumps({"revision": "rev-1", "app_name": NAME, "status": "deployed"})
    fal_run = FalRun(args=["deploy", NAME, "--output", "json"], returncode=0, lines=[printed], report=report)
    return deployment_from_report(fal_run, project, environment=None)


@pytest.fixture
def on_fal(gateway, tls, monkeypatch):
    """fal's hosts are the terminator's, trusted through SSL_CERT_FILE; FAL_KEY is the gateway's key."""
    for name in ("FAL_KEY_ID", "FAL_KEY_SECRET", "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FAL_RUN_HOST", tls.host)
    monkeypatch.setenv("FAL_QUEUE_RUN_HOST", f"{tls.host}/queue")
    monkeypatch.setenv("SSL_CERT_FILE", str(tls.cert_file))
    monkeypatch.setenv("FAL_KEY", gateway.key)
    tls.seen.clear()
    return tls


def test_the_record_names_fal(fal_deployment):
    assert fal_deployment.target == "fal" and fal_deployment.endpoint_id == f"local/{NAME}"
    assert fal_deployment.url == f"https://fal.run/local/{NAME}"
    assert fal_deployment.queue_url == f"https://queue.fal.run/local/{NAME}"


def sent_keys(tls) -> set[str | None]:
    return {seen.authorization for seen in tls.seen}


def test_full_queue_flow_through_fal_hosts(gateway, fal_deployment, on_fal, gate):
    with fal_deployment.client() as client:
        assert client.url == f"https://{on_fal.host}/local/{NAME}"
        assert client.queue_url == f"https://{on_fal.host}/queue/local/{NAME}"

        held = hold(gateway, client, gate)
        queued = client.submit({"text": "one two three"})
        doomed = client.submit({"text": "never"})
        assert queued.status() == Queued(position=0) and doomed.status() == Queued(position=1)
        assert doomed.cancel() == "CANCELLATION_REQUESTED"
        with pytest.raises(RequestError) as caught:
            doomed.result(timeout=30)
        assert caught.value.status_code == 499

        gate.touch()
        assert held.result(timeout=60) == {"released": True}
        events = list(queued.iter_events(logs=True, interval=0.02))
        assert isinstance(events[-1], Completed)
        lines = [line for event in events if not isinstance(event, Queued) for line in messages(event.logs)]
        assert lines == ["word 0: one", "word 1: two", "word 2: three", "counted"]
        assert queued.result(timeout=60) == {"words": 3}

        running = hold(gateway, client, gate.with_name(gate.name + "-never"))
        assert running.cancel() == "CANCELLATION_REQUESTED"
        with pytest.raises(RequestError) as caught:
            running.result(timeout=60)
        assert caught.value.status_code == 499

        assert client.run({"text": "a b", "repeat": 2}) == {"words": 4}
        assert list(client.stream({"text": "red green"})) == [{"word": "red"}, {"word": "green"}]
        assert "/hold" in client.openapi()["paths"]

    # Everything went to fal's hosts (through TLS), to the app's routes, with FAL_KEY.
    assert sent_keys(on_fal) == {f"Key {os.environ['FAL_KEY']}"}
    assert all(seen.path.startswith((f"/local/{NAME}", f"/queue/local/{NAME}")) for seen in on_fal.seen)
    assert {"POST", "GET", "PUT"} <= {seen.method for seen in on_fal.seen}
    status_path = f"/queue/local/{NAME}/requests/{queued.request_id}/status"
    assert any(seen.path == status_path for seen in on_fal.seen)  # the queue's URLs lead back through it


def test_async_flow_through_fal_hosts(fal_deployment, on_fal):
    async def flow():
        client = fal_deployment.client()
        try:
            handle = await client.submit_async({"text": "async on fal"})
            events = [event async for event in handle.iter_events(interval=0.02)]
            return events, await handle.result(timeout=60), await client.run_async({"text": "x"})
        finally:
            await client.aclose()

    events, result, ran = asyncio.run(flow())
    assert isinstance(events[-1], Completed) and result == {"words": 3} and ran == {"words": 1}
    assert sent_keys(on_fal) == {f"Key {os.environ['FAL_KEY']}"}


def test_playground_calls_the_fal_deployment(fal_deployment, on_fal):
    playground = fal_notebook.Playground(fal_deployment)
    try:
        playground.set_values({"text": "from the playground"})
        assert playground.submit().result(timeout=60) == {"words": 3}
    finally:
        playground.client.close()
    assert playground.result == {"words": 3} and playground.history[-1].status == "COMPLETED"
    assert "fal_client" in playground.code("Python")  # fal code, not the gateway's URL
    assert any(seen.path.startswith(f"/queue/local/{NAME}") for seen in on_fal.seen)
    assert sent_keys(on_fal) == {f"Key {os.environ['FAL_KEY']}"}


def test_the_key_sent_is_fal_key_not_the_gateway_key(fal_deployment, on_fal, monkeypatch):
    """Another FAL_KEY than the gateway's key is sent as it is, and refused by the private app."""
    monkeypatch.setenv("FAL_KEY", "fal-key-id:fal-key-secret-not-the-gateways")
    with fal_deployment.client() as client, pytest.raises(RequestError) as caught:
        client.run({"text": "x"})
    assert caught.value.status_code == 401
    assert "FAL_KEY" in str(caught.value) and "fal-key-secret-not-the-gateways" not in str(caught.value)
    assert sent_keys(on_fal) == {"Key fal-key-id:fal-key-secret-not-the-gateways"}


def test_tls_is_verified(fal_deployment, on_fal, monkeypatch):
    """Without SSL_CERT_FILE the self-signed certificate is refused, at once: nothing reaches the app."""
    monkeypatch.delenv("SSL_CERT_FILE")
    with fal_deployment.client() as client, pytest.raises(RequestError) as caught:
        client.run({"text": "x"})
    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value) and "tries" not in str(caught.value)
    assert on_fal.seen == []
