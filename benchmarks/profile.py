"""Where the CPU goes under the queue load: py-spy samples the gateway process while two clients
drain queued requests through it (the ``queue drain`` row's load; ``--sync``: sync calls), then
prints the time by library and the functions that hold most of it. ``--split``: no sampling, the CPU
time each process (the clients, the gateway, the runners) spends per request, queued and sync
calls and sync calls straight to a runner alternating, measured by the kernel's accounting
(``--env isolated``: the runners in an isolated virtualenv, as deployed by default).

    .venv/bin/pip install py-spy
    .venv/bin/python -m benchmarks.profile [--requests 400] [--rounds 2] [--sync] [--raw FILE]
    .venv/bin/python -m benchmarks.profile --split [--env isolated] [--requests 400] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from .gateway import drain_throughput, queue_call, sync_throughput, timed
from .harness import WORDS, app_info, deploy, private_gateway, wait_runners

_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^:]*)(:\d+)?\)$")
GROUPS = [
    ("sqlite (store.py)", ("sqlite3", "gateway/store.py")),
    ("httpx/httpcore/h11 (proxy hop client)", ("httpx/", "httpcore/", "h11/")),
    ("uvicorn (server)", ("uvicorn/",)),
    ("starlette (routing, responses)", ("starlette/",)),
    ("anyio", ("anyio/",)),
    ("json", ("json/",)),
    ("secrets.redact / credentials", ("fal_notebook/secrets.py", "fal_notebook/credentials.py")),
    ("gateway code", ("fal_notebook/",)),
    ("asyncio event loop", ("asyncio/", "selectors.py")),
]


def group_of(file: str) -> str:
    for name, markers in GROUPS:
        if any(marker in file for marker in markers):
            return name
    return "other (stdlib, ssl, socket...)"


def parse(raw: Path) -> list[tuple[list[tuple[str, str]], int]]:
    stacks = []
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = []
        for frame in stack.split(";"):
            match = _FRAME.match(frame)
            frames.append((match["function"], match["file"]) if match else (frame, ""))
        stacks.append((frames, int(count)))
    return stacks


def summary(raw: Path, top: int = 20) -> str:
    """The event loop's thread only (others wait on child processes or the thread pool); a sample
    whose innermost Python frame is the loop's wait (the selector, or uvloop's C loop) is idle time."""
    stacks = [(frames, count) for frames, count in parse(raw) if "runpy" in frames[0][1]]
    total = sum(count for _, count in stacks) or 1
    by_group: Counter[str] = Counter()
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, count in stacks:
        function, file = frames[-1]
        if function.endswith("Selector.select") or function in ("Runner.run", "run_forever", "run_until_complete"):
            by_group["idle (the event loop waits)"] += count
            continue
        by_group[group_of(file)] += count
        own[f"{function} ({short(file)})"] += count
        gateway = {f"{f} ({short(path)})" for f, path in frames if "fal_notebook/" in path}
        for key in gateway - {k for k in gateway if "daemon.py" in k or "__main__.py" in k}:
            inclusive[key] += count
    lines = [f"{total} samples of the gateway's event loop thread", "", "own time by library:"]
    lines += [f"  {count / total:6.1%}  {name}" for name, count in by_group.most_common()]
    lines += ["", f"top {top} functions by own time:"]
    lines += [f"  {count / total:6.1%}  {name}" for name, count in own.most_common(top)]
    lines += ["", f"top {top} functions of the gateway, inclusive time:"]
    lines += [f"  {count / total:6.1%}  {name}" for name, count in inclusive.most_common(top)]
    return "\n".join(lines)


def short(file: str) -> str:
    return re.sub(
        r"^.*?(site-packages/|/lib/python3\.\d+/|fal_notebook/)", lambda m: m[1] if "fal" in m[1] else "", file
    )


def cpu_seconds(pid: int) -> float:
    """User and system CPU time, now, of a process and of every process below it."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split() if entry.name.isdigit() else None
        except OSError:
            continue
        if fields:
            parents[int(entry.name)] = int(fields[1])
            times[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    tree = {pid}
    for _ in range(8):  # a few generations down
        tree |= {child for child, parent in parents.items() if parent in tree}
    return sum(times.get(p, 0.0) for p in tree)


def split(queue_url: str, url: str, runner: str, requests: int, rounds: int) -> str:
    """CPU microseconds per request of the clients (this process), the gateway (less its runners) and
    the runners, under the queue drain, under sync calls and under sync calls straight to a runner
    (``runner``; the gateway then only reads its access lines): the median of ``rounds``."""
    from fal_notebook.gateway import gateway_status

    gateway = gateway_status().pid
    assert gateway is not None
    runners = [r["pid"] for r in app_info("words")["runners"] if r["pid"]]

    def sample() -> tuple[float, float, float]:
        own, below = os.times(), sum(map(cpu_seconds, runners))
        return own.user + own.system, cpu_seconds(gateway) - below, below

    loads = {
        "queued": drain_throughput(queue_url, requests),
        "sync": sync_throughput(url, requests),
        "direct": sync_throughput(runner, requests),
    }
    figures: dict[str, list[tuple[float, ...]]] = {name: [] for name in loads}
    for _ in range(rounds):
        for name, load in loads.items():
            before = sample()
            (rate,) = load()
            spent = (b - a for a, b in zip(before, sample(), strict=True))
            figures[name].append((*(seconds / requests * 1e6 for seconds in spent), rate))
    lines = ["CPU time per request (µs), median of rounds:", "  load    clients  gateway  runners   req/s"]
    for name, rows in figures.items():
        client, own, runner, rate = (statistics.median(column) for column in zip(*rows, strict=True))
        lines.append(f"  {name:7} {client:7.0f}  {own:7.0f}  {runner:7.0f}  {rate:6.0f}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--raw", type=Path, help="keep py-spy's raw (collapsed) stacks in this file")
    parser.add_argument("--sync", action="store_true", help="sync calls through the gateway instead of queued ones")
    parser.add_argument("--split", action="store_true", help="the CPU time per request of each process, no sampling")
    parser.add_argument("--env", choices=["kernel", "isolated"], default="kernel", help="the runners' environment")
    args = parser.parse_args()
    if args.split:
        with private_gateway() as home:
            deployment = deploy(home, WORDS, "words", env=args.env, max_concurrency=2, min_concurrency=2)
            runner = f"http://127.0.0.1:{wait_runners('words', 2)[0]['port']}/"
            timed(queue_call, deployment.queue_url, 20)()
            print(split(deployment.queue_url, deployment.url, runner, args.requests, args.rounds))
        return 0
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        print("py-spy is not installed: .venv/bin/pip install py-spy", file=sys.stderr)
        return 2
    raw = args.raw or Path(tempfile.mkdtemp(prefix="fal-notebook-profile-")) / "gateway.txt"
    from fal_notebook.gateway import gateway_status

    with private_gateway() as home:
        deployment = deploy(home, WORDS, "words", max_concurrency=2, min_concurrency=2)
        wait_runners("words", 2)
        timed(queue_call, deployment.queue_url, 20)()
        pid = gateway_status().pid
        recorder = subprocess.Popen(
            [
                spy,
                "record",
                "--pid",
                str(pid),
                "--rate",
                "250",
                "--nonblocking",
                "--format",
                "raw",
                "--output",
                str(raw),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            load = sync_throughput(deployment.url, args.requests) if args.sync else None
            for _ in range(args.rounds):
                (rate,) = (load or drain_throughput(deployment.queue_url, args.requests))()
                print(f"{'sync' if args.sync else 'drain'}: {rate:.0f} req/s", file=sys.stderr)
        finally:
            recorder.send_signal(subprocess.signal.SIGINT)
            recorder.wait(30)
    print(summary(raw))
    print(f"\nraw stacks: {raw}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
