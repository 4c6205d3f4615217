"""Background tasks are held until they end, and a failure is logged with the task's name."""

from __future__ import annotations

import asyncio
import logging

from fal_notebook.gateway.tasks import TaskSet


def test_tasks_are_held_and_failures_logged(caplog):
    async def fail() -> None:
        raise RuntimeError("the runner's port vanished")

    async def run() -> TaskSet:
        tasks = TaskSet("echo")
        done = asyncio.Event()
        tasks.spawn(done.wait(), "wait")
        failing = tasks.spawn(fail(), "boot echo-r1-1")
        assert len(tasks) == 2
        await asyncio.wait([failing])
        await asyncio.sleep(0)  # done callbacks run on the next turn of the loop
        assert len(tasks) == 1  # the ended task is let go, the running one still held
        done.set()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return tasks

    with caplog.at_level(logging.ERROR, logger="fal_notebook.gateway"):
        tasks = asyncio.run(run())
    assert len(tasks) == 0
    [record] = caplog.records
    assert "echo: boot echo-r1-1" in record.getMessage() and "port vanished" in str(record.exc_info[1])


def test_a_cancelled_task_is_no_failure(caplog):
    async def run() -> None:
        tasks = TaskSet("gateway")
        task = tasks.spawn(asyncio.sleep(10), "housekeeping")
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.sleep(0)
        assert len(tasks) == 0

    with caplog.at_level(logging.ERROR):
        asyncio.run(run())
    assert caplog.records == []
