"""Rollouts alone (app/rollout.py): a redeploy replaces what serves without dropping a request, a
cancelled one leaves it serving, a restored revision serves again through failures."""

from __future__ import annotations

import asyncio

import pytest
from fake_runtime import FakeHost, advance, held, run, settle

from fal_notebook.gateway.admin_api import DeploySpec
from fal_notebook.gateway.app import AppRuntime
from fal_notebook.statuses import AppStatus, RevisionStatus, RunnerState
from fal_notebook.wire import RequestStatus

pytestmark = pytest.mark.usefixtures("fal_env")  # each test's app log goes to its own FAL_NOTEBOOK_HOME


def test_a_restore_whose_first_runner_dies_backs_off_and_serves_its_queue(tmp_path):
    """Observation 1: the restored app neither fails nor forgets its auth mode; its queue completes."""

    async def scenario(host: FakeHost, runtime: AppRuntime) -> None:
        for i in range(5):
            host.submit(runtime, f"q{i}")
        await settle()
        assert runtime.status != AppStatus.FAILED and runtime.auth == "public"
        assert len(host.made) == 1 and runtime.pool.runners == []  # the first runner died while starting
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
        assert runtime.status == AppStatus.DEPLOYING and runtime.lifecycle.failures == 1 and runtime.auth == "public"
        host.submit(runtime, "waits")
        await advance(host, runtime, 1.0)  # the second try fails too
        assert runtime.lifecycle.failures == 2 and host.row("waits").status == RequestStatus.IN_QUEUE
        await advance(host, runtime, 2.0)
        assert runtime.status == AppStatus.READY and host.row("waits").status == RequestStatus.COMPLETED

    run(tmp_path, scenario, restored=True, build_failures=[OSError("its Python is gone")] * 2)


def test_a_redeploy_serves_once_its_first_runner_is_ready_and_the_old_runners_drain(tmp_path):
    async def scenario(host: FakeHost, runtime: AppRuntime) -> None:
        old = runtime.pool.runners[0]
        gates: dict[str, asyncio.Event] = {}
        host.respond = held(gates)
        host.submit(runtime, "on-old")
        await settle()
        spec = DeploySpec(path=str(tmp_path))
        assert runtime.deploy(spec, "digest-2") == 2 and runtime.deploy(spec, "digest-2") == 2  # one rollout
        await settle()
        assert runtime.current is not None and runtime.current.number == 2 and runtime.status == AppStatus.READY
        assert old.state == RunnerState.DRAINING and runtime.pool.runner_of("on-old") is old
        host.submit(runtime, "on-new")
        await settle()
        new = runtime.pool.runner_of("on-new")
        assert new is not None and new.revision == 2
        gates["on-old"].set()
        await settle()
        assert host.row("on-old").status == RequestStatus.COMPLETED  # the old runner finished its request
        assert old.state == RunnerState.DEAD and runtime.pool.runners == [new]
        assert runtime.deploy(spec, "digest-2") == 2  # what serves already is not deployed again
        assert host.records["fake"] == {"status": "ready", "auth": "public"}

    run(tmp_path, scenario, max_concurrency=2)


def test_a_cancelled_rollout_leaves_the_serving_revision_serving(tmp_path):
    async def scenario(host: FakeHost, runtime: AppRuntime) -> None:
        serving = runtime.pool.runners[0]
        runtime.deploy(DeploySpec(path=str(tmp_path)), "digest-2")
        assert await runtime.cancel_rollout(2)
        assert not await runtime.cancel_rollout(2)  # there is none left to cancel
        await settle()
        assert runtime.current is not None and runtime.current.number == 1 and runtime.status == AppStatus.READY
        assert runtime.revisions.all[2].status == RevisionStatus.CANCELLED and runtime.pool.runners == [serving]

    run(tmp_path, scenario)
