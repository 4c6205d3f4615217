"""The work queue alone (app/queue.py): waiting work handed to the least busy free runner, and
waiting work that cannot be served ended with an explicit error."""

from __future__ import annotations

import asyncio

import pytest
from fake_runtime import FakeHost, advance, held, run, settle

from fal_notebook.gateway.app import AppRuntime
from fal_notebook.statuses import AppStatus
from fal_notebook.wire import ErrorType, RequestStatus

pytestmark = pytest.mark.usefixtures("fal_env")  # each test's app log goes to its own FAL_NOTEBOOK_HOME


def test_deploy_promotes_the_first_runner_and_pump_dispatches_to_the_least_busy(tmp_path):
    async def scenario(host: FakeHost, runtime: AppRuntime) -> None:
        assert runtime.status == AppStatus.READY and len(runtime.pool.runners) == 1
        gates: dict[str, asyncio.Event] = {}
        host.respond = held(gates)
        for i in range(4):
            host.submit(runtime, f"q{i}")
        await settle()
        assert len(host.live(runtime)) == 2  # max_concurrency 2, max_multiplexing 2
        assert sorted(len(r.in_flight) for r in runtime.pool.runners) == [2, 2]
        for gate in gates.values():
            gate.set()
        await settle()
        assert all(host.row(f"q{i}").status == RequestStatus.COMPLETED for i in range(4))
        assert all(not r.in_flight for r in runtime.pool.runners)

    run(tmp_path, scenario, max_concurrency=2, max_multiplexing=2)


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


def test_requests_waiting_for_a_crash_looping_app_end_at_their_deadlines(tmp_path):
    async def scenario(host: FakeHost, runtime: AppRuntime) -> None:
        host.start_failures[:] = ["crash"] * 100
        runtime.pool.runners[0].die()
        await settle()
        host.submit(runtime, "impatient", deadline=host.clock.time() + 5)
        host.submit(runtime, "patient")
        for _ in range(4):
            await advance(host, runtime, runtime.lifecycle.retry_at - host.clock.monotonic())
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
