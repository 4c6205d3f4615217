"""Attempts alone (app/attempts.py): every queued request ends, its runner's slot is given back on
every way out, and a lost runner's request is retried."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fake_runtime import FakeHost, FakeRunner, held, run, settle

from fal_notebook.gateway.app import AppRuntime
from fal_notebook.statuses import RunnerState
from fal_notebook.wire import ErrorType, RequestStatus

pytestmark = pytest.mark.usefixtures("fal_env")  # each test's app log goes to its own FAL_NOTEBOOK_HOME


def test_a_slot_is_given_back_when_sending_raises(tmp_path):
    async def scenario(host: FakeHost, runtime: AppRuntime) -> None:
        async def broken(request: httpx.Request, runner: FakeRunner) -> httpx.Response:
            raise RuntimeError("the proxy hop broke")

        host.respond = broken
        host.submit(runtime, "poisoned")
        await settle()
        assert all(not r.in_flight for r in runtime.pool.runners)
        host.respond = held({})
        host.submit(runtime, "next")
        await settle()
        assert runtime.pool.runner_of("next") is not None  # the runner takes work again

    run(tmp_path, scenario)


def test_a_runner_that_dies_is_replaced_and_its_request_retried(tmp_path):
    async def scenario(host: FakeHost, runtime: AppRuntime) -> None:
        gates: dict[str, asyncio.Event] = {}
        host.respond = held(gates)
        host.submit(runtime, "survivor")
        await settle()
        first = runtime.pool.runner_of("survivor")
        assert first is not None
        first.die()
        await settle()
        second = runtime.pool.runner_of("survivor")
        assert second is not None and second is not first and second.state == RunnerState.READY
        gates["survivor"].set()
        await settle()
        assert host.row("survivor").status == RequestStatus.COMPLETED and host.row("survivor").attempts == 2

    run(tmp_path, scenario)


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
        assert all(not r.in_flight for r in runtime.pool.runners) and host.tasks.failures == 1  # and it was logged

    run(tmp_path, scenario)


def test_a_stored_header_that_cannot_be_forwarded_ends_at_once_and_keeps_the_runner(tmp_path):
    """Observation 3 past the door (a row queued before the door checked): 400 at once, no wedge."""

    async def scenario(host: FakeHost, runtime: AppRuntime) -> None:
        runner = runtime.pool.runners[0]
        host.store.save_body("bad", b"{}")
        host.store.add_request("bad", "fake", "/", {"user-agent": "caf\xc3\xa9"})
        runtime.queue.enqueue("bad")
        await settle()
        row = host.row("bad")
        assert row.status == RequestStatus.COMPLETED and row.result_status == 400
        assert row.error_type == ErrorType.BAD_REQUEST and row.attempts == 1
        host.submit(runtime, "good")
        await settle()
        assert host.row("good").result_status == 200 and runtime.pool.runners == [runner]

    run(tmp_path, scenario)
