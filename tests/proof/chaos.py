"""Chaos against a real gateway: clients queue requests while runners and the gateway are SIGKILLed.

One run: an app whose calls take 50-200 ms is deployed; ``clients`` clients submit ``requests``
requests in all (a submit that gets no answer is sent again); for ``kill_seconds`` a random runner is
SIGKILLed every 0.2-0.8 s (one that runs requests when there is one, else one in four times a starting
or idle one), and the gateway is SIGKILLed ``gateway_kills`` times and started again at once (as
``fal-notebook gateway start`` does). Then every accepted request is waited for, the gateway
is stopped, and what is left behind is looked for. The app records each execution of a request, so
executions are counted on the app's side, not the gateway's.

Sizes: ``FAL_NOTEBOOK_PROOF_SIZE=full`` runs the issue's size; the default ``ci`` a reduced one.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from fal_notebook.gateway import gateway_key, start_gateway, stop_gateway
from fal_notebook.gateway.paths import pid_path, state_id
from fal_notebook.gateway.retries import MAX_ATTEMPTS
from fal_notebook.gateway.runners import RUNNER_MARKER
from fal_notebook.state import read_json
from fal_notebook.wire import RequestStatus

SIZE_VARIABLE = "FAL_NOTEBOOK_PROOF_SIZE"


@dataclass(frozen=True)
class Size:
    name: str
    requests: int
    clients: int
    kill_seconds: float
    gateway_kills: int
    settle_seconds: float  # how long accepted requests may take to end once the kills stop


LOCAL_SIZES = {
    "full": Size("full", 2000, 50, 60.0, 2, 600.0),
    "ci": Size("ci", 300, 20, 15.0, 2, 300.0),
}
DOCKER_SIZES = {
    "full": Size("full", 500, 20, 30.0, 2, 600.0),
    "ci": Size("ci", 80, 8, 12.0, 1, 300.0),
}


def chosen(sizes: dict[str, Size]) -> Size:
    name = os.environ.get(SIZE_VARIABLE, "ci").strip().lower() or "ci"
    if name not in sizes:
        raise ValueError(f"{SIZE_VARIABLE}={name!r}: use one of {', '.join(sizes)}")
    return sizes[name]


@dataclass
class Report:
    target: str
    size: str
    requests: int
    clients: int
    kill_seconds: float
    accepted: int = 0
    refused_submits: int = 0  # submits that got no answer or a 5xx (sent again)
    runner_kills: int = 0
    gateway_kills: int = 0
    completed: int = 0  # with the app's output
    ended_with_error: dict[str, int] = field(default_factory=dict)  # error_type -> count
    unexplained_errors: list[str] = field(default_factory=list)  # failures without an error_type
    lost: list[str] = field(default_factory=list)  # accepted, never completed
    over_executed: dict[str, int] = field(default_factory=dict)  # request id -> executions above the budget
    max_executions: int = 0
    retried: int = 0  # requests executed more than once (within the budget)
    uncounted: int = 0  # completed with the app's output, but no execution recorded
    leaked: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def faults(self) -> str:
        return f"{self.runner_kills} runner + {self.gateway_kills} gateway SIGKILLs"

    def row(self) -> str:
        errors = sum(self.ended_with_error.values())
        return (
            f"| {self.target} ({self.size}) | {self.accepted} accepted from {self.clients} clients "
            f"| {self.faults} in {self.kill_seconds:g} s | {len(self.lost)} | {len(self.over_executed)} "
            f"| {len(self.leaked)} | {self.completed} with output, {errors} with an explicit error "
            f"| {self.seconds:.0f} s |"
        )

    def save(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"chaos-{self.target}-{self.size}.json"
        path.write_text(json.dumps({**asdict(self), "row": self.row()}, indent=2))
        return path


@dataclass
class Target:
    """How one deploy target is hurt and read: ``kill_runner`` SIGKILLs the runner the admin API
    describes, or any runner for None (False when none runs); ``executions`` counts the app's
    executions per request id; ``leftovers`` lists what outlived the gateway."""

    name: str
    app: str
    kill_runner: Callable[[dict[str, Any] | None], bool]
    executions: Callable[[], Counter[str]]
    leftovers: Callable[[], list[str]]


# -- runner processes -------------------------------------------------------------------------------
def runner_processes() -> list[int]:
    """Processes of this state directory's runners (and their children), from /proc."""
    marker = f"{RUNNER_MARKER}={state_id()}/".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker in (entry / "environ").read_bytes() and _state(int(entry.name)) != "Z":
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "gone"


