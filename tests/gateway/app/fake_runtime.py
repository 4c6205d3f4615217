"""A fake host for one AppRuntime: fake runners (no processes), runner HTTP through httpx's
MockTransport, and a fake clock that only moves when a test moves it (no sleeping); ``run`` deploys
a fake app on it and runs a test's scenario, so each room of the runtime is tested alone, in
microseconds."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from fal_notebook import wire
from fal_notebook.config import AppConfig
from fal_notebook.gateway.admin_api import DeploySpec
from fal_notebook.gateway.app import AppRuntime, Build, NoResources, Resources
from fal_notebook.gateway.envs import OnLine
from fal_notebook.gateway.runners import Launch, OnOutput, Runner, RunnerStartError
from fal_notebook.gateway.store import AppRecord, Request, Store
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

    @property
    def ports(self) -> set[int]:
        return {self.port} if self.port is not None else set()

    def beyond_loopback(self, public: list[str] | None = None) -> list[str]:  # (the host says where, not /proc)
        return self.host.listening.get(self.id, [])

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
    """What AppRuntime needs (app.Host), faked. ``respond`` answers the runners' HTTP;
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
    resources: Resources = field(default_factory=NoResources)
    listening: dict[str, list[str]] = field(default_factory=dict)  # runner id → where it listens beyond loopback

    def __post_init__(self) -> None:
        self.store = Store(self.folder / "queue.sqlite3")
        self.http = httpx.AsyncClient(transport=httpx.MockTransport(self._handle))
        self.probes = self.http
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

    def save_app(self, name: str, record: AppRecord) -> None:
        self.records[name] = {"status": str(record.status), "auth": record.auth}

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
        return [r for r in runtime.pool.runners if r.state in (RunnerState.STARTING, RunnerState.READY)]

    def submit(self, runtime: AppRuntime, request_id: str, *, deadline: float | None = None, body: Any = None) -> None:
        """Store a queued request and hand it to the runtime (as Gateway.submit does)."""
        payload = json.dumps(body if body is not None else {"id": request_id}).encode()
        self.store.add_request(request_id, runtime.name, "/", {}, body=payload, start_deadline=deadline)
        runtime.queue.enqueue(request_id, deadline=deadline)

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


Scenario = Callable[[FakeHost, AppRuntime], Awaitable[None]]


def run(
    tmp_path: Path,
    scenario: Scenario,
    *,
    restored: bool = False,
    failures: Iterable[Any] = (),
    build_failures: Iterable[BaseException] = (),
    resources: Resources | None = None,
    **config: Any,
) -> None:
    """Deploy a fake app (auth public unless given), or restore its revision 1 as a restarted gateway
    does (``restored``), with the first runner starts scripted by ``failures`` (and builds by
    ``build_failures``); then run ``scenario``. The test needs a FAL_NOTEBOOK_HOME of its own (the
    ``fal_env`` fixture): the app's log goes there."""

    async def main() -> None:
        app_config = AppConfig(name="fake", mode="app", class_name="Fake", **{"auth": "public", **config})
        host = FakeHost(tmp_path, app_config, start_failures=list(failures), build_failures=list(build_failures))
        if resources is not None:
            host.resources = resources
        runtime = AppRuntime("fake", host, auth=app_config.auth if restored else None)
        try:
            if restored:
                runtime.restore(DeploySpec(path=str(tmp_path)), "digest-1", 1)
            else:
                runtime.deploy(DeploySpec(path=str(tmp_path)), "digest-1")
            await settle()
            await scenario(host, runtime)
        finally:
            runtime.close()
            runtime.log.close()
            await host.close()

    asyncio.run(main())


async def advance(host: FakeHost, runtime: AppRuntime, seconds: float) -> None:
    """Move the fake clock, run the housekeeping tick, let the tasks run."""
    host.clock.advance(seconds)
    runtime.tick()
    await settle()


def held(gates: dict[str, asyncio.Event]) -> Respond:
    """A runner answer that waits until the test opens the request's gate."""

    async def respond(request: httpx.Request, runner: FakeRunner) -> httpx.Response:
        request_id = request.headers.get(wire.REQUEST_ID)
        if request_id is None:  # a health check
            return httpx.Response(200, json={"version": "0"})
        gate = gates.setdefault(request_id, asyncio.Event())
        await gate.wait()
        return httpx.Response(200, json={"runner": runner.id})

    return respond
