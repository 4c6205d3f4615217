"""Our own client (``connect``, ``Deployment.client()``) against the real gateway and real runners.

One gateway and two apps for the whole module: ``words`` (a fal.App served by ``fal run --local``:
typed input, logs, a request that holds its only runner until a file appears, a failing and a
streaming endpoint; private, one runner) and ``events`` (a FastAPI server with an SSE endpoint;
public). No sleeps: tests wait on statuses and log lines.
"""

from __future__ import annotations

import asyncio

import pytest
from gateway_apps import EVENTS_SERVER, WORDS

from fal_notebook import wire
from fal_notebook.backends import deploy
from fal_notebook.backends.base import Deployment
from fal_notebook.client import Completed, InProgress, Queued, RequestError, connect
from tests.gateway_helpers import hold, messages


@pytest.fixture(scope="module")
def words(gateway) -> Deployment:
    project = gateway.capture(WORDS, "words", min_concurrency=1, max_concurrency=1, keep_alive=300)
    return deploy(project, target="local", env="kernel", progress=gateway.progress.append)


@pytest.fixture(scope="module")
def events(gateway) -> Deployment:
    project = gateway.capture(EVENTS_SERVER, "events", mode="server", auth="public")
    return deploy(project, target="local", env="kernel", progress=gateway.progress.append)


# -- calls ----------------------------------------------------------------------------------------
def test_run_through_connect_and_the_deployment_client(words):
    assert words.status == "ready" and words.endpoint_id == "local/words"
    assert connect("local/words").run({"text": "the cat and the hat"}) == {"words": 5}
    assert words.client().run({"text": "a b", "repeat": 2}) == {"words": 4}


def test_submit_status_events_and_result_behind_a_busy_runner(gateway, words, gate):
    client = words.client()
    held = hold(gateway, client, gate)
    first = client.submit({"text": "one two three"})
    second = client.submit({"text": "four"})
    assert first.status(logs=True) == Queued(position=0)
    assert second.status(logs=True) == Queued(position=1)
    assert isinstance(held.status(), InProgress)

    gate.touch()
    assert held.result(timeout=60) == {"released": True}
    events = list(first.iter_events(logs=True, interval=0.02))
    assert isinstance(events[-1], Completed)
    assert not any(isinstance(event, Completed) for event in events[:-1])
    assert events[-1].metrics["inference_time"] >= 0
    lines = [line for event in events if not isinstance(event, Queued) for line in messages(event.logs)]
    assert lines == ["word 0: one", "word 1: two", "word 2: three", "counted"]
    assert first.result(timeout=60) == {"words": 3}
    assert second.result(timeout=60) == {"words": 1}
    assert messages(second.status(logs=True).logs) == ["word 0: four", "counted"]


def test_cancel_a_queued_request(gateway, words, gate):
    client = words.client()
    held = hold(gateway, client, gate)
    queued = client.submit({"text": "never counted"})
    assert queued.cancel() == "CANCELLATION_REQUESTED"
    status = queued.status(logs=True)
    assert isinstance(status, Completed) and status.error_type == "client_cancelled"
    with pytest.raises(RequestError) as caught:
        queued.result(timeout=30)
    assert caught.value.status_code == 499 and caught.value.request_id == queued.request_id
    gate.touch()
    assert held.result(timeout=60) == {"released": True}
    assert "counted" not in messages(queued.status(logs=True).logs)
    assert held.cancel() == "ALREADY_COMPLETED"


def test_cancel_a_running_request(gateway, words, gate):
    client = words.client()
    running = hold(gateway, client, gate)
    assert running.cancel() == "CANCELLATION_REQUESTED"
    with pytest.raises(RequestError) as caught:
        running.result(timeout=60)
    assert caught.value.status_code == 499
    assert "hold cancelled" in messages(running.status(logs=True).logs)
    assert client.run({"text": "still serving"}) == {"words": 2}


def test_stream_from_a_fal_app(words):
    assert list(words.client().stream({"text": "red green blue"})) == [
        {"word": "red"},
        {"word": "green"},
        {"word": "blue"},
    ]


def test_openapi_of_a_fal_app(words):
    schema = connect("local/words").openapi()
    assert {"/", "/hold", "/fail", "/stream"} <= set(schema["paths"])
    assert schema["components"]["schemas"]["Words"]["required"] == ["text"]


def test_server_app_run_stream_and_openapi(events):
    client = events.client()
    assert client.run({"name": "lamp"}) == {"created": "lamp"}
    assert list(client.stream({"start": 3}, path="/countdown")) == [{"n": 3}, {"n": 2}, {"n": 1}]
    assert {"/", "/countdown/stream"} <= set(client.openapi()["paths"])
    handle = connect(events.endpoint_id, key="").submit({"name": "chair"})  # public: no key needed
    assert handle.result(timeout=60) == {"created": "chair"}
    assert "creating chair" in messages(handle.status(logs=True).logs)


