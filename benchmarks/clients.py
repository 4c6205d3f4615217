"""Queued calls from the project's own client, beside fal_client's ``subscribe`` on the same app.

- a queued call from ``connect(...)`` (``submit().result()``: submit, follow the status stream,
  fetch the result) vs ``fal_client.subscribe`` of the same input to the same app (fal_client speaks
  HTTPS only: it goes through the gateway's TLS port, with ``fal-notebook env``'s settings, in a
  process of its own, since it reads its hosts at import);
- the same queued call vs a sync call from the same client (``run``), p50.

What the Playground and ``fal-notebook call --queue`` pay per call is the first figure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .harness import INPUT, WORDS, Row, Sizes, deploy, interleaved, p50_ms, private_gateway, wait_runners

BLOCK = 25
#: Runs in a process of its own: reads a count per line, answers each with the latencies of that many
#: ``fal_client.subscribe`` calls (a JSON list of seconds).
SUBSCRIBER = """
import json, sys, time
import fal_client
app, arguments = sys.argv[1], json.loads(sys.argv[2])
for line in sys.stdin:
    latencies = []
    for _ in range(int(line)):
        started = time.perf_counter()
        fal_client.subscribe(app, arguments)
        latencies.append(time.perf_counter() - started)
    print(json.dumps(latencies), flush=True)
"""


@contextmanager
def subscriber(endpoint_id: str) -> Iterator[Callable[[int], list[float]]]:
    """``fal_client.subscribe`` in a process of its own, pointed at the private gateway."""
    from fal_notebook.gateway.control import client_environment

    env = {**os.environ, **client_environment()}
    process = subprocess.Popen(
        [sys.executable, "-c", SUBSCRIBER, endpoint_id, json.dumps(INPUT)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    assert process.stdin is not None and process.stdout is not None

    def calls(count: int) -> list[float]:
        process.stdin.write(f"{count}\n")
        process.stdin.flush()
        answer = process.stdout.readline()
        if not answer:
            raise RuntimeError(f"fal_client.subscribe against {endpoint_id} failed (its error is above)")
        return json.loads(answer)

    try:
        yield calls
    finally:
        process.stdin.close()
        process.wait(30)


def timed(call: Callable[[], object], count: int) -> Callable[[], list[float]]:
    def run() -> list[float]:
        latencies = []
        for _ in range(count):
            started = time.perf_counter()
            call()
            latencies.append(time.perf_counter() - started)
        return latencies

    return run


def rows(sizes: Sizes) -> list[Row]:
    with private_gateway() as home:
        deployment = deploy(home, WORDS, "words", max_concurrency=1, min_concurrency=1)
        wait_runners("words", 1)
        client = deployment.client()
        expected = {"words": len(INPUT["text"].split())}

        def queued() -> None:
            assert client.submit(INPUT).result() == expected

        def sync() -> None:
            assert client.run(INPUT) == expected

        blocks = max(1, sizes.round_trips // BLOCK)
        share = sizes.round_trips // blocks
        with subscriber(deployment.endpoint_id) as subscribe:
            for warm in (timed(queued, 20), timed(sync, 20), lambda: subscribe(5)):
                warm()
            got = interleaved(
                {"queued": timed(queued, share), "sync": timed(sync, share), "subscribe": lambda: subscribe(share)},
                blocks,
            )
        client.close()
    ours, theirs, sync_p50 = p50_ms(got["queued"]), p50_ms(got["subscribe"]), p50_ms(got["sync"])
    return [
        Row(
            f"queued call from our client (connect().submit().result()) vs fal_client.subscribe, same app, p50 "
            f"({len(got['queued'])} each)",
            f"{ours:.2f} ms",
            f"{theirs:.2f} ms",
            ours / theirs,
            "≤ 1×",
            ours <= theirs,
        ),
        Row(
            "queued call from our client vs a sync call from it (run), p50",
            f"{ours:.2f} ms",
            f"{sync_p50:.2f} ms",
            ours / sync_p50,
            "adds ≤ 2 ms",
            ours - sync_p50 <= 2.0,
            f"adds {ours - sync_p50:+.2f} ms",
        ),
    ]
