"""Deploy jobs and the shared watch, without a server: every job ends with exactly one end event (ready,
failed or cancelled), followers read from any point while it runs, one job per app runs at a time; a job
is recorded so that another process follows and cancels it, and one whose process died is interrupted;
the API's deploy is a job that Ctrl-C cancels; the watch computes only while followed and pushes only
changes."""

from __future__ import annotations

import asyncio
import threading

import pytest

from fal_notebook.backends.progress import ProgressEvent
from fal_notebook.errors import DeployCancelled, DeployError
from fal_notebook.jobs import KEPT, AlreadyDeploying, DeployJob, JobRecord, Jobs, RecordedJob
from fal_notebook.watch import Watch


@pytest.fixture(autouse=True)
def _home(fal_env):
    """Every job is recorded under a FAL_NOTEBOOK_HOME of the test's own."""


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

    monkeypatch.setattr("fal_notebook.jobs.deploy_now", slow_deploy)
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
        def summary(self, hint=True):
            return "Captured web\nFiles: server.py" + ("\nNext: %fal_deploy web" if hint else "")

    def fake_deploy(app, target, progress, cancel, env=None):
        deployed.append(app)
        return Result()

    monkeypatch.setattr("fal_notebook.jobs.deploy_now", fake_deploy)
    job = Jobs().deploy("web", "local", "web", capture=Project)
    assert job.wait(10) and job.state == "ready"
    assert isinstance(deployed[0], Project)
    assert job.steps[0] == "capture"
    assert [e["message"] for e in job.events()[:-1]] == [
        "Capturing web from the notebook...",
        "Captured web",
        "Files: server.py",
    ]  # no hint to run a magic in a panel deploy's log


def test_another_process_follows_a_recorded_job_and_its_cancel_request_reaches_the_work():
    started = threading.Event()

    def work(progress, cancel):
        progress(ProgressEvent("env", "environment", "step"))
        progress("building...")
        started.set()
        assert cancel.wait(10)
        raise DeployCancelled("The deploy of web was cancelled. Revision 1 keeps serving.")

    job = DeployJob("web", "local", work, origin="magic").start()
    assert started.wait(10)
    seen = RecordedJob.load(job.id)  # what the Jupyter server reads: the files alone
    assert seen is not None and seen.state == "running"
    summary = seen.summary()
    assert (summary["origin"], summary["step"], summary["steps"]) == ("magic", "environment", list(job.steps))
    assert [e["message"] for e in seen.events()] == ["env", "building..."]
    assert [j["id"] for j in Jobs().summaries()] == [job.id]  # the server lists it

    async def follow() -> list[dict]:
        events = []
        async for event in seen.follow(since=1):
            events.append(event)
            if len(events) == 1:
                assert seen.cancel() is True  # a request file; the job's own process acts on it
        return events

    events = asyncio.run(follow())
    assert [e.get("message") for e in events[:1]] == ["building..."]
    assert events[-1]["kind"] == "end" and events[-1]["state"] == "cancelled"
    assert "Revision 1 keeps serving" in events[-1]["error"]
    assert job.wait(10) and job.state == "cancelled" and seen.state == "cancelled"
    assert not seen.record.cancel_path.exists() and seen.cancel() is False


def test_a_job_whose_process_ended_is_interrupted(tmp_path):
    record = JobRecord("00000000deadbeef")
    record.write_summary(
        {
            "id": record.id,
            "name": "web",
            "target": "local",
            "origin": "magic",
            "pid": 2**22 + 1,
            "state": "running",
            "steps": ["environment", "runners", "ready"],
            "step": "runners",
            "started": 1.0,
        }
    )
    record.append({"seq": 1, "kind": "step", "step": "runners", "message": "Starting runner r1-1"})
    job = RecordedJob.load(record.id)
    assert job is not None and job.state == "interrupted" and job.cancel() is False
    assert "the kernel that ran it" in job.summary()["error"]

    async def follow() -> list[dict]:
        return [event async for event in job.follow()]

    assert [e["kind"] for e in asyncio.run(follow())] == ["step", "end"]


def test_the_apis_deploy_is_a_job_and_ctrl_c_cancels_it(monkeypatch):
    from fal_notebook import jobs

    started = threading.Event()

    def fake_deploy(app, target, progress, cancel):
        progress(ProgressEvent("Starting runner r1-1", "runners", "step"))
        started.set()
        assert cancel.wait(10)
        raise DeployCancelled("The deploy of web (revision 2) was cancelled. Revision 1 keeps serving.")

    class Project:
        name = "web"

    monkeypatch.setattr(jobs, "deploy_now", fake_deploy)
    monkeypatch.setattr(jobs, "project_of", lambda app: Project())
    lines = []

    def progress(line):  # Ctrl-C while the deploy runs: the first line shown is when it lands
        lines.append(str(line))
        if len(lines) == 1:
            assert started.wait(10)
            raise KeyboardInterrupt

    with pytest.raises(DeployCancelled, match="Revision 1 keeps serving"):
        jobs.deploy("web", progress=progress, origin="magic")
    assert lines[:2] == ["Starting runner r1-1", "Interrupted: cancelling the deploy of web..."]
    (summary,) = Jobs().summaries()
    assert (summary["origin"], summary["state"]) == ("magic", "cancelled")


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
