"""fal's protocol as plain functions: addresses, keys, retry policy, statuses, log windows, SSE, errors."""

from __future__ import annotations

import ssl

import httpx
import pytest

from fal_notebook.errors import ConfigError
from fal_notebook.protocol import (
    EventFilter,
    RetryPolicy,
    cancel_answer,
    default_key,
    fal_address,
    render_location,
    request_error,
    resolve_address,
    retry_wait,
)
from fal_notebook.wire import Completed, InProgress, Queued

pytestmark = pytest.mark.usefixtures("fal_env")


# -- addresses ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "target, endpoint_id, url, queue_url, kind",
    [
        (
            "local/echo",
            "local/echo",
            "http://127.0.0.1:8765/local/echo",
            "http://127.0.0.1:8765/queue/local/echo",
            "local",
        ),
        (
            "local/echo/generate",
            "local/echo/generate",
            "http://127.0.0.1:8765/local/echo/generate",
            "http://127.0.0.1:8765/queue/local/echo/generate",
            "local",
        ),
        ("fal-ai/flux", "fal-ai/flux", "https://fal.run/fal-ai/flux", "https://queue.fal.run/fal-ai/flux", "fal"),
        (
            "fal-ai/flux/dev",
            "fal-ai/flux/dev",
            "https://fal.run/fal-ai/flux/dev",
            "https://queue.fal.run/fal-ai/flux/dev",
            "fal",
        ),
        (
            "workflows/me/flow/run",
            "workflows/me/flow/run",
            "https://fal.run/workflows/me/flow/run",
            "https://queue.fal.run/workflows/me/flow/run",
            "fal",
        ),
        (
            "http://127.0.0.1:9000/local/echo",
            "local/echo",
            "http://127.0.0.1:9000/local/echo",
            "http://127.0.0.1:9000/queue/local/echo",
            "local",
        ),
        (
            "http://127.0.0.1:9000/queue/local/echo/gen",
            "local/echo/gen",
            "http://127.0.0.1:9000/local/echo/gen",
            "http://127.0.0.1:9000/queue/local/echo/gen",
            "local",
        ),
        ("https://fal.run/me/app", "me/app", "https://fal.run/me/app", "https://queue.fal.run/me/app", "fal"),
        (
            "https://queue.fal.run/me/app/sub",
            "me/app/sub",
            "https://fal.run/me/app/sub",
            "https://queue.fal.run/me/app/sub",
            "fal",
        ),
        (
            "http://127.0.0.1:8000",
            "http://127.0.0.1:8000",
            "http://127.0.0.1:8000",
            "http://127.0.0.1:8000/queue",
            "url",
        ),
        (
            "https://gpu.example.com/local/echo",
            "local/echo",
            "https://gpu.example.com/local/echo",
            "https://gpu.example.com/queue/local/echo",
            "url",
        ),
    ],
)
def test_addresses(target, endpoint_id, url, queue_url, kind):
    address = resolve_address(target)
    found = (address.endpoint_id, address.url, address.queue_url, address.kind)
    assert found == (endpoint_id, url, queue_url, kind)


def test_the_app_root_excludes_the_endpoint_path():
    address = resolve_address("fal-ai/flux/dev")
    assert (address.app_url, address.app_queue_url, address.path) == (
        "https://fal.run/fal-ai/flux",
        "https://queue.fal.run/fal-ai/flux",
        "/dev",
    )


def test_environment_overrides(monkeypatch):
    monkeypatch.setenv("FAL_NOTEBOOK_GATEWAY_PORT", "9123")
    assert resolve_address("local/a").queue_url == "http://127.0.0.1:9123/queue/local/a"
    monkeypatch.setenv("FAL_RUN_HOST", "run.example.org")
    assert resolve_address("o/a").url == "https://run.example.org/o/a"
    assert resolve_address("o/a").queue_url == "https://queue.run.example.org/o/a"
    monkeypatch.setenv("FAL_QUEUE_RUN_HOST", "127.0.0.1:8765/queue")
    assert resolve_address("o/a").queue_url == "https://127.0.0.1:8765/queue/o/a"
    assert resolve_address("https://run.example.org/o/a/x").queue_url == "https://127.0.0.1:8765/queue/o/a/x"


def test_a_fal_endpoint_whose_owner_is_local_stays_on_fal(monkeypatch):
    monkeypatch.setenv("FAL_RUN_HOST", "127.0.0.1:9443")
    monkeypatch.setenv("FAL_QUEUE_RUN_HOST", "127.0.0.1:9443/queue")
    address = fal_address("local/words/count")
    assert (address.kind, address.endpoint_id, address.path) == ("fal", "local/words/count", "/count")
    assert (address.url, address.queue_url) == (
        "https://127.0.0.1:9443/local/words/count",
        "https://127.0.0.1:9443/queue/local/words/count",
    )
    assert resolve_address("local/words").kind == "local"  # an endpoint id alone means the gateway
    with pytest.raises(ConfigError, match="an app on fal"):
        fal_address("words")


