"""From deploy to first response, and scaling out, each beside what one would do by hand.

- deploy → first response (environment cached) vs ``fal run --local`` started by hand, in the
  kernel's environment and in an isolated virtualenv (alternating rounds);
- 16 one-second requests queued at once on an app with ``max_concurrency=4`` (one runner up, three
  to start) vs the ideal: 4 s of work plus one runner start, that start measured beside it.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from fal_notebook.generate.project import AppProject

from .gateway import await_completed
from .harness import (
    INPUT,
    WORDS,
    Row,
    Sizes,
    app_info,
    deploy,
    deploy_project,
    free_port,
    interleaved,
    median,
    private_gateway,
    tls,
    wait_answer,
)

_READY = re.compile(r"is ready on port \d+ \(([0-9.]+) s\)")


def by_hand(project_path: Path, python: str, *, cls: str = "Bench", body: dict[str, Any] = INPUT) -> float:
    """Seconds from starting ``fal run --local`` (of app.py's ``cls``) to its first answer to ``body``."""
    port, metrics = free_port(), free_port()
    started = time.perf_counter()
    argv = [python, "-m", "fal", "run", "--local", f"app.py::{cls}", "--exposed-port", str(port)]
    process = subprocess.Popen(
        [*argv, "--exposed-metrics-port", str(metrics)],
        cwd=project_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_answer(f"http://127.0.0.1:{port}/", body=body)
        return time.perf_counter() - started
    finally:
        process.terminate()
        process.wait()


def deployed(project: Any, env: str) -> float:
    """Seconds from deploying the captured project to its first answer through the gateway (then stopped)."""
    started = time.perf_counter()
    deployment = deploy_project(project, env)
    wait_answer(deployment.url)
    took = time.perf_counter() - started
    deployment.stop()
    return took


def runner_python(home: Path, name: str) -> str:
    """The Python the app's runners run (the kernel's, or its isolated environment's)."""
    from fal_notebook.gateway.control import admin

    with admin() as client:
        pid = client.get(f"/_fal_notebook/apps/{name}").json()["runners"][0]["pid"]
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    return argv[argv.index("--") + 1] if "--" in argv else argv[0]  # the runner's own, after its sandbox's


def first_response(sizes: Sizes) -> list[Row]:
    rows = []
    with private_gateway() as home:
        for env in sizes.environments:
            name = f"first-{env}"
            deployment = deploy(home, WORDS, name, env=env)  # builds (or finds) the environment
            python = runner_python(home, name)
            deployment.stop()
            project = AppProject.load(home / "apps" / name)  # captured: %fal_deploy only deploys
            got = interleaved(
                {
                    "ours": lambda project=project, env=env: [deployed(project, env)],
                    "hand": lambda name=name, python=python: [by_hand(home / "apps" / name, python)],
                },
                sizes.deploy_rounds,
            )
            ours, hand = median(got["ours"]), median(got["hand"])
            rows.append(
                Row(
                    f"deploy → first response, {env} environment cached, vs `fal run --local` by hand",
                    f"{ours:.2f} s",
                    f"{hand:.2f} s",
                    ours / hand,
                    "≤ 1.1×",
                    ours / hand <= 1.1,
                )
            )
    return rows


def scale_out(sizes: Sizes) -> list[Row]:
    count, seconds, width = sizes.scale_requests, sizes.scale_seconds, sizes.scale_concurrency
    with private_gateway() as home:
        starts: list[float] = []  # for each burst, how long the runners it started took (the slowest)

        def burst() -> list[float]:
            deployment = deploy(home, WORDS, "scale", max_concurrency=width, keep_alive=600)
            since = app_info("scale")["events"][-1]["seq"]
            started = time.perf_counter()
            with httpx.Client(timeout=120, verify=tls()) as client:
                handles = [
                    client.post(deployment.queue_url, json={**INPUT, "seconds": seconds}).json() for _ in range(count)
                ]
                for handle in handles:
                    await_completed(client, handle["status_url"])
            took = time.perf_counter() - started
            events = [e["message"] for e in app_info("scale")["events"] if e["seq"] > since]
            starts.append(max((float(m) for e in events for m in _READY.findall(e)), default=0.0))
            deployment.stop()
            return [took]

        def start() -> list[float]:
            return [by_hand(home / "apps" / "scale", python)]

        deploy(home, WORDS, "scale", max_concurrency=width, keep_alive=600)
        python = runner_python(home, "scale")
        got = interleaved({"burst": burst, "start": start}, sizes.rounds)
    took, runner_start = median(got["burst"]), median(got["start"])
    ideal = count * seconds / width + runner_start
    return [
        Row(
            f"{count} requests of {seconds:g} s queued at once, max_concurrency={width} (1 runner up), vs the ideal",
            f"{took:.2f} s",
            f"{ideal:.2f} s = {count * seconds / width:g} s + one runner start {runner_start:.2f} s",
            ideal / took,
            "≥ 0.9 of ideal",
            ideal / took >= 0.9,
            f"the runners it started were ready after {median(starts):.2f} s"
            if median(starts)
            else "it ended before the runners it started were ready",
        )
    ]
