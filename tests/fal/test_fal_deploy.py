"""Deploying to fal through the real `fal` CLI, up to the network boundary."""

from __future__ import annotations

import sys
import threading
import time

import pytest

from fal_notebook import capture
from fal_notebook.backends import get_backend
from fal_notebook.backends.base import Deployment
from fal_notebook.backends.fal import FalBackend, describe_change
from fal_notebook.backends.fal_cli import deploy_args, run_fal
from fal_notebook.backends.fal_errors import explain
from fal_notebook.errors import DeployCancelled, DeployError


def deploy(project, **backend_options):
    lines: list[str] = []
    deployment = FalBackend(**backend_options).deploy(project, progress=lines.append)
    return deployment, lines


def test_get_backend_gives_the_fal_backend():
    assert isinstance(get_backend("fal"), FalBackend)


def test_real_fal_deploy_without_credentials_fails_after_accepting_the_project(project):
    """fal itself loads the folder, the TOML and the module, then stops at authentication."""
    run = run_fal(deploy_args("text-stats"), cwd=project.path, timeout=120)
    assert not run.ok
    assert "Deploying 'TextStats' as app 'text-stats'" in run.output  # TOML + app.py accepted
    assert "You must be authenticated" in run.output
    error = explain(run, app="text-stats", folder=str(project.path))
    assert str(error).startswith("You are not logged in to fal, so nothing was deployed.")
    assert "%fal_login" in str(error)


def test_deploy_without_credentials_stops_before_running_fal(project):
    with pytest.raises(DeployError, match="You are not logged in to fal"):
        deploy(project)
    assert Deployment.load("text-stats") is None


def test_key_but_no_network_is_reported_as_unreachable_with_nothing_deployed(project, fake_key):
    start = time.monotonic()
    with pytest.raises(DeployError) as err:
        deploy(project, timeout=90)
    assert time.monotonic() - start < 90
    message = str(err.value)
    assert message.startswith("fal could not be reached from this machine")
    assert "Nothing was deployed." in message
    assert "Connection refused" in message
    record = Deployment.load("text-stats")
    assert record.status == "failed" and record.detail.last_error.startswith("fal could not be reached")


def test_a_hanging_fal_is_bounded_and_reported(project, fake_key, monkeypatch):
    hanging = [sys.executable, "-c", "import time; print('Deploying', flush=True); time.sleep(60)"]
    monkeypatch.setattr("fal_notebook.backends.fal_cli.fal_command", lambda args: hanging)
    start = time.monotonic()
    with pytest.raises(DeployError, match="did not answer in time") as err:
        deploy(project, timeout=1)
    assert time.monotonic() - start < 30
    assert "Nothing was deployed." in str(err.value)


def test_successful_deploy_records_what_fal_reported(project, fake_key, fake_cloud):
    deployment, lines = deploy(project)
    assert deployment.target == "fal" and deployment.status == "ready"
    assert deployment.endpoint_id == "test-user/text-stats"
    assert deployment.url == "https://fal.run/test-user/text-stats"
    assert deployment.queue_url == "https://queue.fal.run/test-user/text-stats"
    assert deployment.detail.revision == "rev-1"
    assert deployment.detail.playground_urls == {"/": "https://fal.ai/models/test-user/text-stats/"}
    assert Deployment.load("text-stats") == deployment
    started = fake_cloud.calls("deploy_started")[0]
    assert started["message"] == "fal-notebook: app.py from a notebook cell"
    assert started["reset_scale"] is False and started["attach"] is None
    assert any("fal deploy text-stats --output json" in line for line in lines)
    assert any("Build complete" in line for line in lines)
    assert [line.step for line in lines if line.kind == "step"] == ["checks", "deploy", "ready"]
    assert {line.step for line in lines if "Build complete" in line} == {"deploy"}  # fal's own output


