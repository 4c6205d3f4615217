"""A fake host for one AppRuntime: fake runners (no processes), runner HTTP through httpx's
MockTransport, and a fake clock that only moves when a test moves it (no sleeping)."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from fal_notebook.config import AppConfig
from fal_notebook.gateway.apps import AppRuntime, Build
from fal_notebook.gateway.envs import OnLine
from fal_notebook.gateway.prepare import DeploySpec
from fal_notebook.gateway.runners import Launch, OnOutput, Runner, RunnerStartError
from fal_notebook.gateway.store import Request, Store
from fal_notebook.gateway.supervisor import Clock, Supervisor
from fal_notebook.gateway.upstream import Response, UpstreamError
from fal_notebook.statuses import RunnerState


class FakeClock(Clock):
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return 1_700_000_000.0 + self.now

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)

    def advance(self, seconds: float) -> None:
        self.now += seconds


_ports = itertools.count(20000)


@dataclass(eq=False)
class FakeRunner(Runner):
    """A runner without a process: ``start`` succeeds or fails as its host scripts it; ``die()``
    is a SIGKILL."""

    host: Any = None
    hang_start: bool = False

    async def start(self, http: httpx.AsyncClient, *, state_id: str, tasks: Supervisor) -> None:
        await asyncio.sleep(0)
        failure = self.host.start_failures.pop(0) if self.host.start_failures else None
        if isinstance(failure, BaseException):
            raise failure
        if failure:
            self.die(3)
            raise RunnerStartError(f"Runner {self.id} exited with code 3 before it was ready. {failure}")
        if self.state != RunnerState.STARTING:
            raise RunnerStartError(f"Runner {self.id} was stopped before it was ready.")
        self.port = next(_ports)
        self.state = RunnerState.READY

    async def stop(self, grace: float = 5.0) -> None:
        if self.state != RunnerState.DEAD:
            self.state = RunnerState.STOPPING
        if not self.exited.is_set():
            self.returncode = -15
            self.exited.set()
        self.state = RunnerState.DEAD

    def die(self, code: int = -9) -> None:
        self.returncode = code
        self.exited.set()

    def kill(self) -> None:
        self.die()


Respond = Callable[[httpx.Request, FakeRunner], Awaitable[httpx.Response]]


async def answer_ok(request: httpx.Request, runner: FakeRunner) -> httpx.Response:
    return httpx.Response(200, json={"runner": runner.id})


@dataclass
class FakeHost:
    """What AppRuntime needs (apps.Host), faked. ``respond`` answers the runners' HTTP;
    ``start_failures`` scripts the next runner starts (a message: it exits; an exception: raised)."""

    folder: Path
    config: AppConfig
    respond: Respond = answer_ok
    state_id: str = "fake-state"
    start_failures: list[Any] = field(default_factory=list)
    build_failures: list[BaseException] = field(default_factory=list)
    made: list[FakeRunner] = field(default_factory=list)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    notified: list[str] = field(default_factory=list)
    ended: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.store = Store(self.folder / "queue.sqlite3")
        self.http = httpx.AsyncClient(transport=httpx.MockTransport(self._handle))
        self.upstream = FakeUpstream(self)
        self.tasks = Supervisor()
        self.clock = FakeClock()

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        runner = next((r for r in self.made if r.port == request.url.port), None)
        if runner is None or runner.exited.is_set():
            raise httpx.ConnectError("connection refused", request=request)
        if request.url.path == "/openapi.json":
            return httpx.Response(200, json={"openapi": "3.1.0"})
        answer = asyncio.ensure_future(self.respond(request, runner))
        died = asyncio.ensure_future(runner.exited.wait())
        await asyncio.wait({answer, died}, return_when=asyncio.FIRST_COMPLETED)
        died.cancel()
        if not answer.done():  # the runner died mid-request: its connection breaks
            answer.cancel()
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)
        return answer.result()

    def notify(self, request_id: str) -> None:
        self.notified.append(request_id)

    def save_app(self, runtime: AppRuntime) -> None:
        self.records[runtime.name] = {"status": str(runtime.status), "auth": runtime.auth}

    def last_revision(self, name: str) -> int:
        return 0

    def completed(self, request_id: str) -> None:
        self.ended.append(request_id)

    async def build(self, spec: DeploySpec, snapshot: Path, *, copy: bool, on_line: OnLine) -> Build:
        await asyncio.sleep(0)
        if self.build_failures:
            raise self.build_failures.pop(0)
        return Build(self.config, Launch(["fake"], self.folder, {}), [])

    def new_runner(self, runner_id: str, revision: int, launch: Launch, on_output: OnOutput) -> Runner:
        runner = FakeRunner(runner_id, revision, launch, on_output, host=self)
        self.made.append(runner)
        return runner

    # -- helpers for tests ---------------------------------------------------------------------
    def live(self, runtime: AppRuntime) -> list[Runner]:
        return [r for r in runtime.runners if r.state in (RunnerState.STARTING, RunnerState.READY)]

    def submit(self, runtime: AppRuntime, request_id: str, *, deadline: float | None = None, body: Any = None) -> None:
        """Store a queued request and hand it to the runtime (as Gateway.submit does)."""
        payload = json.dumps(body if body is not None else {"id": request_id}).encode()
        self.store.add_request(request_id, runtime.name, "/", {}, body=payload, start_deadline=deadline)
        runtime.enqueue(request_id, deadline=deadline)

    def row(self, request_id: str) -> Request:
        request = self.store.get(request_id)
        assert request is not None, f"request {request_id} is stored"
        return request

    async def close(self) -> None:
        await self.tasks.close()
        await self.http.aclose()
        self.store.close()


class FakeUpstream:
    """The proxy hop to runners (upstream.Upstream), answered by the host's ``respond``."""

    def __init__(self, host: FakeHost):
        self.host = host

    async def send(self, method: str, url: str, *, content: bytes = b"", headers: Any = None) -> Response:
        try:
            answer = await self.host._handle(httpx.Request(method, url, content=content, headers=headers))
        except httpx.HTTPError as exc:
            raise UpstreamError(f"{type(exc).__name__}: {exc}") from None
        return Response.of(answer.status_code, list(answer.headers.items()), answer.content)

    async def aclose(self) -> None:
        pass


async def settle(rounds: int = 30) -> None:
    """Let every runnable task run (the fake world never waits on time)."""
    for _ in range(rounds):
        await asyncio.sleep(0)
