"""fal's wire contract: each message encoded by the gateway's side and decoded by the client's, and
the layout, headers and rules both sides share."""

from __future__ import annotations

import json
from typing import get_args

import httpx
import pytest

from fal_notebook import wire
from fal_notebook.config import RetryCondition as RetryConditionName
from fal_notebook.wire import (
    CancelAnswer,
    Completed,
    ErrorType,
    InProgress,
    Queued,
    QueuedRequest,
    RequestStatus,
    RetryCondition,
    SSEParser,
    decode_status,
    decode_submit,
)

LOG = {"timestamp": "2026-11-28T12:00:01", "message": "step 1", "level": "INFO", "source": "USER"}


def over_the_wire(body: object) -> object:
    """What the other side reads: the body as JSON text, parsed again."""
    return json.loads(json.dumps(body))


# -- layout ---------------------------------------------------------------------------------------
def test_the_queue_layout():
    sync, queue = wire.app_urls("http://127.0.0.1:8765/", wire.local_app("echo"))
    assert (sync, queue) == ("http://127.0.0.1:8765/local/echo", "http://127.0.0.1:8765/queue/local/echo")
    request = wire.request_url(queue, "r1")
    assert request == "http://127.0.0.1:8765/queue/local/echo/requests/r1"
    assert wire.status_url(request) == request + "/status"
    assert wire.status_stream_url(request) == request + "/status/stream"
    assert wire.cancel_url(request) == request + "/cancel"
    assert wire.app_urls("", "local/{name}") == ("/local/{name}", "/queue/local/{name}")  # the gateway's routes


def test_fal_hosts_and_the_gateway_origin():
    assert wire.fal_app_urls(wire.FAL_RUN_HOST, wire.queue_host(wire.FAL_RUN_HOST), "alice/app") == (
        "https://fal.run/alice/app",
        "https://queue.fal.run/alice/app",
    )
    assert wire.gateway_origin(wire.DEFAULT_GATEWAY_PORT) == "http://127.0.0.1:8765"
    assert str(wire.GATEWAY_KEY_FILE) == "gateway/key"


@pytest.mark.parametrize(
    "raw, port", [("8765", 8765), (" 1 ", 1), ("65535", 65535), ("0", None), ("65536", None), ("x", None)]
)
def test_ports(raw, port):
    assert wire.parse_port(raw) == port


# -- headers --------------------------------------------------------------------------------------
def test_key_header_round_trip():
    assert wire.key_of(wire.key_header("id:secret")) == "id:secret"
    assert wire.key_of("key  id:secret ") == "id:secret"  # the scheme is case-insensitive
    assert wire.key_of("Bearer id:secret") is None and wire.key_of("Key ") is None and wire.key_of("") is None


@pytest.mark.parametrize(
    "raw, seconds", [("2.5", 2.5), ("0.1", None), ("0", None), ("-3", None), ("soon", None), ("nan", None)]
)
def test_request_timeout(raw, seconds):
    assert wire.request_timeout(raw) == seconds


def test_priority_and_logs_parameters():
    assert wire.low_priority("LOW") and not wire.low_priority("normal") and not wire.low_priority("")
    assert all(wire.wants_logs(v) for v in ("1", "true", "Yes")) and not wire.wants_logs("0")


# -- error bodies ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "detail, error_type",
    [("Request timed out.", ErrorType.REQUEST_TIMEOUT), ("App x failed", None), ([{"loc": ["body", "a"]}], None)],
)
def test_error_round_trip(detail, error_type):
    body = wire.encode_error(detail, error_type)
    assert wire.decode_error(over_the_wire(body)) == (detail, error_type)
    assert json.loads(wire.encode_error_bytes(detail, error_type)) == body
    assert ("error_type" in body) == (error_type is not None)


def test_error_type_from_the_header_and_bodies_without_detail():
    headers = httpx.Headers({"x-fal-error-type": "runner_disconnected"})
    assert wire.decode_error({"detail": "lost"}, headers) == ("lost", "runner_disconnected")
    assert wire.decode_error({"message": "other shape"}) == ({"message": "other shape"}, None)
    assert wire.decode_error("plain text") == ("plain text", None)


# -- statuses -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "status",
    [
        Queued(position=3),
        InProgress(logs=[LOG]),
        Completed(logs=[LOG], metrics={"inference_time": 0.5}),
        Completed(logs=[], metrics={}, error="boom", error_type="RuntimeError"),
    ],
)
def test_status_round_trip(status):
    body = wire.encode_status(status, request_id="r", response_url="http://h/queue/local/a/requests/r", with_logs=True)
    assert decode_status(over_the_wire(body)) == status
    assert body["response_url"] == "http://h/queue/local/a/requests/r" and body["request_id"] == "r"
    assert wire.status_code(status) == (200 if isinstance(status, Completed) else 202)


def test_logs_only_when_asked_for():
    body = wire.encode_status(InProgress(logs=[LOG]), request_id="r", response_url="u", with_logs=False)
    assert body["logs"] is None and decode_status(body) == InProgress(logs=[])
    done = wire.encode_status(Completed(logs=[LOG]), request_id="r", response_url="u", with_logs=False)
    assert done["logs"] is None and "error" not in done


