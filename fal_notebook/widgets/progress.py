"""A deploy as it happens, in the notebook: its steps, a progress bar, its latest lines and Cancel.

``DeployProgress`` is a ``progress=`` callback: it takes the backend's ProgressEvents (the same ones
the JupyterLab panel shows, with the same step names) and updates its widgets while the deploy runs,
so ``%fal_deploy`` shows the environment build, image build and runner start as they happen rather
than at the end. While the deploy runs the kernel is busy, so the card's Cancel button is handled by
the fal JupyterLab extension: it finds the job by the button's ``fal-job-<id>`` class and asks the
Jupyter server to cancel it (the job's process honours the request); with the kernel free, the
button's own handler cancels it.
"""

from __future__ import annotations

import html
from collections import deque
from typing import TYPE_CHECKING

import ipywidgets as W

from ..backends.progress import STEP_TITLES, STEPS, ProgressTracker, as_event
from .style import stylesheet

if TYPE_CHECKING:  # pragma: no cover
    from ..jobs import DeployJob

#: Lines of the deploy's log the card shows (the app's log keeps them all).
LINES_SHOWN = 12


class DeployProgress:
    """The progress of deploying app ``name`` to ``target``; call it with each progress line."""

    def __init__(self, name: str, target: str, *, lines: int = LINES_SHOWN):
        self.name, self.target = name, target
        self.job: DeployJob | None = None
        self.tracker = ProgressTracker(STEPS.get(target, ()))
        self.lines: deque[str] = deque(maxlen=lines)
        self.title = W.HTML()
        self.bar = W.FloatProgress(value=0.0, min=0.0, max=1.0, bar_style="info", layout=W.Layout(width="100%"))
        self.steps = W.HTML()
        self.log = W.HTML()
        self.cancel = W.Button(description="Cancel", tooltip=f"Cancel the deploy of {name}", disabled=True)
        self.cancel.add_class("fal-pg-cancel")
        self.cancel.on_click(lambda _button: self.job is not None and self.job.cancel())
        self.widget = W.VBox([stylesheet(), self.title, self.steps, self.bar, self.log, self.cancel])
        self.widget.add_class("fal-pg")
        self.widget.add_class("fal-pg-progress")
        self._state = "running"
        self._render()

    def attach(self, job: DeployJob) -> None:
        """The job this card shows: its Cancel button cancels it."""
        self.job = job
        self.tracker = ProgressTracker(job.steps)
        self.cancel.add_class(f"fal-job-{job.id}")
        self.cancel.disabled = False
        self._render()

    def __call__(self, line: str) -> None:
        event = as_event(line)
        overall = self.tracker.update(event)
        if overall is not None:
            self.bar.value = overall
        self.lines.append(str(event))
        self._render()

    def finish(self, error: str | None = None, *, cancelled: bool = False) -> None:
        """The deploy ended: ready (no error), failed or cancelled."""
        self._state = "cancelled" if cancelled else "failed" if error else "ready"
        self.bar.bar_style = {"ready": "success", "failed": "danger", "cancelled": "warning"}[self._state]
        if self._state == "ready":
            self.bar.value = 1.0
            self.tracker.step = "ready"
        if error:
            self.lines.append(error)
        self.cancel.disabled = True
        self.cancel.layout.display = "none"
        self._render()

    def _render(self) -> None:
        state = {"running": "running", "ready": "completed", "failed": "failed", "cancelled": "cancelled"}[self._state]
        word = {"running": "deploying", "ready": "ready"}.get(self._state, self._state)
        self.title.value = (
            f"<span class='fal-pg-title'>{html.escape(self.name)}</span> "
            f"<span class='fal-pg-status fal-pg-status-{state}'>{word}</span> "
            f"<span class='fal-pg-help'>to {html.escape(self.target)}</span>"
        )
        current = self.tracker.steps.index(self.tracker.step) if self.tracker.step in self.tracker.steps else -1
        marks = []
        for index, step in enumerate(self.tracker.steps):
            done = self._state == "ready" or index < current
            stopped_here = {"failed": "✕", "cancelled": "–"}.get(self._state, "●")  # where it is, or ended
            mark = "✓" if done else stopped_here if index == current else "○"
            weight = "font-weight:600;" if index == current and not done and self._state == "running" else ""
            marks.append(f"<span style='{weight}margin-right:10px'>{mark} {STEP_TITLES.get(step, step)}</span>")
        self.steps.value = f"<div class='fal-pg-help'>{''.join(marks)}</div>"
        shown = "\n".join(html.escape(line) for line in self.lines)
        self.log.value = f"<pre class='fal-pg-logs'>{shown}</pre>" if shown else ""

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)
