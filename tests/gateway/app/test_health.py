"""Health checks alone (app/health.py), with the settings they follow (settings.py)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fake_runtime import FakeHost, FakeRunner, advance, held, run, settle

from fal_notebook.config import AppConfig
from fal_notebook.gateway.app import AppRuntime
from fal_notebook.gateway.settings import HealthProbe, Settings
from fal_notebook.statuses import RunnerState

pytestmark = pytest.mark.usefixtures("fal_env")  # each test's app log goes to its own FAL_NOTEBOOK_HOME


def test_an_unhealthy_runner_is_replaced_and_its_request_retried(tmp_path):
    async def scenario(host: FakeHost, runtime: AppRuntime) -> None:
        gates: dict[str, asyncio.Event] = {}
        hung: set[str] = set()
        inner = held(gates)

        async def respond(request: httpx.Request, runner: FakeRunner) -> httpx.Response:
            if request.url.path == "/healthz" and runner.id in hung:
                raise httpx.ReadTimeout("timed out", request=request)
            return await inner(request, runner)

        host.respond = respond
        host.submit(runtime, "stuck")
        await settle()
        first = runtime.pool.runner_of("stuck")
        hung.add(first.id)
        await advance(host, runtime, 15)  # fal's interval: a check every 15 s; 1 failure
        await advance(host, runtime, 15)  # 2 failures: the threshold, but still in the start period
        assert first.state == RunnerState.READY
        await advance(host, runtime, 15)  # 3 failures, past start_period (40 s): replaced
        assert first.state in (RunnerState.STOPPING, RunnerState.DEAD)
        second = runtime.pool.runner_of("stuck")
        assert second is not None and second is not first
        gates["stuck"].set()
        await settle()
        assert host.row("stuck").result_status == 200 and host.row("stuck").attempts == 2

    health = {"path": "/healthz", "failure_threshold": 2, "start_period_seconds": 40, "method": "GET"}
    run(tmp_path, scenario, health_check=health, startup_timeout=10)


def test_health_checks_follow_the_app_settings_and_fal_defaults(tmp_path):
    app = Settings.from_config(AppConfig(name="a", mode="app", class_name="A"))
    assert app.health == HealthProbe("/health", "GET", 15.0, 5.0, 3, 600.0)  # startup_timeout 600 > 30
    configured = AppConfig(
        name="s",
        mode="server",
        exposed_port=8000,
        startup_timeout=5,
        health_check={"path": "/ok", "timeout_seconds": 2},
    )
    assert Settings.from_config(configured).health == HealthProbe("/ok", "GET", 15.0, 2.0, 3, 30.0)
    manual = AppConfig(
        name="s", mode="server", exposed_port=8000, health_check={"path": "/ok", "call_regularly": False}
    )
    assert Settings.from_config(manual).health is None
    assert Settings.from_config(AppConfig(name="s", mode="server", exposed_port=8000)).health is None


def test_a_runner_that_starts_listening_beyond_loopback_is_stopped_as_a_failure(tmp_path):
    """A server that passes the start's check and rebinds to 0.0.0.0 later (issue 20, item 9): found
    at the next look, stopped, and counted as a failure (restarts back off)."""

    async def scenario(host: FakeHost, runtime: AppRuntime) -> None:
        await advance(host, runtime, 1)
        [runner] = runtime.pool.ready()
        host.listening[runner.id] = [f"0.0.0.0:{runner.port}"]
        await advance(host, runtime, 1)
        assert runner.state in (RunnerState.STOPPING, RunnerState.DEAD)
        events = [e["message"] for e in runtime.info().to_json()["events"]]
        assert any(f"listens on 0.0.0.0:{runner.port}" in e and "It is stopped." in e for e in events), events
        assert runtime.pool.lifecycle.failures == 1

    run(tmp_path, scenario, min_concurrency=1)
