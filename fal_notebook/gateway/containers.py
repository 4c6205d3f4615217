"""Docker runners: a runner is a small program (docker_runner.py) that runs the app's image detached
and follows it.

Its output is the container's, it exits when the container does and with its exit code, and its
SIGTERM stops the container (``--init`` forwards the stop to the app, so even a Python PID 1 stops at
once). A killed runner leaves its container running, so each container is named after its runner and
removed when the runner ends (the launch's ``cleanup``), and labelled with the gateway's state, so
that a gateway starting after a crash removes what the previous one left.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import docker

from ..docker_engine import engine
from ..errors import DeployError
from ..generate.project import AppProject
from .runners import Launch, runner_environment

STATE_LABEL = "org.fal-notebook.state"
APP_LABEL = "org.fal-notebook.app"
#: The runner program: ``docker run --detach``, its output, its exit code (standard library only).
RUNNER_PROGRAM = str(Path(__file__).with_name("docker_runner.py"))


def gpu_runtime() -> bool:
    """Whether the engine can give containers GPUs (it has NVIDIA's runtime)."""
    client = engine(timeout=10)
    try:
        return "nvidia" in (client.info().get("Runtimes") or {})
    finally:
        client.close()


def launch(
    project: AppProject,
    image: str,
    secrets: dict[str, str],
    *,
    state_id: str,
    startup_timeout: float,
    gpus: int = 0,
) -> Launch:
    """Runners run the image with the app's port published on ``127.0.0.1:{port}`` (and ``gpus``
    GPUs, for a GPU machine type on an engine that has them)."""
    docker_cli = shutil.which("docker")
    if docker_cli is None:
        raise DeployError(
            "The `docker` command is not on the gateway's PATH (docker runners run `docker run`). "
            "Install Docker's command-line client, then deploy again."
        )
    config = project.config
    argv = [
        sys.executable,
        "-I",  # no user site, no PYTHON* variables, no current folder on its path
        "-S",  # no site-packages either: a faster start
        RUNNER_PROGRAM,
        "{instance}",
        "{start_fd}",
        docker_cli,
        "run",
        "--detach",
        "--init",
        "--pull",
        "never",
        "--name",
        "{instance}",
        "--label",
        f"{STATE_LABEL}={state_id}",
        "--label",
        f"{APP_LABEL}={project.name}",
        "--publish",
        f"127.0.0.1:{{port}}:{config.port}",
        "--env",
        f"PORT={config.port}",
    ]
    if gpus:
        argv += ["--gpus", str(gpus)]
    for name in sorted(secrets):  # values come from the client's environment, never its command line
        argv += ["--env", name]
    argv.append(image)
    health = config.health_check.path if config.health_check else None
    return Launch(
        argv,
        project.path,
        runner_environment(secrets, loopback=False),
        health_path="/health" if project.mode == "app" else health,
        startup_timeout=startup_timeout,
        cleanup=[docker_cli, "rm", "--force", "{instance}"],
        http_probe=True,
        image=image,
        start_notice=True,
    )


def remove_containers(state_id: str) -> int:
    """Remove the containers a previous gateway of this state left (after a crash); how many."""
    try:
        client = engine(timeout=10)
    except DeployError:
        return 0  # no engine, no containers
    removed = 0
    try:
        for container in client.containers.list(all=True, filters={"label": f"{STATE_LABEL}={state_id}"}):
            try:
                container.remove(force=True)
                removed += 1
            except docker.errors.APIError:
                pass
    finally:
        client.close()
    return removed
