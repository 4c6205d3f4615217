"""Structured deploy progress: the steps of a deploy, its log lines, and how far a step is.

Backends report progress as :class:`ProgressEvent` s. An event is a ``str`` (its message), so
``progress=print`` and callbacks that collect lines keep working; front ends that show a progress
bar (the notebook's Deployment card, the JupyterLab panel) also read its ``step``, ``kind`` and
``fraction``.
"""

from __future__ import annotations

import re
from typing import Any, Literal

Kind = Literal["step", "log"]

#: The steps of a deploy, by target, in order. "capture" comes first when a deploy starts from a
#: notebook's content (the panel's "Deploy" on a cell that was not captured yet).
STEPS: dict[str, tuple[str, ...]] = {
    "local": ("environment", "runners", "ready"),
    "docker": ("image", "runners", "ready"),
    "fal": ("checks", "deploy", "ready"),
}
#: Each step's name as every front end shows it (the panel's copy is generated from this one).
STEP_TITLES = {
    "capture": "Capture",
    "environment": "Environment",
    "image": "Image",
    "runners": "Runners",
    "checks": "Checks",
    "deploy": "fal deploy",
    "ready": "Ready",
}


class ProgressEvent(str):
    """A progress line that also knows its step (one of :data:`STEPS`), whether it starts the step
    (``kind="step"``) or is a line within it (``"log"``), and the fraction of the step done, where
    the size of the step is known (e.g. ``docker build`` steps)."""

    step: str | None
    kind: Kind
    fraction: float | None

    def __new__(
        cls, message: str, step: str | None = None, kind: Kind = "log", fraction: float | None = None
    ) -> ProgressEvent:
        event = super().__new__(cls, message)
        event.step, event.kind, event.fraction = step, kind, fraction
        return event

    def to_json(self) -> dict[str, Any]:
        return {"message": str(self), "step": self.step, "kind": self.kind, "fraction": self.fraction}


def as_event(line: str, step: str | None = None) -> ProgressEvent:
    """``line`` as a ProgressEvent (a plain string becomes a log line of ``step``)."""
    return line if isinstance(line, ProgressEvent) else ProgressEvent(line, step)


_DOCKER_STEP = re.compile(r"^\s*Step (\d+)/(\d+)\s*:")
#: How the gateway's deploy events (gateway/app/, prepare.py, envs.py, images.py) begin a step.
_GATEWAY_STEPS = (
    ("environment", ("Building environment", "Using the cached environment", "Using the kernel's")),
    ("image", ("Pulling the base image", "Building the image", "Using the image")),
    ("runners", ("Starting runner",)),
)
_SERVING = re.compile(r"^Revision \d+ is serving")


class GatewayProgress:
    """Turns the local gateway's deploy events (plain messages) into ProgressEvents of a local or
    docker deploy: each message starts a step or is a line of the current one."""

    def __init__(self, target: str):
        self.steps = STEPS.get(target, STEPS["local"])
        self.step: str | None = None  # lines before the first step's start belong to the first step

    def __call__(self, message: str) -> ProgressEvent:
        if _SERVING.match(message):
            self.step = "ready"
            return ProgressEvent(message, "ready", "step", 1.0)
        for step, prefixes in _GATEWAY_STEPS:
            if step in self.steps and message.startswith(prefixes):
                started = step != self.step
                self.step = step
                return ProgressEvent(message, step, "step" if started else "log")
        docker_step = _DOCKER_STEP.match(message)
        if docker_step and self.step == "image":
            done, total = int(docker_step.group(1)) - 1, int(docker_step.group(2))
            return ProgressEvent(message, "image", "log", done / total if total else None)
        return ProgressEvent(message, self.step or self.steps[0])


class ProgressTracker:
    """Where a deploy is among its ``steps``: the current step, the known fraction of it, and the
    fraction of the whole deploy done (steps done plus the known part of the current one)."""

    def __init__(self, steps: tuple[str, ...] | list[str]):
        self.steps = tuple(steps)
        self.step: str | None = None
        self.fraction: float | None = None

    def update(self, event: ProgressEvent) -> float | None:
        """Take in an event; the overall fraction done after it (None without steps)."""
        if event.step in self.steps and event.step != self.step:
            self.step, self.fraction = event.step, None
        if event.fraction is not None and event.step == self.step:
            self.fraction = min(max(event.fraction, 0.0), 1.0)
        return self.overall

    @property
    def overall(self) -> float | None:
        if not self.steps:
            return None
        if self.step == "ready":
            return 1.0
        index = self.steps.index(self.step) if self.step in self.steps else 0
        return round((index + (self.fraction or 0.0)) / len(self.steps), 4)
