"""The gateway's hot path keeps its promises without waiting on timers: each queued request gets
exactly its own output lines, back to back on one runner."""

from __future__ import annotations

from gateway_apps import echo


def test_back_to_back_queued_requests_each_get_exactly_their_own_output_lines(gateway):
    gateway.deploy(echo(), "echo-lines", auth="public", max_concurrency=1)
    texts = [f"job number {i}" for i in range(40)]
    with gateway.http() as client:
        handles = [client.post("/queue/local/echo-lines", json={"text": text}).json() for text in texts]
        statuses = [gateway.wait_completed(client, handle["status_url"]) for handle in handles]
    for text, status in zip(texts, statuses, strict=True):
        assert [entry["message"] for entry in status["logs"]] == [f"counting {text!r}", "done counting"]
