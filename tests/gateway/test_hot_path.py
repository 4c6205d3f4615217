"""The gateway keeps its promises without waiting on timers: each queued request gets exactly its own
output lines, back to back on one runner; a deploy's follower hears of the app's next event at once."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

from gateway_apps import echo


def test_back_to_back_queued_requests_each_get_exactly_their_own_output_lines(gateway):
    gateway.deploy(echo(), "echo-lines", auth="public", max_concurrency=1)
    texts = [f"job number {i}" for i in range(40)]
    with gateway.http() as client:
        handles = [client.post("/queue/local/echo-lines", json={"text": text}).json() for text in texts]
        statuses = [gateway.wait_completed(client, handle["status_url"]) for handle in handles]
    for text, status in zip(texts, statuses, strict=True):
        assert [entry["message"] for entry in status["logs"]] == [f"counting {text!r}", "done counting"]


def test_following_an_app_is_a_long_poll_answered_by_its_next_event(gateway):
    gateway.deploy(echo(), "echo-follow", auth="public")
    with gateway.http() as client:
        last = client.get("/_fal_notebook/apps/echo-follow").json()["events"][-1]["seq"]
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(client.get, "/_fal_notebook/apps/echo-follow", params={"since": last, "wait": 30})
            time.sleep(0.5)
            assert not waiting.done()  # nothing happened: the gateway holds the answer
            client.delete("/_fal_notebook/apps/echo-follow")
            events = waiting.result(timeout=30).json()["events"]
    assert events and all(event["seq"] > last for event in events)  # answered by what the stop did


def test_the_status_stream_of_a_completed_request_is_one_answer(gateway):
    gateway.deploy(echo(), "echo-done", auth="public")
    with gateway.http() as client:
        handle = client.post("/queue/local/echo-done", json={"text": "a b c"}).json()
        gateway.wait_completed(client, handle["status_url"])
        answer = client.get(handle["status_url"] + "/stream", params={"logs": 1})
        assert answer.headers["content-type"].startswith("text/event-stream")
        assert int(answer.headers["content-length"]) == len(answer.content)  # not a chunked stream
        events = [json.loads(line[5:]) for line in answer.text.splitlines() if line.startswith("data:")]
        assert [event["status"] for event in events] == ["COMPLETED"]
        assert [entry["message"] for entry in events[0]["logs"]] == ["counting 'a b c'", "done counting"]
        assert client.get(handle["response_url"]).json()["words"] == 3
