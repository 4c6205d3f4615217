"""Deploy jobs: every deploy, whichever front end started it, as a job that any front end can
follow and cancel.

A :class:`DeployJob` runs a deploy in a thread of its own and records what happens as numbered
events: the backend's :class:`~fal_notebook.backends.progress.ProgressEvent` s (``kind`` "step" or
"log", with ``step``, the step's ``fraction`` where known, and ``progress``, the fraction of the
whole deploy done), then exactly one ``end`` event with the final state (``ready``, ``failed`` or
``cancelled``), the deployment or the error.

Each job is also recorded under ``FAL_NOTEBOOK_HOME/jobs/`` (:class:`JobRecord`): its summary, its
events as JSON lines, and a cancel request that anyone may write. So a deploy started in a kernel
(``%fal_deploy``), by the CLI or by the Python API is followed and cancelled from the JupyterLab
panel, whose server runs in another process (:class:`RecordedJob`); the process that runs the job
honours the request. A job whose process ended without finishing it is ``interrupted``.

:func:`deploy` is the Python API's deploy (and the magic's and the CLI's): a job followed from the
calling thread, where Ctrl-C cancels it and says how it ended. :class:`Jobs` keeps the deploy jobs
the Jupyter server started, at most one running per app.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .backends import deploy as deploy_now, get_backend
from .backends.progress import STEPS, ProgressEvent, ProgressTracker, as_event
from .errors import DeployCancelled, DeployError, FalNotebookError
from .state import home, process_alive, process_start, read_json, write_json_atomic

if TYPE_CHECKING:  # pragma: no cover
    from .backends import Deployment
    from .generate.project import AppProject

log = logging.getLogger(__name__)

JobState = Literal["running", "ready", "failed", "cancelled", "interrupted"]
#: Every state of a job: ``interrupted`` is a job whose process ended before the job did.
JOB_STATES: tuple[JobState, ...] = ("running", "ready", "failed", "cancelled", "interrupted")
#: Who started a job.
Origin = Literal["panel", "magic", "cli", "api"]
#: What a job runs: ``work(progress, cancel)`` returns the Deployment.
Work = Callable[[Callable[[str], None], threading.Event], Any]
#: Jobs kept after they end (the newest), so a panel opened later still sees how they ended.
KEPT = 50
#: How often a job's process looks for a cancel request, and a follower in another process for events.
POLL = 0.2
#: How long Ctrl-C waits for the cancelled deploy to end before saying that it goes on.
CANCEL_WAIT = 30.0


class AlreadyDeploying(FalNotebookError):
    """An app has a deploy job running; the message names it and what to do."""

    def __init__(self, job: DeployJob | RecordedJob):
        super().__init__(
            f"{job.name} is already being deployed to {job.target} (job {job.id}). Wait for it, or cancel it first."
        )
        self.job = job


def deployment_json(deployment: Any) -> dict[str, Any]:
    """The public fields of a Deployment (as ``fal-notebook deploy --json`` prints them)."""
    keys = ("name", "target", "endpoint_id", "url", "queue_url", "status", "path")
    return {key: getattr(deployment, key) for key in keys}


def jobs_dir() -> Path:
    return home() / "jobs"


class JobRecord:
    """A job's files: ``<id>.json`` (its summary), ``<id>.events`` (its events, one JSON line each)
    and ``<id>.cancel`` (a cancel request, from any process)."""

    def __init__(self, job_id: str, folder: Path | None = None):
        folder = folder or jobs_dir()
        self.id = job_id
        self.summary_path = folder / f"{job_id}.json"
        self.events_path = folder / f"{job_id}.events"
        self.cancel_path = folder / f"{job_id}.cancel"

    @classmethod
    def all(cls) -> list[JobRecord]:
        """Every recorded job, oldest first."""
        folder = jobs_dir()
        paths = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime_ns) if folder.is_dir() else []
        return [cls(p.stem, folder) for p in paths]

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_json_atomic(self.summary_path, summary)

    def summary(self) -> dict[str, Any] | None:
        try:
            return read_json(self.summary_path, None)
        except ValueError:  # being replaced (never half-written): read again next time
            return None

    def append(self, event: dict[str, Any]) -> None:
        with self.events_path.open("a") as f:
            f.write(json.dumps(event, default=str) + "\n")

    def events(self, since: int = 0) -> list[dict[str, Any]]:
        try:
            text = self.events_path.read_text()
        except FileNotFoundError:
            return []
        events = []
        for line in text.splitlines(keepends=True):
            if not line.endswith("\n"):
                break  # still being written
            event = json.loads(line)
            if event["seq"] > since:
                events.append(event)
        return events

    def request_cancel(self) -> None:
        self.cancel_path.touch()

    @property
    def cancel_requested(self) -> bool:
        return self.cancel_path.exists()

    def remove(self) -> None:
        for path in (self.summary_path, self.events_path, self.cancel_path):
            path.unlink(missing_ok=True)


class DeployJob:
    """One deploy in a thread of its own: its events, its final state, and a way to cancel it."""

    def __init__(
        self,
        name: str,
        target: str,
        work: Work,
        *,
        steps: tuple[str, ...] = (),
        origin: Origin = "api",
        on_end: Callable[[DeployJob], None] | None = None,
    ):
        self.id = secrets.token_hex(8)
        self.name, self.target, self.steps = name, target, steps or STEPS.get(target, ())
        self.origin = origin
        self.state: JobState = "running"
        self.deployment: dict[str, Any] | None = None
        self.error: str | None = None
        #: What the deploy returned (a Deployment), or the exception it raised.
        self.result: Any = None
        self.exception: BaseException | None = None
        self.started = time.time()
        self.ended: float | None = None
        self.pid = os.getpid()
        self._work, self._on_end = work, on_end
        self._events: list[dict[str, Any]] = []
        self._tracker = ProgressTracker(self.steps)
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._news = threading.Condition(self._lock)
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._thread = threading.Thread(target=self._run, name=f"fal-deploy-{name}", daemon=True)
        self.record = JobRecord(self.id)

    def start(self) -> DeployJob:
        _prune()
        self.record.write_summary(self.summary())
        self._thread.start()
        threading.Thread(target=self._watch_requests, name=f"fal-deploy-{self.name}-cancel", daemon=True).start()
        return self

    def cancel(self) -> bool:
        """Ask the deploy to stop where it is; False if the job already ended."""
        if self.state != "running":
            return False
        self._cancel.set()
        return True

    # -- what followers read ---------------------------------------------------------------
    def events(self, since: int = 0) -> list[dict[str, Any]]:
        with self._lock:
            return self._events[since:]

    def summary(self) -> dict[str, Any]:
        """The job without its log: state, the current step and how far the deploy is, the result."""
        with self._lock:
            messages = [e["message"] for e in self._events if e["kind"] != "end"]
            return {
                "id": self.id,
                "name": self.name,
                "target": self.target,
                "origin": self.origin,
                "pid": self.pid,
                "process_start": process_start(self.pid),
                "state": self.state,
                "steps": list(self.steps),
                "step": self._tracker.step,
                "progress": 1.0 if self.state == "ready" else self._tracker.overall,
                "message": messages[-1] if messages else None,
                "events": len(self._events),
                "deployment": self.deployment,
                "error": self.error,
                "started": self.started,
                "ended": self.ended,
            }

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job ended; False on timeout."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def wait_for_news(self, since: int, timeout: float) -> None:
        """Block until there are events after ``since``, at most ``timeout`` seconds."""
        with self._news:
            if len(self._events) <= since:
                self._news.wait(timeout)

    async def follow(self, since: int = 0) -> AsyncIterator[dict[str, Any]]:
        """The events after ``since`` as they happen, up to and including the ``end`` event."""
        wake = asyncio.Event()
        waiter = (asyncio.get_running_loop(), wake)
        with self._lock:
            self._waiters.add(waiter)
        try:
            while True:
                wake.clear()
                for event in self.events(since):
                    yield event
                    since = event["seq"]
                    if event["kind"] == "end":
                        return
                await wake.wait()
        finally:
            with self._lock:
                self._waiters.discard(waiter)

    # -- the job's threads -----------------------------------------------------------------
    def _run(self) -> None:
        try:
            self.result = self._work(self._report, self._cancel)
        except DeployCancelled as exc:
            self.exception = exc
            self._end("cancelled", error=str(exc))
        except FalNotebookError as exc:
            self.exception = exc
            self._end("failed", error=str(exc))
        except Exception as exc:  # every job ends with a result or an explicit error
            log.exception("deploy job %s of %s failed", self.id, self.name)
            self.exception = exc
            self._end("failed", error=f"{type(exc).__name__}: {exc}")
        else:
            self._end("ready", deployment=deployment_json(self.result))

    def _watch_requests(self) -> None:
        """Honour a cancel request written by another process (the panel's server)."""
        while self.state == "running":
            if self.record.cancel_requested:
                self._cancel.set()
                return
            self._thread.join(POLL)

    def _report(self, line: str) -> None:
        event = as_event(line)
        with self._lock:
            before = self._tracker.step
            progress = self._tracker.update(event)
            step_changed = self._tracker.step != before
        self._publish({**event.to_json(), "progress": progress})
        if step_changed:
            self._save()

    def _end(self, state: JobState, *, error: str | None = None, deployment: dict[str, Any] | None = None) -> None:
        self.state, self.error, self.deployment, self.ended = state, error, deployment, time.time()
        progress = 1.0 if state == "ready" else self._tracker.overall
        self._publish({"kind": "end", "state": state, "error": error, "deployment": deployment, "progress": progress})
        self._save()
        self.record.cancel_path.unlink(missing_ok=True)
        if self._on_end is not None:
            self._on_end(self)

    def _save(self) -> None:
        try:
            self.record.write_summary(self.summary())
        except OSError as exc:  # the record is for other front ends: the deploy goes on
            log.warning("fal-notebook: cannot record deploy job %s: %s", self.id, exc)

    def _publish(self, event: dict[str, Any]) -> None:
        with self._lock:
            event.update(seq=len(self._events) + 1, time=time.time())
            self._events.append(event)
            waiters = list(self._waiters)
            self._news.notify_all()
        try:
            self.record.append(event)
        except OSError as exc:
            log.warning("fal-notebook: cannot record an event of deploy job %s: %s", self.id, exc)
        for loop, wake in waiters:
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # that follower's loop is closed: it is gone
                pass


class RecordedJob:
    """A job another process runs (or ran), read from its record: followed by polling its events,
    cancelled by a request that process honours."""

    def __init__(self, record: JobRecord, summary: dict[str, Any]):
        self.record, self._summary = record, summary
        self.id, self.name, self.target = summary["id"], summary["name"], summary["target"]

    @classmethod
    def load(cls, job_id: str) -> RecordedJob | None:
        record = JobRecord(job_id)
        summary = record.summary()
        return cls(record, summary) if summary else None

    @property
    def state(self) -> JobState:
        return self.summary()["state"]

    def summary(self) -> dict[str, Any]:
        summary = self.record.summary() or self._summary
        self._summary = summary
        if summary["state"] == "running" and not process_alive(summary["pid"], summary.get("process_start", "")):
            return {**summary, "state": "interrupted", "error": self._interrupted()}
        return summary

    def events(self, since: int = 0) -> list[dict[str, Any]]:
        return self.record.events(since)

    def cancel(self) -> bool:
        if self.state != "running":
            return False
        self.record.request_cancel()
        return True

    async def follow(self, since: int = 0) -> AsyncIterator[dict[str, Any]]:
        while True:
            events = await asyncio.to_thread(self.record.events, since)
            for event in events:
                yield event
                since = event["seq"]
                if event["kind"] == "end":
                    return
            if not events and self.state == "interrupted":
                yield {"seq": since + 1, "kind": "end", "state": "interrupted", "error": self._interrupted()}
                return
            await asyncio.sleep(POLL)

    def _interrupted(self) -> str:
        origin = {"magic": "the kernel", "cli": "the fal-notebook command", "api": "the Python process"}
        who = origin.get(self._summary.get("origin", ""), "the process")
        return (
            f"The deploy of {self.name} stopped following: {who} that ran it (pid {self._summary['pid']}) ended "
            "before it did. The app's status shows where the target is."
        )


def _prune() -> None:
    """Keep the records of the newest :data:`KEPT` jobs that ended (and of every running one)."""
    ended = []
    for record in JobRecord.all():
        summary = record.summary()
        if summary is None or RecordedJob(record, summary).state != "running":
            ended.append(record)
    for record in ended[:-KEPT]:
        record.remove()


def project_of(app: str | os.PathLike[str] | AppProject) -> AppProject:
    """The AppProject of a captured app's name, a project folder's path, or an AppProject."""
    from .generate.project import AppProject
    from .state import resolve_project

    return app if isinstance(app, AppProject) else AppProject.load(resolve_project(os.fspath(app)))


def deploy(
    app: str | os.PathLike[str] | AppProject,
    target: str = "local",
    wait: bool = True,
    progress: Callable[[str], None] = print,
    *,
    origin: Origin = "api",
    on_start: Callable[[DeployJob], None] | None = None,
    **options: Any,
) -> Deployment:
    """Deploy a captured app (its name, its project folder's path, or an AppProject) as a job that
    the JupyterLab panel follows and can cancel too, and follow it here: ``progress`` gets each line.

    Ctrl-C (KeyboardInterrupt) cancels the deploy and waits for the target to say how it ended: a
    revision that served before keeps serving. With ``wait=False`` the job goes on in this process's
    background once the target accepted it. ``options`` go to the target's backend (e.g.
    ``env="kernel"``)."""
    get_backend(target)  # an unknown target is the caller's error, before any job
    project = project_of(app)

    def work(report: Callable[[str], None], cancel: threading.Event) -> Deployment:
        return deploy_now(project, target=target, progress=report, cancel=cancel, **options)

    job = DeployJob(project.name, target, work, origin=origin).start()
    if on_start is not None:
        on_start(job)
    if not wait:
        return _accepted(job)
    return follow_here(job, progress)


def follow_here(job: DeployJob, progress: Callable[[str], None]) -> Deployment:
    """Show the job's events in this thread until it ends; its Deployment, or its error raised.
    Ctrl-C asks the job to cancel and says how it ended."""
    seen = 0

    def show() -> None:
        nonlocal seen
        for event in job.events(seen):
            seen = event["seq"]
            if event["kind"] != "end":
                progress(ProgressEvent(event["message"], event.get("step"), event["kind"], event.get("fraction")))

    try:
        while not job.wait(0):
            show()
            job.wait_for_news(seen, POLL)
    except KeyboardInterrupt:
        job.cancel()
        progress(ProgressEvent(f"Interrupted: cancelling the deploy of {job.name}...", job.summary()["step"]))
        if not job.wait(CANCEL_WAIT):
            raise DeployError(
                f"Interrupted, but the deploy of {job.name} to {job.target} did not stop within {CANCEL_WAIT:g} s: "
                "it goes on in the background (the fal panel follows it, and can cancel it)."
            ) from None
    show()
    if job.state == "ready":
        return job.result
    assert job.exception is not None
    raise job.exception


def _accepted(job: DeployJob) -> Deployment:
    """For ``wait=False``: the Deployment as soon as the target recorded it (the job goes on)."""
    from .backends import Deployment

    while not job.wait(POLL):
        deployment = Deployment.load(job.name)
        if deployment is not None and deployment.status == "deploying" and job.events():
            return deployment
    if job.state == "ready":
        return job.result
    assert job.exception is not None
    raise job.exception


class Jobs:
    """The deploy jobs of the Jupyter server, by id, and those recorded by other processes; at most
    one running per app."""

    def __init__(self, on_change: Callable[[], None] | None = None):
        self._jobs: dict[str, DeployJob] = {}
        self._lock = threading.Lock()
        self._on_change = on_change

    def deploy(
        self,
        name: str,
        target: str,
        app: str | Path,
        *,
        env: str | None = None,
        capture: Callable[[], Any] | None = None,
    ) -> DeployJob:
        """Start deploying ``app`` (a name or a project folder) as app ``name`` to ``target`` (local
        runners in ``env``); ``capture`` (returning an AppProject) runs first when the app comes from a
        notebook's content."""
        get_backend(target)  # an unknown target is the caller's error, not the job's

        def work(progress: Callable[[str], None], cancel: threading.Event) -> Any:
            project: Any = app
            if capture is not None:
                progress(ProgressEvent(f"Capturing {name} from the notebook...", "capture", "step"))
                project = capture()
                for line in project.summary(hint=False).splitlines():
                    progress(ProgressEvent(line, "capture"))
            if cancel.is_set():
                raise DeployCancelled(f"The deploy of {name} was cancelled before it started.")
            return deploy_now(project, target=target, env=env, progress=progress, cancel=cancel)

        steps = (("capture",) if capture is not None else ()) + STEPS[target]
        with self._lock:
            running = self.running(name)
            if running is not None:
                raise AlreadyDeploying(running)
            job = DeployJob(name, target, work, steps=steps, origin="panel", on_end=lambda _job: self._changed())
            self._jobs[job.id] = job
            for old in [j for j in self._jobs.values() if j.state != "running"][:-KEPT]:
                del self._jobs[old.id]
        job.start()
        self._changed()
        return job

    def get(self, job_id: str) -> DeployJob | RecordedJob | None:
        return self._jobs.get(job_id) or RecordedJob.load(job_id)

    def running(self, name: str) -> DeployJob | RecordedJob | None:
        own = next((j for j in self._jobs.values() if j.name == name and j.state == "running"), None)
        return own or next((j for j in self._recorded() if j.name == name and j.state == "running"), None)

    def summaries(self) -> list[dict[str, Any]]:
        """The latest job of each app, from this server or any other process, oldest first."""
        latest: dict[str, dict[str, Any]] = {}
        own = [job.summary() for job in list(self._jobs.values())]
        recorded = [job.summary() for job in self._recorded()]
        for summary in sorted([*recorded, *own], key=lambda s: s["started"]):
            latest[summary["name"]] = summary
        return list(latest.values())

    def cancel_all(self) -> None:
        """Cancel every running job and wait for them (the server is stopping)."""
        jobs = [j for j in list(self._jobs.values()) if j.cancel()]
        for job in jobs:
            job.wait(timeout=30)

    def _recorded(self) -> list[RecordedJob]:
        """Jobs other processes recorded (the kernel's, the CLI's)."""
        jobs = []
        for record in JobRecord.all():
            if record.id in self._jobs:
                continue
            summary = record.summary()
            if summary is not None:
                jobs.append(RecordedJob(record, summary))
        return jobs

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()