def test_a_cancelled_fal_deploy_stops_the_command(project, fake_key, monkeypatch):
    hanging = [sys.executable, "-c", "import time; print('Deploying', flush=True); time.sleep(60)"]
    monkeypatch.setattr("fal_notebook.backends.fal_cli.fal_command", lambda args: hanging)
    cancel = threading.Event()

    def progress(line):
        if line == "Deploying":
            cancel.set()

    start = time.monotonic()
    with pytest.raises(DeployCancelled, match="was cancelled"):
        FalBackend().deploy(project, progress=progress, cancel=cancel)
    assert time.monotonic() - start < 30


def test_redeploy_describes_the_change_and_applies_changed_scaling(project, cell, fake_key, fake_cloud, tmp_path):
    deploy(project)
    changed = cell.replace("len(inp.text.split())", "len(inp.text.split()) + 0")
    project2 = capture(
        changed,
        "text-stats",
        dir=project.path,
        search_dir=tmp_path,
        min_concurrency=1,
        max_concurrency=2,
        keep_alive=300,
    )
    deployment, lines = deploy(project2)
    started = fake_cloud.calls("deploy_started")[-1]
    assert started["message"] == "fal-notebook: app.py +1 -1 lines; changed TextStats.run"
    assert deployment.detail.revision == "rev-2"
    # fal 1.83 ignores --reset-scale for `fal deploy <name>`: the new values are set with `fal apps scale`
    assert fake_cloud.calls("scale") == [
        {"call": "scale", "app_name": "text-stats", "keep_alive": 300, "min_concurrency": 1}
    ]
    assert deployment.detail.scaling == {"keep_alive": 300, "min_concurrency": 1, "max_concurrency": 2}
    deploy(project2)
    assert fake_cloud.calls("deploy_started")[-1]["message"] == "fal-notebook: app.py unchanged (configuration only)"
    assert len(fake_cloud.calls("scale")) == 1  # nothing changed, nothing re-applied


def test_no_wait_detaches_a_rolling_deploy(project, fake_key, fake_cloud):
    FalBackend().deploy(project, wait=False, progress=lambda line: None)
    assert fake_cloud.calls("deploy_started")[0]["attach"] is False


def test_build_failure_names_the_failing_step(project, fake_key, fake_cloud):
    fake_cloud.scenario("build_failure")
    with pytest.raises(DeployError) as err:
        deploy(project)
    message = str(err.value)
    assert message.startswith("fal could not build the app's environment at this step:")
    assert "Step 2/3 : RUN pip install -r requirements.txt" in message
    assert "No matching distribution found for torch==0.0.1" in message


def test_start_failure_shows_the_apps_log(project, fake_key, fake_cloud):
    fake_cloud.scenario("start_failure")
    with pytest.raises(DeployError) as err:
        deploy(project)
    assert str(err.value).startswith("The app was built but failed to start on fal")
    assert "RuntimeError: weights not found in /data" in str(err.value)


def test_failed_redeploy_keeps_the_live_revisions_record(project, fake_key, fake_cloud):
    first, _ = deploy(project)
    fake_cloud.scenario("start_failure")
    with pytest.raises(DeployError):
        deploy(project)
    record = Deployment.load("text-stats")
    assert (record.status, record.url, record.detail.revision) == ("ready", first.url, "rev-1")
    assert record.detail.last_error.startswith("The app was built but failed to start")


def test_rejected_key(project, fake_key, fake_cloud):
    fake_cloud.scenario("key_rejected")
    with pytest.raises(DeployError, match="fal rejected the key") as err:
        deploy(project)
    assert "No user found for Key ID and Secret" in str(err.value)


def test_change_description_is_short_and_names_definitions():
    old = "def a():\n    return 1\n\nclass B:\n    def c(self):\n        return 2\n"
    new = "def a():\n    return 1\n\nclass B:\n    def c(self):\n        return 3\n\ndef d():\n    pass\n"
    assert describe_change(old, new, "app.py") == "fal-notebook: app.py +4 -1 lines; changed B.c, d"
    assert describe_change(None, new, "server.py") == "fal-notebook: server.py from a notebook cell"
