"""Structured deploy progress: the gateway's messages become steps, the tracker says how far a deploy is,
a real local deploy reports its steps in order, and the notebook's progress card follows them."""

from __future__ import annotations

import pytest

from fal_notebook.backends.local import LocalBackend
from fal_notebook.backends.progress import GatewayProgress, ProgressEvent, ProgressTracker, as_event
from fal_notebook.widgets.progress import DeployProgress

#: What the gateway says during a docker deploy (gateway/apps.py, images.py), in order.
DOCKER_MESSAGES = [
    "Deploying revision 2 of web from /home/me/fal_apps/web.",
    "Building the image fal-notebook/web:3f2a (docker build) ...",
    "  Step 1/4 : FROM python:3.11-slim",
    "  Successfully installed fastapi-0.115.0",
    "  Step 3/4 : COPY server.py .",
    "Starting runner web-r2-1.",
    "Runner web-r2-1 is ready on port 41234 (1.2 s).",
    "Starting runner web-r2-2.",
    "Revision 2 is serving (replacing revision 1): local/web",
]


def test_gateway_messages_become_steps_lines_and_fractions():
    classify = GatewayProgress("docker")
    events = [classify(message) for message in DOCKER_MESSAGES]
    assert [(e.step, e.kind, e.fraction) for e in events] == [
        ("image", "log", None),  # before any step begins: a line of the first one
        ("image", "step", None),
        ("image", "log", 0.0),
        ("image", "log", None),
        ("image", "log", 0.5),
        ("runners", "step", None),
        ("runners", "log", None),
        ("runners", "log", None),  # a second runner is a line of the same step
        ("ready", "step", 1.0),
    ]
    assert events == DOCKER_MESSAGES  # still the plain lines for print and for line collectors
    assert events[1].to_json() == {"message": DOCKER_MESSAGES[1], "step": "image", "kind": "step", "fraction": None}


def test_local_deploys_have_an_environment_step_not_an_image_one():
    classify = GatewayProgress("local")
    assert classify("Building environment 9e1c with uv: 3 requirements (log: x).").step == "environment"
    assert classify("  Step 1/4 : not docker").fraction is None  # no image step on local
    assert classify("Using the image fal-notebook/x:1").kind == "log"


def test_the_tracker_counts_done_steps_and_the_known_part_of_the_current_one():
    tracker = ProgressTracker(("capture", "image", "runners", "ready"))
    assert tracker.overall == 0.0
    assert tracker.update(ProgressEvent("capturing", "capture", "step")) == 0.0
    assert tracker.update(ProgressEvent("build", "image", "step")) == 0.25
    assert tracker.update(ProgressEvent("Step 3/4", "image", "log", 0.5)) == 0.375
    assert tracker.update(ProgressEvent("elsewhere", "unknown-step")) == 0.375
    assert tracker.update(ProgressEvent("Starting runner", "runners", "step")) == 0.5  # a new step starts at 0
    assert tracker.update(ProgressEvent("serving", "ready", "step", 1.0)) == 1.0
    assert ProgressTracker(()).overall is None


def test_plain_lines_are_log_lines():
    line = as_event("Note: secret X is not set", "runners")
    assert (line.step, line.kind, line.fraction) == ("runners", "log", None)
    event = ProgressEvent("x", "image", "step")
    assert as_event(event) is event


def test_a_local_deploy_reports_its_steps_in_order(gateway):
    events: list[str] = []
    project = gateway.capture("from fastapi import FastAPI\n\napp = FastAPI()\n", "steps-web", auth="public")
    LocalBackend(env="kernel").deploy(project, progress=events.append)
    starts = [e.step for e in events if e.kind == "step"]
    assert starts == ["environment", "runners", "ready"], starts
    assert all(isinstance(e, ProgressEvent) and e.step for e in events)
    tracker = ProgressTracker(("environment", "runners", "ready"))
    assert [tracker.update(e) for e in events][-1] == 1.0


@pytest.mark.parametrize("target", ["local", "docker", "fal"])
def test_the_notebook_card_follows_the_steps_with_its_bar(target):
    view = DeployProgress("web", target)
    first, second = {"local": ("environment", "runners"), "docker": ("image", "runners"), "fal": ("checks", "deploy")}[
        target
    ]
    view(ProgressEvent("starting", first, "step"))
    assert view.bar.value == 0.0 and "● " in view.steps.value
    view(ProgressEvent("half way", first, "log", 0.5))
    assert view.bar.value == pytest.approx(0.5 / 3, abs=1e-4)
    view(ProgressEvent("next", second, "step"))
    assert view.bar.value == pytest.approx(1 / 3, abs=1e-4)
    assert "✓" in view.steps.value and "next" in view.log.value
    view.finish()
    assert view.bar.value == 1.0 and view.bar.bar_style == "success" and "ready" in view.title.value


def test_the_notebook_card_shows_a_failure_and_keeps_the_last_lines():
    view = DeployProgress("web", "local", lines=3)
    for n in range(5):
        view(f"line {n} <b>")
    view.finish("Deploying web failed: boom")
    assert view.bar.bar_style == "danger" and "failed" in view.title.value
    assert "line 1" not in view.log.value and "line 4 &lt;b&gt;" in view.log.value
    assert "Deploying web failed: boom" in view.log.value


def test_the_notebook_card_marks_where_a_cancelled_or_failed_deploy_stopped():
    view = DeployProgress("web", "local")
    view(ProgressEvent("Starting runner", "runners", "step"))
    view.finish("The deploy of web was cancelled.", cancelled=True)
    assert "– Runners" in view.steps.value and "● " not in view.steps.value
    assert view.cancel.disabled and "cancelled" in view.title.value
    failed = DeployProgress("web", "local")
    failed(ProgressEvent("Starting runner", "runners", "step"))
    failed.finish("Deploying web failed: boom")
    assert "✕ Runners" in failed.steps.value
