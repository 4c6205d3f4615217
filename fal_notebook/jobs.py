"""Deploy jobs: a deploy running in the background that front ends follow and cancel.

A :class:`DeployJob` holds the deploy's thread and records what happens as numbered events: the
backend's :class:`~fal_notebook.backends.progress.ProgressEvent` s (``kind`` "step" or "log",
with ``step``, the step's ``fraction`` where known, and ``progress``, the fraction of the whole
deploy done), then exactly one ``end`` event with the final state (``ready``, ``failed`` or
``cancelled``), the deployment or the error. Any number of
followers read the events from any point, from a thread (``wait``) or from asyncio (``follow``).
:class:`Jobs` keeps a process's jobs (the Jupyter server's), at most one running per app.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Literal

from .backends import deploy, get_backend
from .backends.progress import STEPS, ProgressEvent, ProgressTracker, as_event
from .errors import DeployCancelled, FalNotebookError

log = logging.getLogger(__name__)

State = Literal["running", "ready", "failed", "cancelled"]
#: What a job runs: ``work(progress, cancel)`` returns the Deployment.
Work = Callable[[Callable[[str], None], threading.Event], Any]
#: Jobs kept after they end (the newest), so a panel opened later still sees how they ended.
KEPT = 50


class AlreadyDeploying(FalNotebookError):
    """An app has a deploy job running; the message names it and what to do."""

    def __init__(self, job: DeployJob):
        super().__init__(
            f"{job.name} is already being deployed to {job.target} (job {job.id}). Wait for it, or cancel it first."
        )
        self.job = job


def deployment_json(deployment: Any) -> dict[str, Any]:
    """The public fields of a Deployment (as ``fal-notebook deploy --json`` prints them)."""
    keys = ("name", "target", "endpoint_id", "url", "queue_url", "status", "path")
    return {key: getattr(deployment, key) for key in keys}


class DeployJob:
    """One deploy in a thread of its own: its events, its final state, and a way to cancel it."""

    def __init__(
        self,
        name: str,
        target: str,
        work: Work,
        *,
        steps: tuple[str, ...] = (),
        on_end: Callable[[DeployJob], None] | None = None,
    ):
        self.id = secrets.token_hex(8)
        self.name, self.target, self.steps = name, target, steps or STEPS.get(target, ())
        self.state: State = "running"
        self.deployment: dict[str, Any] | None = None
        self.error: str | None = None
        self.started = time.time()
        self.ended: float | None = None
        self._work, self._on_end = work, on_end
        self._events: list[dict[str, Any]] = []
        self._tracker = ProgressTracker(self.steps)
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._thread = threading.Thread(target=self._run, name=f"fal-deploy-{name}", daemon=True)

    def start(self) -> DeployJob:
        self._thread.start()
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

    # -- the job's thread ------------------------------------------------------------------
    def _run(self) -> None:
        try:
            deployment = self._work(self._report, self._cancel)
        except DeployCancelled as exc:
            self._end("cancelled", error=str(exc))
        except FalNotebookError as exc:
            self._end("failed", error=str(exc))
        except Exception as exc:  # every job ends with a result or an explicit error
            log.exception("deploy job %s of %s failed", self.id, self.name)
            self._end("failed", error=f"{type(exc).__name__}: {exc}")
        else:
            self._end("ready", deployment=deployment_json(deployment))

    def _report(self, line: str) -> None:
        event = as_event(line)
        with self._lock:
            progress = self._tracker.update(event)
        self._publish({**event.to_json(), "progress": progress})

    def _end(self, state: State, *, error: str | None = None, deployment: dict[str, Any] | None = None) -> None:
        self.state, self.error, self.deployment, self.ended = state, error, deployment, time.time()
        progress = 1.0 if state == "ready" else self._tracker.overall
        self._publish({"kind": "end", "state": state, "error": error, "deployment": deployment, "progress": progress})
        if self._on_end is not None:
            self._on_end(self)

    def _publish(self, event: dict[str, Any]) -> None:
        with self._lock:
            event.update(seq=len(self._events) + 1, time=time.time())
            self._events.append(event)
            waiters = list(self._waiters)
        for loop, wake in waiters:
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # that follower's loop is closed: it is gone
                pass


class Jobs:
    """The deploy jobs of one process, by id; at most one running per app."""

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
                for line in project.summary().splitlines():
                    progress(ProgressEvent(line, "capture"))
            if cancel.is_set():
                raise DeployCancelled(f"The deploy of {name} was cancelled before it started.")
            return deploy(project, target=target, env=env, progress=progress, cancel=cancel)

        steps = (("capture",) if capture is not None else ()) + STEPS[target]
        with self._lock:
            running = self.running(name)
            if running is not None:
                raise AlreadyDeploying(running)
            job = DeployJob(name, target, work, steps=steps, on_end=lambda _job: self._changed())
            self._jobs[job.id] = job
            for old in [j for j in self._jobs.values() if j.state != "running"][:-KEPT]:
                del self._jobs[old.id]
        job.start()
        self._changed()
        return job

    def get(self, job_id: str) -> DeployJob | None:
        return self._jobs.get(job_id)

    def running(self, name: str) -> DeployJob | None:
        return next((j for j in self._jobs.values() if j.name == name and j.state == "running"), None)

    def summaries(self) -> list[dict[str, Any]]:
        return [job.summary() for job in list(self._jobs.values())]

    def cancel_all(self) -> None:
        """Cancel every running job and wait for them (the server is stopping)."""
        jobs = [j for j in list(self._jobs.values()) if j.cancel()]
        for job in jobs:
            job.wait(timeout=30)

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()
