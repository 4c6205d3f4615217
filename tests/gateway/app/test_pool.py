"""The runner pool alone (app/pool.py): scaling, failures and their back-off, crash loops."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fake_runtime import FakeHost, advance, held, run, settle

from fal_notebook.gateway.app import AppRuntime, Claim, Unavailable
from fal_notebook.gateway.runners import Launch
from fal_notebook.statuses import AppStatus
from fal_notebook.wire import RequestStatus

pytestmark = pytest.mark.usefixtures("fal_env")  # each test's app log goes to its own FAL_NOTEBOOK_HOME


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


def test_crash_loop_backs_off_exponentially_reports_and_recovers(tmp_path):
    """Observation 2: three runner failures in a row make the app crash-looping, not failed."""

    async def scenario(host: FakeHost, runtime: AppRuntime) -> None:
        first = runtime.pool.runners[0]
        host.start_failures[:] = ["OOM", "OOM", "OOM"]
        first.die()  # it never served: a failure
        await settle()
        waits = []
        for _ in range(3):
            waits.append(runtime.lifecycle.retry_at - host.clock.monotonic())
            await advance(host, runtime, waits[-1])
        assert waits == [1.0, 2.0, 4.0]
        assert runtime.status == AppStatus.CRASH_LOOPING
        info = runtime.info()
        assert info.status == "crash-looping" and "OOM" in (info.last_exit or "")
        assert info.next_attempt == pytest.approx(host.clock.time() + 8.0)
        with pytest.raises(Unavailable, match="crash-looping"):
            await runtime.queue.acquire("sync")  # a sync call is refused at once, with the reason
        host.submit(runtime, "queued")  # a queued one waits
        await advance(host, runtime, 7.0)
        assert host.row("queued").status == RequestStatus.IN_QUEUE and len(host.made) == 4
        await advance(host, runtime, 1.0)  # the fifth start succeeds
        assert runtime.status == AppStatus.READY
        assert host.row("queued").status == RequestStatus.COMPLETED and host.row("queued").result_status == 200
        assert runtime.lifecycle.failures == 0  # it served: the back-off starts again from 1 s

    run(tmp_path, scenario, min_concurrency=1)


def test_any_error_while_starting_a_runner_is_a_failure_and_spawning_never_runs_away(tmp_path):
    async def scenario(host: FakeHost, runtime: AppRuntime) -> None:
        host.start_failures[:] = [RuntimeError("no free port found")] * 50
        runtime.pool.runners[0].die()
        await settle()
        for _ in range(20):  # the housekeeping ticks every 0.25 s
            await advance(host, runtime, 0.25)
        assert runtime.lifecycle.failures == 3 and len(host.made) == 3  # starts at 1 s and 3 s, the next at 7 s
        assert "RuntimeError: no free port found" in runtime.lifecycle.last_exit
        assert host.tasks.failures == 0  # counted by the runtime, not lost in a task

    run(tmp_path, scenario, min_concurrency=1)


class OneGpu:
    """A machine with one GPU to hand out: a runner that needs it while another holds it waits."""

    def __init__(self) -> None:
        self.holder: str | None = None
        self.released: list[str] = []

    def take(self, runner_id: str, app: str, launch: Launch) -> Claim | str:
        if self.holder is not None:
            return f"no free GPU ({self.holder} holds it)"
        self.holder = runner_id
        return Claim(env={"CUDA_VISIBLE_DEVICES": "0"})

    def release(self, runner_id: str) -> None:
        self.released.append(runner_id)
        if self.holder == runner_id:
            self.holder = None

    async def released(self) -> None:
        await asyncio.Event().wait()  # the runtime's scaling asks again

    def held(self, runner_id: str) -> list[dict[str, Any]]:
        return [{"index": 0}] if self.holder == runner_id else []


def test_a_runner_takes_its_resources_before_it_starts_waits_for_them_and_gives_them_back_on_every_way_out(tmp_path):
    gpu = OneGpu()

    async def scenario(host: FakeHost, runtime: AppRuntime) -> None:
        first = runtime.pool.runners[0]
        assert gpu.holder == first.id and first.environment("state")["CUDA_VISIBLE_DEVICES"] == "0"
        host.respond = held({})
        host.submit(runtime, "q0")
        host.submit(runtime, "q1")  # max_concurrency 2: a second runner is wanted, and waits for the GPU
        await advance(host, runtime, 1.0)
        assert runtime.pool.runners == [first] and len(host.made) == 1
        assert host.row("q1").status == RequestStatus.IN_QUEUE
        assert runtime.pool.waiting == f"no free GPU ({first.id} holds it)"
        assert sum("waits: no free GPU" in e.message for e in runtime.log.events) == 1  # said once
        host.start_failures[:] = ["no CUDA driver"]
        first.die()  # exits: its GPU is given back; the next runner takes it and fails to start
        await settle()
        second = host.made[1]
        assert gpu.released == [first.id, second.id] and gpu.holder is None
        await advance(host, runtime, 1.0)  # the back-off passed: the third takes the GPU, and a request
        third = host.made[2]
        assert runtime.pool.runners == [third] and gpu.holder == third.id and len(third.in_flight) == 1
        await runtime.stop()
        assert gpu.released == [first.id, second.id, third.id] and gpu.holder is None

    run(tmp_path, scenario, resources=gpu, max_concurrency=2)
