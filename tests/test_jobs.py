"""Deploy jobs and the shared watch, without a server: every job ends with exactly one end event (ready,
failed or cancelled), followers read from any point while it runs, one job per app runs at a time; the
watch computes only while followed and pushes only changes."""

from __future__ import annotations

import asyncio
import threading

import pytest

from fal_notebook.backends.progress import ProgressEvent
from fal_notebook.errors import DeployCancelled, DeployError
from fal_notebook.jobs import KEPT, AlreadyDeploying, DeployJob, Jobs
from fal_notebook.watch import Watch


class Result:
    name, target, endpoint_id, url, queue_url, status, path = "web", "local", "local/web", "u", "q", "ready", "/p"


def job_of(work, steps=("environment", "runners", "ready")) -> DeployJob:
    return DeployJob("web", "local", work, steps=steps)


def test_a_job_records_progress_then_one_end_with_the_deployment():
    def work(progress, cancel):
        progress(ProgressEvent("env", "environment", "step"))
        progress("a plain line")
        progress(ProgressEvent("runner", "runners", "step"))
        return Result()

    job = job_of(work).start()
    assert job.wait(10)
    events = job.events()
    assert [e["seq"] for e in events] == [1, 2, 3, 4]
    assert [(e["kind"], e.get("step")) for e in events] == [
        ("step", "environment"),
        ("log", None),
        ("step", "runners"),
        ("end", None),
    ]
    assert [e["progress"] for e in events] == [0.0, 0.0, pytest.approx(1 / 3, abs=1e-4), 1.0]
    assert events[-1]["state"] == "ready" and events[-1]["deployment"]["endpoint_id"] == "local/web"
    summary = job.summary()
    assert summary["state"] == "ready" and summary["progress"] == 1.0 and summary["message"] == "runner"
    assert job.events(since=3) == events[3:]


@pytest.mark.parametrize(
    ("error", "state", "message"),
    [
        (DeployError("Deploying web failed: exit 3"), "failed", "Deploying web failed: exit 3"),
        (DeployCancelled("The deploy of web was cancelled."), "cancelled", "The deploy of web was cancelled."),
        (KeyError("oops"), "failed", "KeyError: 'oops'"),
    ],
)
def test_every_way_out_of_a_job_ends_it_with_its_error(error, state, message):
    def work(progress, cancel):
        raise error

    job = job_of(work).start()
    assert job.wait(10)
    (end,) = job.events()
    assert (end["kind"], end["state"], end["error"]) == ("end", state, message)
    assert job.cancel() is False  # nothing left to cancel


def test_cancel_reaches_the_work_and_followers_see_the_end():
    started = threading.Event()

    def work(progress, cancel):
        progress(ProgressEvent("env", "environment", "step"))
        started.set()
        assert cancel.wait(10)
        raise DeployCancelled("The deploy of web was cancelled.")

    job = job_of(work)

    async def follow() -> list[dict]:
        job.start()
        seen = []
        async for event in job.follow():
            seen.append(event)
            if event["kind"] == "step":
                await asyncio.to_thread(started.wait, 10)
                assert job.cancel() is True
        return seen

    seen = asyncio.run(follow())
    assert [e["kind"] for e in seen] == ["step", "end"] and seen[-1]["state"] == "cancelled"
    assert not job._waiters  # the follower is gone


def test_a_late_follower_resumes_after_what_it_saw():
    release = threading.Event()

    def work(progress, cancel):
        progress(ProgressEvent("one", "environment", "step"))
        release.wait(10)
        progress(ProgressEvent("two", "runners", "step"))
        return Result()

    job = job_of(work).start()

    async def follow_from(since: int) -> list[str]:
        messages = []
        async for event in job.follow(since):
            messages.append(event.get("message") or event["state"])
            if len(messages) == 1:
                release.set()
        return messages

    assert asyncio.run(follow_from(1)) == ["two", "ready"]
    assert asyncio.run(follow_from(0)) == ["one", "two", "ready"]


def test_one_running_job_per_app_and_ended_jobs_are_pruned(monkeypatch):
    release = threading.Event()
    changes = []

    def slow_deploy(app, target, progress, cancel, env=None):
        release.wait(10)
        return Result()

    monkeypatch.setattr("fal_notebook.jobs.deploy", slow_deploy)
    jobs = Jobs(on_change=lambda: changes.append(1))
    first = jobs.deploy("web", "local", "web")
    with pytest.raises(AlreadyDeploying) as refused:
        jobs.deploy("web", "docker", "web")
    assert first.id in str(refused.value) and "cancel it first" in str(refused.value)
    other = jobs.deploy("other", "local", "other")  # another app may deploy meanwhile
    release.set()
    assert first.wait(10) and other.wait(10)
    assert jobs.running("web") is None and jobs.get(first.id) is first
    assert len(changes) >= 4  # each start and each end
    with pytest.raises(Exception, match="Unknown target 'moon'"):
        jobs.deploy("web", "moon", "web")
    for _ in range(KEPT + 5):
        jobs.deploy("web", "local", "web").wait(10)
    assert len(jobs.summaries()) <= KEPT + 1


def test_a_capture_runs_first_in_the_job(monkeypatch):
    deployed = []

    class Project:
        def summary(self):
            return "Captured web\nFiles: server.py"

    def fake_deploy(app, target, progress, cancel, env=None):
        deployed.append(app)
        return Result()

    monkeypatch.setattr("fal_notebook.jobs.deploy", fake_deploy)
    job = Jobs().deploy("web", "local", "web", capture=Project)
    assert job.wait(10) and job.state == "ready"
    assert isinstance(deployed[0], Project)
    assert job.steps[0] == "capture"
    assert [e["message"] for e in job.events()[:3]] == [
        "Capturing web from the notebook...",
        "Captured web",
        "Files: server.py",
    ]


def test_the_watch_computes_only_while_followed_and_pushes_changes():
    values = iter([{"n": 1}, {"n": 1}, {"n": 2}, RuntimeError("gateway gone"), {"n": 3}])
    computed = []

    def snapshot():
        computed.append(1)
        value = next(values)
        if isinstance(value, Exception):
            raise value
        return value

    watch = Watch(snapshot, interval=60)

    async def scenario() -> list:
        seen = []
        follower = watch.follow()
        seen.append(await anext(follower))  # the first snapshot
        watch.poke()  # same value: nothing pushed
        await asyncio.sleep(0.2)
        watch.poke()
        seen.append(await anext(follower))  # changed
        watch.poke()
        seen.append(await anext(follower))  # an error is a snapshot too
        assert watch.running
        await follower.aclose()
        await asyncio.sleep(0)
        assert not watch.running  # no follower, no work
        return seen

    assert asyncio.run(scenario()) == [{"n": 1}, {"n": 2}, {"error": "RuntimeError: gateway gone"}]
    assert len(computed) == 4
