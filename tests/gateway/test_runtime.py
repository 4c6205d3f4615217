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
from fal_notebook.gateway.apps import AppRuntime, Unavailable
from fal_notebook.gateway.prepare import DeploySpec
from fal_notebook.gateway.settings import HealthProbe, Settings
from fal_notebook.statuses import AppStatus, RunnerState
from fal_notebook.wire import ErrorType, RequestStatus

Scenario = Callable[[FakeHost, AppRuntime], Awaitable[None]]


def run(
    tmp_path, scenario: Scenario, *, restored: bool = False, failures: Any = (), build_failures: Any = (), **config: Any
) -> None:
    """Deploy a fake app (auth public unless given), or restore its revision 1 as a restarted gateway
    does (``restored``), with the first runner starts scripted by ``failures`` (and builds by
    ``build_failures``); then run ``scenario``."""

    async def main() -> None:
        app_config = AppConfig(name="fake", mode="app", class_name="Fake", **{"auth": "public", **config})
        host = FakeHost(tmp_path, app_config, start_failures=list(failures), build_failures=list(build_failures))
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
        assert all(host.row(f"q{i}").status == RequestStatus.COMPLETED for i in range(4))
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
        assert all(host.row(f"q{i}").status == RequestStatus.COMPLETED for i in range(10))
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
        assert host.row("survivor").status == RequestStatus.COMPLETED and host.row("survivor").attempts == 2

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
        assert row.status == RequestStatus.COMPLETED and row.error_type == ErrorType.REQUEST_TIMEOUT
        assert row.result_status == 504

    run(tmp_path, scenario)


async def advance(host: FakeHost, runtime: AppRuntime, seconds: float) -> None:
    """Move the fake clock, run the housekeeping tick, let the tasks run."""
    host.clock.advance(seconds)
    runtime.tick()
    await settle()


def test_a_restore_whose_first_runner_dies_backs_off_and_serves_its_queue(tmp_path):
    """Observation 1: the restored app neither fails nor forgets its auth mode; its queue completes."""

    async def scenario(host: FakeHost, runtime: AppRuntime) -> None:
        for i in range(5):
            host.submit(runtime, f"q{i}")
        await settle()
        assert runtime.status != AppStatus.FAILED and runtime.auth == "public"
        assert len(host.made) == 1 and runtime.runners == []  # the first runner died while starting
        assert all(host.row(f"q{i}").status == RequestStatus.IN_QUEUE for i in range(5))
        runtime.tick()
        await settle()
        assert len(host.made) == 1  # backing off: no new runner before its time
        await advance(host, runtime, 1.0)
        assert len(host.made) == 2 and runtime.status == AppStatus.READY
        assert all(host.row(f"q{i}").status == RequestStatus.COMPLETED for i in range(5))
        assert host.records["fake"] == {"status": "ready", "auth": "public"}

    run(tmp_path, scenario, restored=True, failures=["SIGKILL"])


def test_a_restore_that_cannot_be_prepared_retries_with_back_off(tmp_path):
    async def scenario(host: FakeHost, runtime: AppRuntime) -> None:
        assert runtime.status == AppStatus.DEPLOYING and runtime.failures == 1 and runtime.auth == "public"
        host.submit(runtime, "waits")
        await advance(host, runtime, 1.0)  # the second try fails too
        assert runtime.failures == 2 and host.row("waits").status == RequestStatus.IN_QUEUE
        await advance(host, runtime, 2.0)
        assert runtime.status == AppStatus.READY and host.row("waits").status == RequestStatus.COMPLETED

    run(tmp_path, scenario, restored=True, build_failures=[OSError("its Python is gone")] * 2)


def test_crash_loop_backs_off_exponentially_reports_and_recovers(tmp_path):
    """Observation 2: three runner failures in a row make the app crash-looping, not failed."""

    async def scenario(host: FakeHost, runtime: AppRuntime) -> None:
        first = runtime.runners[0]
        host.start_failures[:] = ["OOM", "OOM", "OOM"]
        first.die()  # it never served: a failure
        await settle()
        waits = []
        for _ in range(3):
            waits.append(runtime.retry_at - host.clock.monotonic())
            await advance(host, runtime, waits[-1])
        assert waits == [1.0, 2.0, 4.0]
        assert runtime.status == AppStatus.CRASH_LOOPING
        info = runtime.info()
        assert info["status"] == "crash-looping" and "OOM" in info["last_exit"]
        assert info["next_attempt"] == pytest.approx(host.clock.time() + 8.0)
        with pytest.raises(Unavailable, match="crash-looping"):
            await runtime.acquire("sync")  # a sync call is refused at once, with the reason
        host.submit(runtime, "queued")  # a queued one waits
        await advance(host, runtime, 7.0)
        assert host.row("queued").status == RequestStatus.IN_QUEUE and len(host.made) == 4
        await advance(host, runtime, 1.0)  # the fifth start succeeds
        assert runtime.status == AppStatus.READY
        assert host.row("queued").status == RequestStatus.COMPLETED and host.row("queued").result_status == 200
        assert runtime.failures == 0  # it served: the back-off starts again from 1 s

    run(tmp_path, scenario, min_concurrency=1)