def kill_runner_process(runner: dict[str, Any] | None) -> bool:
    """SIGKILL a runner's process (``runner`` from the admin API, else a random one's process group
    leader), as an OOM killer would."""
    if runner is not None:
        try:
            os.kill(runner["pid"], signal.SIGKILL)
        except (ProcessLookupError, TypeError):
            return False
        return True
    leaders = []
    for pid in runner_processes():
        try:
            if os.getpgid(pid) == pid:
                leaders.append(pid)
        except ProcessLookupError:
            continue
    if not leaders:
        return False
    try:
        os.kill(random.choice(leaders), signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


# -- the run ----------------------------------------------------------------------------------------
@dataclass
class Run:
    target: Target
    size: Size
    base: str
    report: Report
    urls: dict[str, tuple[str, str]] = field(default_factory=dict)  # request id -> (status, response) URL
    ports: set[int] = field(default_factory=set)
    submitting_until: float = 0.0

    async def client(self, numbers: list[int]) -> None:
        """Submit ``numbers`` one by one, spread over the first part of the kill window; a submit
        without an answer is sent again (for a bounded time: a gateway that never answers again fails
        the run through what was not accepted)."""
        pause = self.submitting_until / max(len(numbers), 1)
        give_up = time.monotonic() + self.size.kill_seconds + 120
        async with httpx.AsyncClient(base_url=self.base, timeout=10.0) as http:
            for number in numbers:
                while time.monotonic() < give_up:
                    try:
                        response = await http.post(f"/queue/local/{self.target.app}", json={"n": number})
                    except httpx.TransportError:
                        response = None
                    if response is not None and response.status_code == 200:
                        data = response.json()
                        self.urls[data["request_id"]] = (data["status_url"], data["response_url"])
                        break
                    self.report.refused_submits += 1
                    await asyncio.sleep(0.2)
                await asyncio.sleep(random.uniform(0, 2 * pause))

    async def chaos(self) -> None:
        """Kill runners at random for ``kill_seconds``, and the gateway ``gateway_kills`` times."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        kills = [
            self.size.kill_seconds * (i + 1) / (self.size.gateway_kills + 1) for i in range(self.size.gateway_kills)
        ]
        while (elapsed := loop.time() - started) < self.size.kill_seconds:
            if kills and elapsed >= kills[0]:
                kills.pop(0)
                await asyncio.to_thread(kill_gateway_and_start_again)
                self.report.gateway_kills += 1
            elif await self.kill_a_runner():
                self.report.runner_kills += 1
            await asyncio.sleep(random.uniform(0.2, 0.8))

    async def kill_a_runner(self) -> bool:
        """SIGKILL a runner that runs requests if there is one, else (one time in four) a starting or
        idle one; any runner process while the gateway does not answer."""
        runners = await self.runners()
        if runners is None:
            return await asyncio.to_thread(self.target.kill_runner, None)
        busy = [r for r in runners if r["state"] == "ready" and r["in_flight"]]
        if not busy and (not runners or random.random() >= 0.25):
            return False
        return await asyncio.to_thread(self.target.kill_runner, random.choice(busy or runners))

    async def runners(self) -> list[dict[str, Any]] | None:
        """The app's runners from the admin API (None when the gateway does not answer); their ports
        are noted, to check that none is left listening at the end."""
        try:
            async with httpx.AsyncClient(base_url=self.base, timeout=2.0) as http:
                info = await http.get(
                    f"/_fal_notebook/apps/{self.target.app}", headers={"Authorization": f"Key {gateway_key()}"}
                )
            runners = info.json()["runners"]
        except (httpx.HTTPError, ValueError, KeyError):
            return None
        self.ports |= {r["port"] for r in runners if r.get("port")}
        return runners

    async def wait_for_all(self) -> dict[str, tuple[int, dict[str, Any]]]:
        """Every accepted request's final status and result status, until all ended or the time is up."""
        ended: dict[str, tuple[int, dict[str, Any]]] = {}
        deadline = time.monotonic() + self.size.settle_seconds
        limit = asyncio.Semaphore(16)
        async with httpx.AsyncClient(timeout=10.0) as http:

            async def check(request_id: str) -> None:
                status_url, response_url = self.urls[request_id]
                async with limit:
                    try:
                        status = await http.get(status_url)
                        if status.status_code != 200 or status.json().get("status") != RequestStatus.COMPLETED:
                            return
                        result = await http.get(response_url)
                    except httpx.TransportError:
                        return
                    ended[request_id] = (result.status_code, status.json())

            while time.monotonic() < deadline:
                waiting = [r for r in self.urls if r not in ended]
                if not waiting:
                    break
                await asyncio.gather(*(check(r) for r in waiting))
                await self.runners()
                await asyncio.sleep(1.0)
        return ended

    async def main(self) -> None:
        numbers = list(range(self.size.requests))
        shares = [numbers[i :: self.size.clients] for i in range(self.size.clients)]
        self.submitting_until = self.size.kill_seconds * 0.5
        await asyncio.gather(self.chaos(), *(self.client(share) for share in shares))


def kill_gateway_and_start_again() -> None:
    recorded = read_json(pid_path(), None) or {}
    pid = recorded.get("pid")
    if isinstance(pid, int):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 10
        while _state(pid) not in ("gone", "Z") and time.monotonic() < deadline:
            time.sleep(0.05)
    start_gateway(timeout=60)


def run_chaos(target: Target, size: Size, base: str) -> Report:
    """One chaos run against the app ``target.app``, deployed and serving behind the gateway at ``base``."""
    report = Report(target.name, size.name, size.requests, size.clients, size.kill_seconds)
    run = Run(target, size, base, report)
    started = time.monotonic()
    asyncio.run(run.main())
    ended = asyncio.run(run.wait_for_all())
    report.seconds = time.monotonic() - started
    report.accepted = len(run.urls)
    for request_id in run.urls:
        if request_id not in ended:
            report.lost.append(request_id)
            continue
        code, status = ended[request_id]
        if code == 200:
            report.completed += 1
        elif status.get("error_type"):
            kind = status["error_type"]
            report.ended_with_error[kind] = report.ended_with_error.get(kind, 0) + 1
        else:
            report.unexplained_errors.append(f"{request_id}: {code} {status.get('error')}")
    stop_gateway()
    executions = target.executions()
    for request_id in run.urls:
        count = executions.get(request_id, 0)
        report.uncounted += count == 0 and ended.get(request_id, (0, {}))[0] == 200
        report.max_executions = max(report.max_executions, count)
        report.retried += count > 1
        if count > MAX_ATTEMPTS:
            report.over_executed[request_id] = count
    report.leaked = leftovers(target, run.ports | {int(base.rsplit(":", 1)[1])})
    return report


def leftovers(target: Target, ports: set[int]) -> list[str]:
    """What outlived the stopped gateway: processes, containers, listening ports (given a few seconds)."""
    deadline = time.monotonic() + 15
    while True:
        found = target.leftovers() + [f"port {p} still listening" for p in sorted(ports) if listening(p)]
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.5)
