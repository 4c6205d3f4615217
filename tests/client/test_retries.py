"""Retries: what is tried again, how often, with what back-off, and what is final."""

from __future__ import annotations

import httpx
import pytest

from fal_notebook.client import RequestError, RequestTimeoutError, RetryPolicy, connect

from .fakes import NO_WAIT, scripted

pytestmark = pytest.mark.usefixtures("fal_env")


@pytest.mark.parametrize("status", [408, 409, 429, 502, 503, 504])
def test_retried_then_answered(status):
    transport, seen = scripted(status, status, httpx.Response(200, json={"ok": 1}))
    assert connect("local/echo", transport=transport, retry=NO_WAIT).run({}) == {"ok": 1}
    assert len(seen) == 3


@pytest.mark.parametrize("status", [400, 401, 404, 422, 500])
def test_not_retried(status):
    transport, seen = scripted(status, 200)
    with pytest.raises(RequestError) as info:
        connect("local/echo", transport=transport, retry=NO_WAIT).run({})
    assert (info.value.status_code, len(seen)) == (status, 1)


def test_an_apps_own_503_is_not_retried():
    transport, seen = scripted(httpx.Response(503, json={"detail": "busy"}, headers={"x-fal-request-id": "r9"}))
    with pytest.raises(RequestError) as info:
        connect("local/echo", transport=transport, retry=NO_WAIT).run({})
    assert (len(seen), info.value.request_id) == (1, "r9")


def test_retries_are_bounded_and_back_off(monkeypatch):
    waits: list[float] = []
    monkeypatch.setattr("fal_notebook.client.time.sleep", waits.append)
    transport, seen = scripted(503)
    policy = RetryPolicy(attempts=5, base_delay=1.0, max_delay=3.0)
    with pytest.raises(RequestError) as info:
        connect("local/echo", transport=transport, retry=policy).run({})
    assert len(seen) == 5 and len(waits) == 4
    assert 0.5 <= waits[0] <= 1.5 and 1.0 <= waits[1] <= 3.0 and all(w <= 3.0 for w in waits)
    assert "HTTP 503" in str(info.value) and "5 tries" in str(info.value)


def test_transport_errors_are_retried_then_explained():
    transport, seen = scripted(httpx.ConnectError("connection refused"))
    with pytest.raises(RequestError) as info:
        connect("local/echo", transport=transport, retry=RetryPolicy(attempts=3, base_delay=0)).run({})
    assert len(seen) == 3 and info.value.status_code is None
    assert "could not reach http://127.0.0.1:8765/local/echo" in str(info.value)
    assert "fal-notebook gateway start" in str(info.value)


def test_a_callers_timeout_is_not_retried():
    transport, seen = scripted(httpx.ReadTimeout("slow"))
    with pytest.raises(RequestTimeoutError, match="no answer within 2 s"):
        connect("local/echo", transport=transport, retry=NO_WAIT).run({}, timeout=2)
    assert len(seen) == 1
    assert seen[0].extensions["timeout"]["read"] == 2
