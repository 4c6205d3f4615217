"""Side-by-side ratios for the local gateway (same app, same machine, alternating runs).

(a) Sync calls through the gateway vs calling the runner directly: requests/s ratio and the p50
    latency the gateway adds.
(b) Time from deploy to first response (cached environment) vs starting `fal run --local` by hand.

Run: ``PYTHONPATH=. python benchmarks/gateway_overhead.py [--calls 400] [--rounds 3]``.
Uses a temporary FAL_NOTEBOOK_HOME and a free port; prints the figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

APP = """
import fal
from pydantic import BaseModel


class Text(BaseModel):
    text: str


class Count(BaseModel):
    words: int


class Bench(fal.App):
    app_auth = "public"
    keep_alive = 600

    @fal.endpoint("/")
    def count(self, data: Text) -> Count:
        return Count(words=len(data.text.split()))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed_calls(client: httpx.Client, url: str, n: int) -> list[float]:
    latencies = []
    for _ in range(n):
        started = time.perf_counter()
        response = client.post(url, json={"text": "the cat and the hat"})
        latencies.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
    return latencies


def wait_answer(url: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=10) as client:
        while time.monotonic() < deadline:
            try:
                if client.post(url, json={"text": "first"}).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.02)
    raise TimeoutError(url)


def overhead(gateway_url: str, runner_url: str, calls: int, block: int = 50) -> None:
    via, direct = [], []
    with httpx.Client(timeout=30) as client:
        timed_calls(client, gateway_url, 20)  # warm both paths
        timed_calls(client, runner_url, 20)
        for _ in range(calls // block):
            via += timed_calls(client, gateway_url, block)
            direct += timed_calls(client, runner_url, block)
    rps_via, rps_direct = len(via) / sum(via), len(direct) / sum(direct)
    p50_via, p50_direct = statistics.median(via), statistics.median(direct)
    print(f"(a) sync calls, {len(via)} each, alternating blocks of {block}")
    print(f"    direct to runner: {rps_direct:7.1f} req/s  p50 {p50_direct * 1000:6.2f} ms")
    print(f"    via the gateway:  {rps_via:7.1f} req/s  p50 {p50_via * 1000:6.2f} ms")
    print(
        f"    ratio gateway/direct throughput: {rps_via / rps_direct:.2f}  "
        f"p50 added by the gateway: {(p50_via - p50_direct) * 1000:.2f} ms"
    )


def deploy_to_first_response(project, env: str, rounds: int) -> None:
    from fal_notebook.backends.base import Deployment
    from fal_notebook.backends.local import LocalBackend

    backend = LocalBackend(env=env)
    backend.deploy(project, progress=lambda line: None)  # builds (or reuses) the environment
    Deployment.load(project.name).stop()
    ours, by_hand = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        dep = backend.deploy(project, progress=lambda line: None)
        wait_answer(dep.url)
        ours.append(time.perf_counter() - started)
        dep.stop()

        port, metrics = free_port(), free_port()
        started = time.perf_counter()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fal",
                "run",
                "--local",
                "app.py::Bench",
                "--exposed-port",
                str(port),
                "--exposed-metrics-port",
                str(metrics),
            ],
            cwd=project.path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_answer(f"http://127.0.0.1:{port}/")
            by_hand.append(time.perf_counter() - started)
        finally:
            proc.terminate()
            proc.wait()
    a, b = statistics.median(ours), statistics.median(by_hand)
    print(f"(b) deploy to first response, env={env}, median of {rounds}")
    print(f"    fal run --local by hand: {b:5.2f} s   %fal_deploy (local): {a:5.2f} s   ratio {a / b:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="fal-notebook-bench-"))
    os.environ["FAL_NOTEBOOK_HOME"] = str(home)
    os.environ["FAL_NOTEBOOK_GATEWAY_PORT"] = str(free_port())

    import fal_notebook
    from fal_notebook.backends.local import LocalBackend
    from fal_notebook.gateway import stop_gateway
    from fal_notebook.gateway.control import admin

    project = fal_notebook.capture(APP, "bench", out_dir=home / "apps")
    try:
        dep = LocalBackend(env="kernel").deploy(project, progress=lambda line: None)
        with admin() as client:
            port = client.get("/_fal_notebook/apps/bench").json()["runners"][0]["port"]
        overhead(dep.url, f"http://127.0.0.1:{port}/", args.calls)
        dep.stop()
        deploy_to_first_response(project, "kernel", args.rounds)
        deploy_to_first_response(project, "isolated", args.rounds)
    finally:
        stop_gateway()


if __name__ == "__main__":
    main()