def test_async_twins(words):
    async def flow():
        client = words.client()
        try:
            ran = await client.run_async({"text": "async run"})
            handle = await client.submit_async({"text": "async queue flow"})
            events = [event async for event in handle.iter_events(logs=True, interval=0.02)]
            result = await handle.result(timeout=60)
            streamed = [event async for event in client.stream_async({"text": "x y"})]
            return ran, events, result, streamed
        finally:
            await client.aclose()

    ran, events, result, streamed = asyncio.run(flow())
    assert ran == {"words": 2}
    assert isinstance(events[-1], Completed)
    lines = [line for event in events if not isinstance(event, Queued) for line in messages(event.logs)]
    assert lines == ["word 0: async", "word 1: queue", "word 2: flow", "counted"]
    assert result == {"words": 3}
    assert streamed == [{"word": "x"}, {"word": "y"}]


# -- errors ---------------------------------------------------------------------------------------
def test_wrong_key_for_a_private_app_is_401(words):
    wrong = "wrong-id:wrong-secret-1234"
    with pytest.raises(RequestError) as caught:
        connect("local/words", key=wrong).run({"text": "x"})
    assert caught.value.status_code == 401
    assert "not authorized" in str(caught.value) and "key sent was refused" in str(caught.value)
    assert "wrong-secret-1234" not in str(caught.value)
    with pytest.raises(RequestError) as caught:
        connect("local/words", key="").submit({"text": "x"})
    assert caught.value.status_code == 401 and "No key was sent" in str(caught.value)


def test_unknown_app_is_404(gateway, words):
    client = connect("local/no-such-app")
    for call in (lambda: client.run({"text": "x"}), lambda: client.submit({"text": "x"}), client.openapi):
        with pytest.raises(RequestError) as caught:
            call()
        assert caught.value.status_code == 404
        assert "local/no-such-app" in str(caught.value) and "Unknown app or path" in str(caught.value)


def test_unknown_path_is_404(words):
    client = words.client()
    with pytest.raises(RequestError) as caught:
        client.run({"text": "x"}, path="/nowhere")
    assert caught.value.status_code == 404 and "Unknown app or path" in str(caught.value)
    handle = client.submit({"text": "x"}, path="/nowhere")
    with pytest.raises(RequestError) as caught:
        handle.result(timeout=60)
    assert caught.value.status_code == 404 and caught.value.request_id == handle.request_id
    assert "Unknown app or path" in str(caught.value)


def test_schema_violation_is_422_with_pydantic_detail(words):
    client = words.client()
    with pytest.raises(RequestError) as caught:
        client.run({"repeat": 9})
    error = caught.value
    assert error.status_code == 422
    assert isinstance(error.detail, list)
    assert {tuple(item["loc"]) for item in error.detail} == {("body", "text"), ("body", "repeat")}
    assert "text: Field required" in str(error) and "repeat:" in str(error)

    handle = client.submit({"text": 3})
    with pytest.raises(RequestError) as caught:
        handle.result(timeout=60)
    assert caught.value.status_code == 422 and caught.value.detail[0]["loc"] == ["body", "text"]
    assert "text:" in str(caught.value)


def test_app_failure_is_500_with_detail_and_request_id(words):
    client = words.client()
    with pytest.raises(RequestError) as caught:
        client.run({"text": "boom", "repeat": 2}, path="/fail")
    error = caught.value
    assert error.status_code == 500 and error.detail == "cannot count 'boom' 2 times"
    assert "the app failed (HTTP 500): cannot count 'boom' 2 times" in str(error)
    assert error.request_id and str(error).endswith(f"(request id {error.request_id})")

    handle = client.submit({"text": "boom"}, path="/fail")  # an unhandled exception: fal says no more
    with pytest.raises(RequestError) as caught:
        handle.result(timeout=60)
    assert caught.value.status_code == 500 and caught.value.request_id == handle.request_id
    assert caught.value.detail == "Internal Server Error"
    status = handle.status(logs=True)
    assert isinstance(status, Completed) and status.error
    assert {"failing on 'boom'", "ValueError: cannot count 'boom'"} <= set(messages(status.logs))


def test_an_app_that_raises_answers_as_fal_does_for_a_runners_server_error(gateway, words):
    # fal's Request Error Types: an app's 500 is `runner_server_error`, in the body and X-Fal-Error-Type.
    with gateway.http() as http:
        answer = http.post("/local/words/fail", json={"text": "boom"})
        assert answer.status_code == 500 and answer.headers["x-fal-error-type"] == "runner_server_error"
        assert answer.json() == {"detail": "Internal Server Error", "error_type": "runner_server_error"}
        own = http.post("/local/words/fail", json={"text": "boom", "repeat": 2})  # the app's own HTTPException
        assert (
            own.json()["error_type"] == "runner_server_error" and own.json()["detail"] == "cannot count 'boom' 2 times"
        )
    handle = words.client().submit({"text": "boom"}, path="/fail")
    with pytest.raises(RequestError):
        handle.result(timeout=60)
    status = handle.status(logs=True)
    assert isinstance(status, Completed) and status.error_type == "runner_server_error"
    # Every entry, the gateway's own included, within fal's log schema (fal-js RequestLog).
    assert status.logs and all(e["level"] in set(wire.LogLevel) and e["source"] == "USER" for e in status.logs)
