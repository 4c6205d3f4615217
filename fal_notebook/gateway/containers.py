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
from collections.abc import Sequence
from pathlib import Path

import docker

from ..docker_engine import engine
from ..errors import DeployError
from ..generate.project import AppProject
from .gpus import CUDA_VISIBLE, NVIDIA_VISIBLE
from .paths import secrets_dir
from .runners import Launch, runner_environment

#: Where a container finds its secrets (``export NAME='value'`` lines), and the shell that reads them.
SECRETS_TARGET = "/run/fal-notebook/secrets"
READ_SECRETS = f'set -a; . {SECRETS_TARGET}; set +a; exec "$@"'
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


def gpu_options(count: int, *, managed: bool = True) -> list[str]:
    """``docker run`` options that give a runner its GPUs: ``count`` of the gateway's, by UUID (the
    runner's ``{gpus}``), or, where the gateway manages none, ``count`` of the engine's; without a
    GPU, an empty CUDA_VISIBLE_DEVICES, as on fal's CPU machines."""
    if not count:
        return ["--env", f"{CUDA_VISIBLE}="]
    if not managed:
        return ["--gpus", str(count)]
    devices = ["--gpus", '"device={gpus}"']  # quoted: docker reads the value as CSV, and UUIDs are comma-separated
    return devices + ["--env", f"{NVIDIA_VISIBLE}={{gpus}}", "--env", f"{CUDA_VISIBLE}={{gpus}}"]


def image_command(image: str) -> list[str]:
    """What the image runs: its entrypoint, then its command."""
    client = engine(timeout=30)
    try:
        config = client.images.get(image).attrs.get("Config") or {}
    finally:
        client.close()
    return [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]


def launch(
    project: AppProject,
    image: str,
    secrets: dict[str, str],
    *,
    state_id: str,
    startup_timeout: float,
    gpu_options: list[str],
    command: Sequence[str] = (),
) -> Launch:
    """Runners run the image with the app's port published on ``127.0.0.1:{port}`` and
    ``gpu_options`` (:func:`gpu_options`). The app's secrets reach it in a file that the runner writes
    and removes once the container started; a shell reads it into the environment before it runs the
    image's own ``command`` (its entrypoint and command)."""
    docker_cli = shutil.which("docker")
    if docker_cli is None:
        raise DeployError(
            "The `docker` command is not on the gateway's PATH (docker runners run `docker run`). "
            "Install Docker's command-line client, then deploy again."
        )
    config = project.config
    secrets_file = str(secrets_dir() / "{instance}.env") if secrets else "-"
    argv = [
        sys.executable,
        "-I",  # no user site, no PYTHON* variables, no current folder on its path
        "-S",  # no site-packages either: a faster start
        RUNNER_PROGRAM,
        "{instance}",
        "{start_fd}",
        secrets_file,
        ",".join(sorted(secrets)),
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
    argv += gpu_options
    if secrets:  # read from a file at start, so that they are not in the container's config (docker inspect)
        argv += ["--mount", f"type=bind,source={secrets_file},target={SECRETS_TARGET},readonly", "--entrypoint", "sh"]
        argv += [image, "-c", READ_SECRETS, "sh", *command]
    else:
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
    for leftover in secrets_dir().glob("*.env"):  # of runners killed before they removed them
        leftover.unlink(missing_ok=True)
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
