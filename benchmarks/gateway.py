"""The local gateway's request paths, each beside its baseline in the same run.

One trivial fal.App with two runners (``max_concurrency=2``), in the kernel's environment, and the
same app deployed the default way (runners in an isolated virtualenv) for the first row:

- sync calls through the gateway vs straight to a runner (one client, alternating blocks), in each
  environment;
- queue drain: N queued requests (submit, COMPLETED on the status stream, result) vs N sync calls
  through the gateway, both from 2 clients on the same runners (alternating rounds);
- queue round trip p50 (one client: submit, COMPLETED on the status stream, result) vs a sync call;
- the floor of any hop in Python here: sync calls through a bare byte pipe (uvloop, no HTTP at all)
  vs straight to the runner.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx

from .harness import INPUT, WORDS, Row, Sizes, deploy, interleaved, median, p50_ms, private_gateway, tls, wait_runners

CLIENTS = 2
BLOCK = 25


def sync_call(client: httpx.Client, url: str) -> None:
    response = client.post(url, json=INPUT)
    assert response.status_code == 200, response.text


def queue_call(client: httpx.Client, queue_url: str) -> None:
    """What ``fal_client.subscribe`` does: submit, follow the status stream, fetch the result."""
    handle = client.post(queue_url, json=INPUT).json()
    await_completed(client, handle["status_url"])
    response = client.get(handle["response_url"])
    assert response.status_code == 200 and response.json() == {"words": 5}, response.text


def await_completed(client: httpx.Client, status_url: str) -> None:
    """Follow the status stream to its end (which keeps the connection for the next request)."""
    last = None
    with client.stream("GET", status_url + "/stream") as events:
        for line in events.iter_lines():
            if line.startswith("data:"):
                last = json.loads(line[5:])["status"]
    assert last == "COMPLETED", f"{status_url}: the stream ended with {last}, not COMPLETED"


def timed(call: Callable[[httpx.Client, str], None], url: str, count: int) -> Callable[[], list[float]]:
    """``count`` calls one after the other; their latencies."""

    def run() -> list[float]:
        latencies = []
        with httpx.Client(timeout=60, verify=tls()) as client:
            for _ in range(count):
                started = time.perf_counter()
                call(client, url)
                latencies.append(time.perf_counter() - started)
        return latencies

    return run


def sync_throughput(url: str, count: int) -> Callable[[], list[float]]:
    """``count`` sync calls from CLIENTS clients at once; [requests per second]."""

    def run() -> list[float]:
        def client_work(share: int) -> None:
            with httpx.Client(timeout=60, verify=tls()) as client:
                for _ in range(share):
                    sync_call(client, url)

        return [count / in_threads(client_work, count)]

    return run


def drain_throughput(queue_url: str, count: int) -> Callable[[], list[float]]:
    """``count`` queued requests from CLIENTS clients at once (each submits its share, then follows
    each request to its result); [requests per second]."""

    def run() -> list[float]:
        def client_work(share: int) -> None:
            with httpx.Client(timeout=60, verify=tls()) as client:
                handles = [client.post(queue_url, json=INPUT).json() for _ in range(share)]
                for handle in handles:
                    await_completed(client, handle["status_url"])
                    response = client.get(handle["response_url"])
                    assert response.status_code == 200, response.text

        return [count / in_threads(client_work, count)]

    return run


def in_threads(work: Callable[[int], None], count: int) -> float:
    """Seconds for CLIENTS threads to do ``count`` units of ``work`` between them."""
    errors: list[BaseException] = []

    def guarded(share: int) -> None:
        try:
            work(share)
        except BaseException as exc:  # reported below
            errors.append(exc)

    shares = [count // CLIENTS + (i < count % CLIENTS) for i in range(CLIENTS)]
    threads = [threading.Thread(target=guarded, args=(share,)) for share in shares]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - started


ENVIRONMENTS = {"kernel": "kernel environment", "isolated": "isolated environment (the default)"}


def rows(sizes: Sizes) -> list[Row]:
    with private_gateway() as home:
        deployment = deploy(home, WORDS, "words", max_concurrency=2, min_concurrency=2)
        wait_runners("words", 2)
        overheads = []
        for env in sizes.environments:  # the same app, its runners in each environment
            name = "words" if env == "kernel" else f"words-{env}"
            served = (
                deployment
                if env == "kernel"
                else deploy(home, WORDS, name, env=env, max_concurrency=2, min_concurrency=2)
            )
            via, runner = served.url, f"http://127.0.0.1:{wait_runners(name, 2)[0]['port']}/"
            for warm in (timed(sync_call, via, 20), timed(sync_call, runner, 20)):
                warm()
            overheads.append(overhead(via, runner, sizes, what=f"sync calls, {ENVIRONMENTS[env]},"))
        url, queue_url = deployment.url, deployment.queue_url
        runner = wait_runners("words", 2)[0]["port"]
        with byte_pipe(runner) as pipe:
            floor = overhead(pipe, f"http://127.0.0.1:{runner}/", sizes, floor=True)
        timed(queue_call, queue_url, 20)()
        return [*overheads, floor, drain(url, queue_url, sizes), round_trip(url, queue_url, sizes)]


#: A proxy that only copies bytes, each connection to a connection of its own to the runner.
_PIPE = """
import asyncio, sys, uvloop

