"""The app runtime alone: fake runners, runner HTTP through MockTransport and a fake clock, so
pump, scale, restore and crash loops run in microseconds, without processes or sleeping."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from fake_runtime import FakeHost, FakeRunner, settle

from fal_notebook import wire
from fal_notebook.config import AppConfig
from fal_notebook.gateway.apps import AppRuntime
from fal_notebook.gateway.prepare import DeploySpec
from fal_notebook.gateway.states import AppStatus, RunnerState

Scenario = Callable[[FakeHost, AppRuntime], Awaitable[None]]


def run(tmp_path, scenario: Scenario, *, restored: bool = False, failures: Any = (), **config: Any) -> None:
    """Deploy a fake app (auth public unless given), or restore its revision 1 as a restarted gateway
    does (``restored``), with the first runner starts scripted by ``failures``; then run ``scenario``."""

    async def main() -> None:
        app_config = AppConfig(name="fake", mode="app", class_name="Fake", **{"auth": "public", **config})
        host = FakeHost(tmp_path, app_config, start_failures=list(failures))
        runtime = AppRuntime("fake", host, auth=app_config.auth) if restored else AppRuntime("fake", host)
        try:
            if restored:
                runtime.restore(DeploySpec(path=str(tmp_path)), "digest-1", 1)
            else:
                runtime.deploy(DeploySpec(path=str(tmp_path)), "digest-1")
            await settle()
            await scenario(host, runtime)
        finally:
            runtime.close()
            runtime.close_log()
            await host.close()

    asyncio.run(main())


@pytest.fixture(autouse=True)
def _home(fal_env):
    """Each test's app log goes to its own FAL_NOTEBOOK_HOME."""


def held(gates: dict[str, asyncio.Event]):
    """A runner answer that waits until the test opens the request's gate."""

    async def respond(request: httpx.Request, runner: FakeRunner) -> httpx.Response:
        request_id = request.headers.get(wire.REQUEST_ID)
        if request_id is None:  # a health check
            return httpx.Response(200, json={"version": "0"})
        gate = gates.setdefault(request_id, asyncio.Event())
        await gate.wait()
        return httpx.Response(200, json={"runner": runner.id})

    return respond


def test_deploy_promotes_the_first_runner_and_pump_dispatches_to_the_least_busy(tmp_path):
    async def scenario(host: FakeHost, runtime: AppRuntime) -> None:
        assert runtime.status == AppStatus.READY and len(runtime.runners) == 1
        gates: dict[str, asyncio.Event] = {}
        host.respond = held(gates)
        for i in range(4):
            host.submit(runtime, f"q{i}")
        await settle()
        assert len(host.live(runtime)) == 2  # max_concurrency 2, max_multiplexing 2
        assert sorted(len(r.in_flight) for r in runtime.runners) == [2, 2]
        for gate in gates.values():
            gate.set()
        await settle()
        assert all(host.row(f"q{i}")["status"] == wire.COMPLETED for i in range(4))
        assert all(not r.in_flight for r in runtime.runners)

    run(tmp_path, scenario, max_concurrency=2, max_multiplexing=2)


def test_scale_never_exceeds_max_concurrency_and_stops_idle_runners_after_keep_alive(tmp_path):
    async def scenario(host: FakeHost, runtime: AppRuntime) -> None:
        gates: dict[str, asyncio.Event] = {}
        host.respond = held(gates)
        for i in range(10):
            host.submit(runtime, f"q{i}")
        await settle()
        assert len(host.live(runtime)) == 3
        runtime.tick()
        await settle()
        assert len(host.live(runtime)) == 3 and len(host.made) == 3
        for i in range(10):
            gates.setdefault(f"q{i}", asyncio.Event()).set()
            await settle()
        assert all(host.row(f"q{i}")["status"] == wire.COMPLETED for i in range(10))
        host.clock.advance(29)
        runtime.tick()
        await settle()
        assert len(host.live(runtime)) == 3  # keep_alive not reached yet
        host.clock.advance(2)
        runtime.tick()
        await settle()
        assert host.live(runtime) == []

    run(tmp_path, scenario, max_concurrency=3, keep_alive=30)


def test_a_slot_is_given_back_when_sending_raises(tmp_path):
    async def scenario(host: FakeHost, runtime: AppRuntime) -> None:
        async def broken(request: httpx.Request, runner: FakeRunner) -> httpx.Response:
            raise RuntimeError("the proxy hop broke")

        host.respond = broken
        host.submit(runtime, "poisoned")
        await settle()
        assert all(not r.in_flight for r in runtime.runners)
        host.respond = held({})
        host.submit(runtime, "next")
        await settle()
        assert runtime.runner_of("next") is not None  # the runner takes work again

    run(tmp_path, scenario)


def test_a_runner_that_dies_is_replaced_and_its_request_retried(tmp_path):
    async def scenario(host: FakeHost, runtime: AppRuntime) -> None:
        gates: dict[str, asyncio.Event] = {}
        host.respond = held(gates)
        host.submit(runtime, "survivor")
        await settle()
        first = runtime.runner_of("survivor")
        assert first is not None
        first.die()
        await settle()
        second = runtime.runner_of("survivor")
        assert second is not None and second is not first and second.state == RunnerState.READY
        gates["survivor"].set()
        await settle()
        assert host.row("survivor")["status"] == wire.COMPLETED and host.row("survivor")["attempts"] == 2

    run(tmp_path, scenario)


def test_deadlines_end_queued_requests_with_an_explicit_error(tmp_path):
    async def scenario(host: FakeHost, runtime: AppRuntime) -> None:
        host.respond = held({})
        host.submit(runtime, "busy")
        await settle()
        host.submit(runtime, "waits", deadline=host.clock.time() + 5)
        host.clock.advance(6)
        runtime.tick()
        await settle()
        row = host.row("waits")
        assert row["status"] == wire.COMPLETED and row["error_type"] == wire.REQUEST_TIMEOUT_ERROR
        assert row["result_status"] == 504

    run(tmp_path, scenario)