@pytest.mark.parametrize("bad", ["echo", "", "  ", "local/", "a b/c", "ftp://host/x", "https://fal.run/owner"])
def test_bad_endpoints_say_what_is_accepted(bad):
    with pytest.raises(ConfigError) as info:
        resolve_address(bad)
    assert "local/<name>" in str(info.value) or "fal.run/<owner>/<app>" in str(info.value)


def test_bad_gateway_port(monkeypatch):
    monkeypatch.setenv("FAL_NOTEBOOK_GATEWAY_PORT", "eighty")
    with pytest.raises(ConfigError, match="FAL_NOTEBOOK_GATEWAY_PORT"):
        resolve_address("local/a")


# -- keys -----------------------------------------------------------------------------------------
def test_default_keys(monkeypatch, tmp_path):
    monkeypatch.setenv("FAL_KEY_ID", "fal-id")
    monkeypatch.setenv("FAL_KEY_SECRET", "fal-secret")
    assert default_key(resolve_address("o/a")) == "fal-id:fal-secret"
    monkeypatch.setenv("FAL_KEY", "the-key:its-secret")
    assert default_key(resolve_address("o/a")) == "the-key:its-secret"
    assert default_key(resolve_address("https://fal.run/o/a")) == "the-key:its-secret"
    # fal's key goes to fal only: not to the local gateway, nor to any other server
    assert default_key(resolve_address("local/a")) is None
    assert default_key(resolve_address("http://127.0.0.1:8000")) is None
    assert default_key(resolve_address("https://gpu.example.com/local/a")) is None
    key_file = tmp_path / "home" / "gateway" / "key"
    key_file.parent.mkdir(parents=True)
    key_file.write_text("gw-id:gw-secret\n")
    assert default_key(resolve_address("local/a")) == "gw-id:gw-secret"
    assert default_key(resolve_address("http://localhost:8765/local/a")) == "gw-id:gw-secret"


# -- retries --------------------------------------------------------------------------------------
def _response(status: int, **headers: str) -> httpx.Response:
    return httpx.Response(status, headers=headers, request=httpx.Request("GET", "http://x/"))


@pytest.mark.parametrize("status", [408, 409, 429, 502, 503, 504])
def test_retried_statuses(status):
    assert retry_wait(RetryPolicy(), 1, response=_response(status)) is not None


@pytest.mark.parametrize("status", [200, 202, 400, 401, 403, 404, 422, 499, 500, 501])
def test_final_statuses(status):
    assert retry_wait(RetryPolicy(), 1, response=_response(status)) is None


def test_gateway_errors_from_the_app_or_a_caller_timeout_are_final():
    assert retry_wait(RetryPolicy(), 1, response=_response(503, **{"x-fal-request-id": "r1"})) is None
    assert retry_wait(RetryPolicy(), 1, response=_response(504, **{"x-fal-request-timeout-type": "user"})) is None


def test_transport_errors_are_retried_but_a_callers_timeout_is_final():
    policy = RetryPolicy()
    assert retry_wait(policy, 1, error=httpx.ConnectError("refused")) is not None
    assert retry_wait(policy, 1, error=httpx.ReadTimeout("slow")) is not None
    assert retry_wait(policy, 1, error=httpx.ReadTimeout("slow"), bounded=True) is None
    assert retry_wait(policy, 1, error=httpx.ConnectError("refused"), bounded=True) is not None


def test_a_refused_certificate_is_final():
    try:
        try:
            raise ssl.SSLCertVerificationError(1, "certificate verify failed: self-signed certificate")
        except ssl.SSLError as exc:
            raise httpx.ConnectError(str(exc)) from exc
    except httpx.ConnectError as error:
        assert retry_wait(RetryPolicy(), 1, error=error) is None


def test_attempts_are_bounded():
    policy = RetryPolicy(attempts=3)
    assert retry_wait(policy, 2, response=_response(503)) is not None
    assert retry_wait(policy, 3, response=_response(503)) is None
    assert retry_wait(policy, 3, error=httpx.ConnectError("refused")) is None


def test_back_off_is_exponential_jittered_and_capped():
    policy = RetryPolicy(attempts=30, base_delay=0.1, max_delay=5.0)
    for attempt in range(1, 30):
        nominal = 0.1 * 2 ** (attempt - 1)
        for _ in range(50):
            delay = policy.delay(attempt)
            assert min(0.5 * nominal, 5.0) <= delay <= min(1.5 * nominal, 5.0)
    assert len({policy.delay(1) for _ in range(20)}) > 1  # jittered


def test_retry_after_is_honoured_within_the_cap():
    policy = RetryPolicy(base_delay=0.1, max_delay=5.0)
    assert policy.delay(1, _response(429, **{"retry-after": "3"})) == 3.0
    assert policy.delay(1, _response(429, **{"retry-after": "60"})) == 5.0


# -- log windows ----------------------------------------------------------------------------------
def _log(n: int, message: str | None = None) -> dict:
    return {
        "timestamp": f"2025-01-01T00:00:{n:02d}",
        "message": message or f"line {n}",
        "level": "INFO",
        "source": "user",
    }


