"""How a Deployment shows in the notebook: status, endpoint id, URLs, and Playground/Logs/Stop buttons."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import ipywidgets as W

from ..backends import Deployment, crash_loop_summary, held_gpu_line
from ..backends.base import LocalDetail
from ..statuses import AppStatus
from .style import stylesheet

STATUS_STATE = {
    AppStatus.READY: "completed",
    AppStatus.DEPLOYING: "running",
    AppStatus.FAILED: "failed",
    AppStatus.CRASH_LOOPING: "failed",
    AppStatus.STOPPED: "cancelled",
}


def deployment_view(deployment: Deployment) -> W.VBox:
    """A small card for a deployment; the buttons open the Playground or the logs below it."""
    state = STATUS_STATE.get(deployment.status, "running")
    rows = [("endpoint id", deployment.endpoint_id), ("url", deployment.url), ("queue url", deployment.queue_url)]
    if deployment.status == AppStatus.CRASH_LOOPING:
        rows.append(("crash loop", crash_loop_summary(deployment)))
    detail = deployment.detail
    if isinstance(detail, LocalDetail):
        rows += [("GPU", held_gpu_line(gpu)) for gpu in detail.gpus]
        rows += [("waiting", detail.waiting)] if detail.waiting else []
    table = "".join(
        f"<tr><td class='fal-pg-help'>{label}</td><td><code>{html.escape(value)}</code></td></tr>"
        for label, value in rows
    )
    header = W.HTML(
        f"<span class='fal-pg-title'>{html.escape(deployment.name)}</span> "
        f"<span class='fal-pg-status fal-pg-status-{state}'>{html.escape(deployment.status)}</span> "
        f"<span class='fal-pg-help'>on {html.escape(deployment.target)}</span><table>{table}</table>"
    )
    below = W.Output()
    playground = W.Button(description="Playground", icon="play", disabled=deployment.status != AppStatus.READY)
    logs = W.Button(description="Logs", icon="list")
    stop = W.Button(description="Stop", icon="stop", disabled=deployment.status == AppStatus.STOPPED)

    def show(make: Callable[[], None]) -> None:
        below.clear_output()
        with below:
            make()

    def open_playground(_: Any) -> None:
        show(lambda: _display(deployment.playground()))

    def open_logs(_: Any) -> None:
        show(lambda: print("\n".join(list(deployment.logs())[-200:]) or "(no logs yet)"))

    def stop_it(_: Any) -> None:
        deployment.stop()
        stop.disabled = playground.disabled = True
        show(lambda: print(f"{deployment.name}: stopped"))

    playground.on_click(open_playground)
    logs.on_click(open_logs)
    stop.on_click(stop_it)
    box = W.VBox([stylesheet(), header, W.HBox([playground, logs, stop]), below])
    box.add_class("fal-pg")
    return box


def _display(obj: Any) -> None:
    from IPython.display import display

    display(obj)