async def main(port):
    async def serve(reader, writer):
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", port)

        async def copy(source, sink):
            while data := await source.read(1 << 16):
                sink.write(data)
            sink.close()

        await asyncio.gather(copy(reader, upstream_writer), copy(upstream_reader, writer), return_exceptions=True)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()

uvloop.run(main(int(sys.argv[1])))
"""


@contextmanager
def byte_pipe(port: int) -> Iterator[str]:
    """The URL of a bare byte pipe to ``port`` (no HTTP parsed, nothing decided), while it runs."""
    process = subprocess.Popen([sys.executable, "-c", _PIPE, str(port)], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        yield f"http://127.0.0.1:{int(process.stdout.readline())}/"
    finally:
        process.kill()
        process.wait()


def overhead(
    url: str,
    runner: str,
    sizes: Sizes,
    call: Callable[[httpx.Client, str], None] = sync_call,
    what: str = "sync calls",
    floor: bool = False,
) -> Row:
    """``call`` through the gateway (``url``) vs straight to the ``runner``, alternating blocks
    (``floor``: ``url`` is a bare byte pipe, which has no goal)."""
    blocks = max(1, sizes.calls // BLOCK)
    got = interleaved(
        {"via": timed(call, url, sizes.calls // blocks), "direct": timed(call, runner, sizes.calls // blocks)},
        blocks,
    )
    rps_via, rps_direct = len(got["via"]) / sum(got["via"]), len(got["direct"]) / sum(got["direct"])
    added = p50_ms(got["via"]) - p50_ms(got["direct"])
    ratio = rps_via / rps_direct
    via = "a bare byte pipe (the floor of a hop in Python)" if floor else "the gateway"
    return Row(
        f"{what} through {via} vs straight to the runner ({len(got['via'])} each, 1 client)",
        f"{rps_via:.0f} req/s, p50 {p50_ms(got['via']):.2f} ms",
        f"{rps_direct:.0f} req/s, p50 {p50_ms(got['direct']):.2f} ms",
        ratio,
        "" if floor else "≥ 0.85×, p50 added ≤ 0.5 ms",
        None if floor else ratio >= 0.85 and added <= 0.5,
        f"p50 added {added:+.2f} ms",
    )


def drain(url: str, queue_url: str, sizes: Sizes) -> Row:
    got = interleaved(
        {"queue": drain_throughput(queue_url, sizes.drain), "sync": sync_throughput(url, sizes.drain)}, sizes.rounds
    )
    queue, sync = median(got["queue"]), median(got["sync"])
    return Row(
        f"queue drain, {sizes.drain} queued requests vs {sizes.drain} sync calls, {CLIENTS} clients, 2 runners",
        f"{queue:.0f} req/s",
        f"{sync:.0f} req/s",
        queue / sync,
        "≥ 0.8×",
        queue / sync >= 0.8,
    )


def round_trip(url: str, queue_url: str, sizes: Sizes) -> Row:
    blocks = max(1, sizes.round_trips // BLOCK)
    share = sizes.round_trips // blocks
    got = interleaved({"queue": timed(queue_call, queue_url, share), "sync": timed(sync_call, url, share)}, blocks)
    queue, sync = p50_ms(got["queue"]), p50_ms(got["sync"])
    return Row(
        "queue round trip (submit → COMPLETED on the status stream → result) vs a sync call, p50",
        f"{queue:.2f} ms",
        f"{sync:.2f} ms",
        queue / sync,
        "adds ≤ 2 ms",
        queue - sync <= 2.0,
        f"adds {queue - sync:+.2f} ms",
    )