def test_overlapping_log_windows_yield_each_entry_once():
    events = EventFilter()
    windows = [[_log(1)], [_log(1), _log(2)], [_log(2), _log(3), _log(4)], [_log(4), _log(5)], [_log(5)]]
    seen = []
    for window in windows:
        event = events(InProgress(logs=window))
        seen.extend(event.logs if event else [])
    assert seen == [_log(n) for n in range(1, 6)]


def test_identical_lines_logged_twice_are_both_kept():
    events = EventFilter()
    tick = _log(7, "tick")
    assert events(InProgress(logs=[tick, tick])).logs == [tick, tick]
    assert events(InProgress(logs=[tick, tick, tick])).logs == [tick]
    assert events(InProgress(logs=[tick])) is None


def test_stream_events_add_their_entries_and_polling_after_them_repeats_none():
    events = EventFilter()
    tick = _log(7, "tick")
    assert events(InProgress(logs=[tick]), delta=True).logs == [tick]
    assert events(InProgress(logs=[tick]), delta=True).logs == [tick]  # logged again: news in a stream
    assert events(InProgress(logs=[tick, tick, _log(8)])).logs == [_log(8)]  # a polled window after them


def test_events_are_changes_only():
    events = EventFilter()
    assert events(Queued(position=2)) == Queued(position=2)
    assert events(Queued(position=2)) is None
    assert events(Queued(position=0)) == Queued(position=0)
    assert events(InProgress(logs=[])) == InProgress(logs=[])
    assert events(InProgress(logs=[])) is None
    assert events(Completed(logs=[], metrics={"t": 1})) == Completed(logs=[], metrics={"t": 1})


def test_completed_logs_are_deduplicated_too():
    events = EventFilter()
    events(InProgress(logs=[_log(1), _log(2)]))
    assert events(Completed(logs=[_log(2), _log(3)])).logs == [_log(3)]


# -- cancel answers -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "status, body, answer",
    [
        (202, {"status": "CANCELLATION_REQUESTED"}, "CANCELLATION_REQUESTED"),
        (400, {"status": "ALREADY_COMPLETED"}, "ALREADY_COMPLETED"),
        (404, {"status": "NOT_FOUND"}, "NOT_FOUND"),
        (200, "OK", "OK"),
        (404, {"detail": "Not Found"}, None),
    ],
)
def test_cancel_answers(status, body, answer):
    response = httpx.Response(status, json=body, request=httpx.Request("PUT", "http://x/cancel"))
    assert cancel_answer(response) == answer


# -- error rendering ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "loc, text",
    [
        (["body", "prompt"], "prompt"),
        (["body", "images", 0, "url"], "images[0].url"),
        (["query", "steps"], "query parameter steps"),
        (["body"], "the request body"),
        (["seed"], "seed"),
    ],
)
def test_render_location(loc, text):
    assert render_location(loc) == text


def _error_for(
    status: int,
    body: object,
    address: str = "local/echo",
    *,
    key: str | None = None,
    request_id: str | None = None,
    from_app: bool = False,
    **headers: str,
):
    request = httpx.Request("POST", "http://127.0.0.1:8765/local/echo/generate?x=1")
    response = httpx.Response(status, json=body, headers=headers, request=request)
    return request_error(
        response, resolve_address(address), key=key, request_id=request_id, attempts=8, from_app=from_app
    )


def test_error_messages_say_what_to_do():
    missing_key = _error_for(401, {"detail": "Unauthorized"})
    assert "No key was sent" in str(missing_key) and "gateway" in str(missing_key)
    fal = _error_for(403, {"detail": "Forbidden"}, "me/app", key="some-id:some-secret-value")
    assert "The key sent was refused" in str(fal) and "FAL_KEY" in str(fal)
    assert "some-secret-value" not in str(fal)
    # a sync call's 404 is about the path, even when fal tags the answer with a request id
    unknown_path = _error_for(404, {"detail": "Not Found"}, **{"x-fal-request-id": "r1"})
    assert "Unknown app or path" in str(unknown_path) and "POST http://127.0.0.1:8765/local/echo/generate:" in str(
        unknown_path
    )
    assert unknown_path.request_id == "r1" and str(unknown_path).endswith("(request id r1)")
    unknown_request = _error_for(404, {"detail": "Request not found"}, request_id="r2")
    assert "No request with this id" in str(unknown_request)
    # the result of a completed request is the app's answer: its 404 is about the path
    app_404 = _error_for(404, {"detail": "Not Found"}, request_id="r2", from_app=True)
    assert "Unknown app or path" in str(app_404) and "No request" not in str(app_404)
    assert "still after 8 tries" in str(_error_for(503, {"detail": "no runner"}))
    from_the_app = _error_for(503, {"detail": "overloaded"}, **{"x-fal-request-id": "r3"})
    assert "tries" not in str(from_the_app) and "overloaded" in str(from_the_app)
    refused = _error_for(401, {"detail": "Unauthorized: this app is private."})
    assert "this app is private. " in str(refused) and ".." not in str(refused)
    failed = _error_for(500, {"detail": "CUDA out of memory", "error_type": "RuntimeError"})
    assert "the app failed (HTTP 500): CUDA out of memory" in str(failed) and failed.error_type == "RuntimeError"