# -- statuses -------------------------------------------------------------------------------------
def test_decode_statuses():
    assert decode_status({"status": "IN_QUEUE", "queue_position": 2}) == Queued(position=2)
    log = {"timestamp": "t", "message": "m", "level": "INFO"}
    assert decode_status({"status": "IN_PROGRESS", "logs": [log]}) == InProgress(logs=[log])
    assert decode_status({"status": "IN_PROGRESS", "logs": None}) == InProgress(logs=[])
    done = decode_status(
        {
            "status": "COMPLETED",
            "logs": [],
            "metrics": {"inference_time": 1.5},
            "error": "boom",
            "error_type": "RuntimeError",
        }
    )
    assert done == Completed(logs=[], metrics={"inference_time": 1.5}, error="boom", error_type="RuntimeError")
    assert decode_status({"status": "COMPLETED"}) == Completed()  # legacy apps send no metrics
    with pytest.raises(ValueError, match="LOST"):
        decode_status({"status": "LOST"})


# -- submit answers -------------------------------------------------------------------------------
def test_queue_urls_come_from_the_answer_or_follow_the_layout():
    app_queue_url = "http://127.0.0.1:8765/queue/local/echo"  # of the endpoint local/echo/generate
    given = {
        "request_id": "r1",
        "status_url": "http://s/status",
        "response_url": "http://s/r",
        "cancel_url": "http://s/cancel",
    }
    assert decode_submit(given, app_queue_url).status_url == "http://s/status"
    derived = decode_submit({"request_id": "r1"}, app_queue_url)
    assert derived.response_url == "http://127.0.0.1:8765/queue/local/echo/requests/r1"  # no endpoint path
    assert derived.status_url == derived.response_url + "/status"
    assert derived.cancel_url == derived.response_url + "/cancel"
    with pytest.raises(ValueError):
        decode_submit({"detail": "nope"}, app_queue_url)


def test_submit_round_trip():
    queue = "http://127.0.0.1:8765/queue/local/echo"
    body = wire.encode_submit("r1", wire.request_url(queue, "r1"), 2)
    assert body["status"] == RequestStatus.IN_QUEUE and body["queue_position"] == 2
    assert body["gateway_request_id"] == body["request_id"] == "r1"
    assert decode_submit(over_the_wire(body), queue) == QueuedRequest(
        "r1", f"{queue}/requests/r1/status", f"{queue}/requests/r1", f"{queue}/requests/r1/cancel"
    )


def test_each_retry_has_its_own_gateway_request_id():
    assert wire.gateway_request_id("r1", 1) == "r1"
    second, third = wire.gateway_request_id("r1", 2), wire.gateway_request_id("r1", 3)
    assert len({"r1", second, third}) == 3 and second == wire.gateway_request_id("r1", 2)


# -- cancel answers -------------------------------------------------------------------------------
@pytest.mark.parametrize("answer", sorted(wire.CancelAnswer))
def test_cancel_round_trip(answer):
    success = answer.http_status < 400
    assert wire.decode_cancel(over_the_wire(wire.encode_cancel(answer)), success=success) == answer
    assert wire.decode_cancel(answer, success=success) == answer  # a bare word, as some servers answer


def test_other_cancel_answers():
    assert wire.decode_cancel({"detail": "Not Found"}, success=False) is None
    assert wire.decode_cancel(None, success=True) == CancelAnswer.OK


# -- server-sent events ---------------------------------------------------------------------------
def test_sse_parser():
    parser = SSEParser()
    lines = [
        ": keep-alive",
        'data: {"a": 1}',
        "",
        "event: progress",
        "id: 7",
        'data: {"b":',
        "data: 2}",
        "",
        "",
        'data:{"c": 3}',
    ]
    events = [event for line in [*lines, ""] if (event := parser.feed(line)) is not None]
    assert events == [("message", '{"a": 1}'), ("progress", '{"b":\n2}'), ("message", '{"c": 3}')]


def test_event_round_trip():
    parser = SSEParser()
    data = {"status": "IN_PROGRESS", "logs": [LOG]}
    text = wire.encode_event(data) + wire.encode_event([1, 2])
    events = [event for line in text.split("\n") if (event := parser.feed(line)) is not None]
    assert [json.loads(payload) for _, payload in events] == [data, [1, 2]]


# -- retries --------------------------------------------------------------------------------------
def test_what_a_client_retries():
    assert wire.retryable(429, httpx.Headers()) and wire.retryable(503, httpx.Headers())
    assert not wire.retryable(503, httpx.Headers({wire.REQUEST_ID: "r"}))  # the app's own answer
    assert not wire.retryable(504, httpx.Headers({wire.REQUEST_TIMEOUT_TYPE: "user"}))  # the caller's timeout
    assert not wire.retryable(500, httpx.Headers())
    assert wire.retry_after(httpx.Headers({"retry-after": "3"})) == 3.0
    assert wire.retry_after(httpx.Headers({"retry-after": "soon"})) is None


def test_what_the_queue_retries():
    assert [wire.retry_condition(s) for s in (503, 504, 500, 200)] == [
        RetryCondition.SERVER_ERROR,
        RetryCondition.SERVER_ERROR,
        None,
        None,
    ]


def test_the_config_names_the_retry_conditions_of_the_wire():
    """``AppConfig``'s ``skip_retry_conditions`` and ``retry_config`` accept exactly fal's conditions."""
    assert set(get_args(RetryConditionName)) == set(RetryCondition)


def test_paths_are_joined_as_the_app_declares_them():
    assert wire.join_url("http://h/local/a", "/items/") == "http://h/local/a/items/"
    assert wire.join_url("http://h/local/a", "/items") == "http://h/local/a/items"
    assert wire.join_url("http://h/local/a", "/") == "http://h/local/a"  # an app's root adds nothing
    assert wire.join_url("http://h/local/a/items/", "/") == "http://h/local/a/items/"
    assert wire.join_url("http://h/local/a", "/items/", "stream") == "http://h/local/a/items/stream"
    assert wire.join_path("items", "") == "/items" and wire.join_path("a", "b/") == "/a/b/" and wire.join_path() == "/"
