"""Headers through the gateway (gateway/headers.py): what fal's gateway consumes, adds and routes by."""

from __future__ import annotations

from fal_notebook.gateway.headers import (
    app_headers,
    caller_headers,
    caller_id,
    endpoint_of,
    kept_headers,
    prefer_hinted,
    runner_hint,
    runner_hints,
)

CALLER = {
    "Host": "127.0.0.1:8765",
    "Authorization": "Key abc:secret",
    "Content-Type": "application/json",
    "Content-Length": "12",
    "Connection": "keep-alive",
    "X-My-Trace-Id": "t-1",
    "X-Fal-No-Retry": "1",
    "X-Fal-Store-IO": "0",
    "X-Fal-Runner-Hint": "lora-7",
    "X-Fal-Queue-Priority": "low",
    "X-Fal-Request-Timeout": "30",
    "x-app-fal-disable-fallback": "1",
    "x-fal-request-id": "spoofed",
    "x-fal-caller-user-id": "someone-else",
    "x-fal-endpoint": "elsewhere/",
}


def test_the_app_sees_the_callers_own_headers_and_fals_identity_headers():
    kept = kept_headers(CALLER, caller=caller_id("abc:secret"))
    seen = app_headers(kept, request_id="r-1", endpoint="local/echo/")
    assert seen == {
        "content-type": "application/json",
        "x-my-trace-id": "t-1",
        "x-fal-request-id": "r-1",
        "x-fal-endpoint": "local/echo/",
        "x-fal-caller-user-id": "abc",
    }


def test_a_queued_request_keeps_the_platform_headers_for_the_gateway_and_never_the_key():
    kept = kept_headers(CALLER, caller="abc")
    assert kept["x-fal-no-retry"] == "1" and kept["x-fal-runner-hint"] == "lora-7"
    assert kept["x-my-trace-id"] == "t-1" and kept["x-fal-caller-user-id"] == "abc"
    assert "authorization" not in kept and "host" not in kept and "x-fal-request-id" not in kept
    assert "secret" not in repr(kept)


def test_an_anonymous_caller_has_no_id():
    assert caller_id(None) is None
    seen = app_headers(kept_headers(CALLER, caller=None), request_id="r", endpoint="local/p/")
    assert "x-fal-caller-user-id" not in seen


def test_the_endpoint_header_names_the_app_and_the_path_without_its_query():
    assert endpoint_of("local/echo", "/") == "local/echo/"
    assert endpoint_of("local/echo", "/slow?x=1") == "local/echo/slow"


def test_the_caller_never_sees_what_the_app_said_to_the_gateway():
    answer = {
        "content-type": "application/json",
        "content-length": "2",
        "X-Fal-Needs-Retry": "1",
        "x-fal-stop-runner": "true",
        "X-Fal-Runner-Hints": "a,b",
        "x-custom": "kept",
    }
    assert caller_headers(answer) == {
        "content-type": "application/json",
        "X-Fal-Runner-Hints": "a,b",
        "x-custom": "kept",
    }


def test_runner_hints_and_the_runner_a_hint_picks():
    assert runner_hint({"x-fal-runner-hint": " lora-7 "}) == "lora-7"
    assert runner_hint({"x-fal-runner-hint": ""}) is None and runner_hint({}) is None
    assert runner_hints({"X-Fal-Runner-Hints": "lora-7, lora-9,"}) == {"lora-7", "lora-9"}
    assert runner_hints({"x-fal-runner-hints": ""}) == frozenset()
    assert runner_hints({}) is None
    free = [("r1", frozenset()), ("r2", frozenset({"lora-9"})), ("r3", frozenset({"lora-7"}))]
    assert prefer_hinted("lora-7", free) == "r3"
    assert prefer_hinted("lora-1", free) == "r1"  # the hinted runner is busy or gone: any runner
    assert prefer_hinted(None, free) == "r1"
    assert prefer_hinted("lora-7", []) is None
