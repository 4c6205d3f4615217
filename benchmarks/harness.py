"""What every benchmark shares: a row of the table, a private gateway, the apps, interleaved timing."""

from __future__ import annotations

import functools
import os
import socket
import ssl
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

#: A trivial fal.App: a few microseconds of work, so what is measured is the path to it.
WORDS = """
import time

import fal
from pydantic import BaseModel


class Text(BaseModel):
    text: str
    seconds: float = 0.0


class Count(BaseModel):
    words: int


class Bench(fal.App):
    app_auth = "public"
    keep_alive = 600

    @fal.endpoint("/")
    def count(self, data: Text) -> Count:
        if data.seconds:
            time.sleep(data.seconds)
        return Count(words=len(data.text.split()))
"""
INPUT = {"text": "the cat and the hat"}


@dataclass
class Row:
    """One line of the table: a figure of the subject beside the same figure of its baseline."""

    name: str
    subject: str  # what was measured, with its figure ("queue: 230 req/s")
    baseline: str  # the same for the baseline run beside it
    ratio: float  # subject / baseline
    goal: str  # e.g. "≥ 0.8×"
    met: bool | None  # None: no goal
    extra: str = ""  # a second figure, e.g. the p50 latency added


def table(rows: list[Row]) -> str:
    lines = [
        "| figure | measured | baseline, beside it | ratio | goal | |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        mark = {True: "✓", False: "✗", None: ""}[row.met]
        measured = row.subject + (f" ({row.extra})" if row.extra else "")
        lines.append(f"| {row.name} | {measured} | {row.baseline} | {row.ratio:.2f}× | {row.goal} | {mark} |")
    return "\n".join(lines)


@dataclass
class Sizes:
    """How much work each benchmark does: the full suite's sizes, or tiny ones (``--smoke``)."""

    calls: int = 400  # sync calls per side (gateway overhead)
    drain: int = 400  # requests per round (queue drain)
    round_trips: int = 200  # per side (queue round trip)
    rounds: int = 5  # alternating rounds (throughput figures, scale-out)
    deploy_rounds: int = 9  # alternating rounds of deploy → first response (a runner's start is noisy)
    scale_requests: int = 16
    scale_seconds: float = 1.0
    scale_concurrency: int = 4
    form_repeat: int = 15
    builds: int = 1  # docker first build / code-only rebuild pairs
    rebuild_fal_app: bool = True  # the rebuild row's image: a fal.App (installs fal), else a --cmd server
    #: The runner environments of the rows measured in each (an isolated one is built from the package index).
    environments: tuple[str, ...] = ("kernel", "isolated")
    notes: list[str] = field(default_factory=list)

    @classmethod
    def smoke(cls) -> Sizes:
        return cls(
            calls=20,
            drain=20,
            round_trips=10,
            rounds=1,
            deploy_rounds=1,
            scale_requests=4,
            scale_seconds=0.2,
            scale_concurrency=2,
            form_repeat=2,
            rebuild_fal_app=False,
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def private_gateway() -> Iterator[Path]:
    """A gateway of its own (temporary FAL_NOTEBOOK_HOME, free port) for the block; stopped at its end."""
    from fal_notebook.gateway import start_gateway, stop_gateway

    ports = ("FAL_NOTEBOOK_GATEWAY_PORT", "FAL_NOTEBOOK_GATEWAY_TLS_PORT")
    saved = {k: os.environ.get(k) for k in ("FAL_NOTEBOOK_HOME", *ports)}
    home = Path(tempfile.mkdtemp(prefix="fal-notebook-bench-"))
    os.environ["FAL_NOTEBOOK_HOME"] = str(home)
    os.environ.update({name: str(free_port()) for name in ports})
    try:
        start_gateway()
        yield home
    finally:
        try:
            stop_gateway()
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def deploy(home: Path, source: str, name: str, *, env: str = "kernel", **options: Any):
    """Capture ``source`` as app ``name`` and deploy it behind the private gateway."""
    import fal_notebook

    return deploy_project(fal_notebook.capture(source, name, out_dir=home / "apps", **options), env)


def deploy_project(project: Any, env: str = "kernel"):
    """Deploy a captured project behind the private gateway (what ``%fal_deploy`` does)."""
    from fal_notebook.backends.docker import DockerBackend
    from fal_notebook.backends.local import LocalBackend

    backend = DockerBackend() if env == "docker" else LocalBackend(env=env)
    return backend.deploy(project, progress=lambda line: None)


def app_info(name: str) -> dict[str, Any]:
    from fal_notebook.gateway.control import admin

    with admin() as client:
        return client.get(f"/_fal_notebook/apps/{name}").json()


def wait_runners(name: str, count: int, timeout: float = 120.0) -> list[dict[str, Any]]:
    """The app's runners, once ``count`` of them are ready."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runners = [r for r in app_info(name)["runners"] if r["state"] == "ready"]
        if len(runners) >= count:
            return runners
        time.sleep(0.05)
    raise TimeoutError(f"{name}: {count} runners not ready within {timeout} s")


@functools.cache
def tls() -> ssl.SSLContext:
    """One TLS context for the benchmark's clients: httpx makes one per client otherwise (20-40 ms)."""
    return httpx.create_ssl_context()


def wait_answer(url: str, timeout: float = 300.0, body: dict[str, Any] = INPUT) -> None:
    """Poll ``url`` (every 10 ms) until it answers ``body`` (the benchmark's input) with 200."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=60, verify=tls()) as client:
        while time.monotonic() < deadline:
            try:
                if client.post(url, json=body).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.01)
    raise TimeoutError(url)


def median(values: list[float]) -> float:
    return statistics.median(values)


def p50_ms(latencies: list[float]) -> float:
    return statistics.median(latencies) * 1000


def interleaved(sides: dict[str, Callable[[], list[float]]], rounds: int) -> dict[str, list[float]]:
    """Run each side once per round, alternating which goes first; every side's results, concatenated."""
    results: dict[str, list[float]] = {name: [] for name in sides}
    order = list(sides)
    for index in range(rounds):
        for name in order if index % 2 == 0 else reversed(order):
            results[name] += sides[name]()
    return results


def machine() -> str:
    """``2 CPUs (model), 7.8 GiB RAM, load 1.2 0.9 0.8``: what the figures were measured on."""
    cpus = os.cpu_count()
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        kib = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
        memory = f", {kib / 2**20:.1f} GiB RAM"
    except (OSError, StopIteration):
        memory = ""
    return f"{cpus} CPUs{f' ({model})' if model else ''}{memory}"


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())