def test_requests_waiting_for_a_crash_looping_app_end_at_their_deadlines(tmp_path):
    async def scenario(host: FakeHost, runtime: AppRuntime) -> None:
        host.start_failures[:] = ["crash"] * 100
        runtime.runners[0].die()
        await settle()
        host.submit(runtime, "impatient", deadline=host.clock.time() + 5)
        host.submit(runtime, "patient")
        for _ in range(4):
            await advance(host, runtime, runtime.retry_at - host.clock.monotonic())
        assert runtime.status == AppStatus.CRASH_LOOPING
        impatient = host.row("impatient")
        assert impatient.status == RequestStatus.COMPLETED and impatient.error_type == ErrorType.REQUEST_TIMEOUT
        assert host.row("patient").status == RequestStatus.IN_QUEUE
        await advance(host, runtime, 31)  # crash-looping longer than startup_timeout: it cannot be brought back
        patient = host.row("patient")
        assert patient.status == RequestStatus.COMPLETED and patient.result_status == 503
        assert patient.error_type == ErrorType.RUNNER_SCHEDULING_FAILURE and "startup_timeout=30" in patient.error
        made = len(host.made)
        await advance(host, runtime, 60)
        assert len(host.made) == made + 1  # it keeps trying, one runner at a time

    run(tmp_path, scenario, min_concurrency=1, startup_timeout=30)


def test_any_error_while_starting_a_runner_is_a_failure_and_spawning_never_runs_away(tmp_path):
    async def scenario(host: FakeHost, runtime: AppRuntime) -> None:
        host.start_failures[:] = [RuntimeError("no free port found")] * 50
        runtime.runners[0].die()
        await settle()
        for _ in range(20):  # the housekeeping ticks every 0.25 s
            await advance(host, runtime, 0.25)
        assert runtime.failures == 3 and len(host.made) == 3  # starts at 1 s and 3 s, the next at 7 s
        assert "RuntimeError: no free port found" in runtime.last_exit
        assert host.tasks.failures == 0  # counted by the runtime, not lost in a task

    run(tmp_path, scenario, min_concurrency=1)


def test_a_failure_of_the_gateway_itself_ends_the_request_and_frees_the_slot(tmp_path):
    async def scenario(host: FakeHost, runtime: AppRuntime) -> None:
        async def broken(request: httpx.Request, runner: FakeRunner) -> httpx.Response:
            raise RuntimeError("the proxy hop broke")

        host.respond = broken
        host.submit(runtime, "poisoned")
        await settle()
        row = host.row("poisoned")
        assert row.status == RequestStatus.COMPLETED and row.result_status == 500
        assert row.error_type == ErrorType.INTERNAL_ERROR and "the proxy hop broke" in row.error
        assert all(not r.in_flight for r in runtime.runners) and host.tasks.failures == 1  # and it was logged

    run(tmp_path, scenario)


def test_a_stored_header_that_cannot_be_forwarded_ends_at_once_and_keeps_the_runner(tmp_path):
    """Observation 3 past the door (a row queued before the door checked): 400 at once, no wedge."""

    async def scenario(host: FakeHost, runtime: AppRuntime) -> None:
        runner = runtime.runners[0]
        host.store.save_body("bad", b"{}")
        host.store.add_request("bad", "fake", "/", {"user-agent": "caf\xc3\xa9"})
        runtime.enqueue("bad")
        await settle()
        row = host.row("bad")
        assert row.status == RequestStatus.COMPLETED and row.result_status == 400
        assert row.error_type == ErrorType.BAD_REQUEST and row.attempts == 1
        host.submit(runtime, "good")
        await settle()
        assert host.row("good").result_status == 200 and runtime.runners == [runner]

    run(tmp_path, scenario)


def test_an_unhealthy_runner_is_replaced_and_its_request_retried(tmp_path):
    async def scenario(host: FakeHost, runtime: AppRuntime) -> None:
        gates: dict[str, asyncio.Event] = {}
        hung: set[str] = set()
        inner = held(gates)

        async def respond(request: httpx.Request, runner: FakeRunner) -> httpx.Response:
            if request.url.path == "/healthz" and runner.id in hung:
                raise httpx.ReadTimeout("timed out", request=request)
            return await inner(request, runner)

        host.respond = respond
        host.submit(runtime, "stuck")
        await settle()
        first = runtime.runner_of("stuck")
        hung.add(first.id)
        await advance(host, runtime, 15)  # fal's interval: a check every 15 s; 1 failure
        await advance(host, runtime, 15)  # 2 failures: the threshold, but still in the start period
        assert first.state == RunnerState.READY
        await advance(host, runtime, 15)  # 3 failures, past start_period (40 s): replaced
        assert first.state in (RunnerState.STOPPING, RunnerState.DEAD)
        second = runtime.runner_of("stuck")
        assert second is not None and second is not first
        gates["stuck"].set()
        await settle()
        assert host.row("stuck").result_status == 200 and host.row("stuck").attempts == 2

    health = {"path": "/healthz", "failure_threshold": 2, "start_period_seconds": 40, "method": "GET"}
    run(tmp_path, scenario, health_check=health, startup_timeout=10)


def test_health_checks_follow_the_app_settings_and_fal_defaults(tmp_path):
    app = Settings.from_config(AppConfig(name="a", mode="app", class_name="A"))
    assert app.health == HealthProbe("/health", "GET", 15.0, 5.0, 3, 600.0)  # startup_timeout 600 > 30
    configured = AppConfig(
        name="s",
        mode="server",
        exposed_port=8000,
        startup_timeout=5,
        health_check={"path": "/ok", "timeout_seconds": 2},
    )
    assert Settings.from_config(configured).health == HealthProbe("/ok", "GET", 15.0, 2.0, 3, 30.0)
    manual = AppConfig(
        name="s", mode="server", exposed_port=8000, health_check={"path": "/ok", "call_regularly": False}
    )
    assert Settings.from_config(manual).health is None
    assert Settings.from_config(AppConfig(name="s", mode="server", exposed_port=8000)).health is None
