"""From a project folder to how its runners start: the environment, the command, the ports."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import shutil
from pathlib import Path

from ..config import kernel_python_version, reads_port_variable
from ..environments import runner_requirements
from ..generate.project import AppProject
from .admin_api import DeploySpec
from .containers import gpu_runtime, launch as docker_launch
from .envs import OnLine, ensure_environment
from .images import ensure_image
from .paths import state_id
from .runners import Launch, runner_environment
from .settings import Settings


def digest(project: AppProject, spec: DeploySpec, key: str) -> str:
    """Changes whenever a redeploy must replace the runners (keyed, as it covers secret values)."""
    data = {
        "config": project.config.model_dump(mode="json", exclude_none=True),
        "files": {name: text for name, text in sorted(project.files.items())},
        "spec": spec.public(),
        "secrets": sorted(spec.secrets.items()),
    }
    return hmac.new(key.encode(), json.dumps(data, sort_keys=True).encode(), hashlib.sha256).hexdigest()[:16]


def snapshot(source: Path, target: Path) -> None:
    """Copy the project, so runners started later run the deployed code, not later edits."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(
        source,
        target,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".git", ".venv", ".ipynb_checkpoints"),
    )


async def prepare(project: AppProject, spec: DeploySpec, on_line: OnLine) -> tuple[Launch, list[str]]:
    """The Launch for the project's runners, building the environment if needed, and notes."""
    config = project.config
    notes: list[str] = list(project.notes)  # keys fal applies and local runners do not
    if config.machine_type:
        notes.append(f"machine_type {', '.join(config.machine_type)} applies on fal; local runners use this machine.")
    timeout = Settings.from_config(config).startup_timeout
    if spec.env == "docker":
        image = await ensure_image(project, Path(spec.path) / "Dockerfile", on_line)
        gpus = (config.num_gpus or 1) if config.is_gpu and await asyncio.to_thread(gpu_runtime) else 0
        if config.is_gpu and not gpus:
            notes.append("This Docker engine has no NVIDIA runtime: the containers run without GPUs.")
        launch = docker_launch(project, image, spec.secrets, state_id=state_id(), startup_timeout=timeout, gpus=gpus)
        return launch, notes
    if config.python_version and config.python_version != kernel_python_version():
        notes.append(
            f"python_version {config.python_version} applies on fal; local runners use Python "
            f"{kernel_python_version()}."
        )
    if spec.env == "kernel":
        python = spec.python
        on_line(f"Runners use the kernel's Python environment ({python}).")
    else:
        python = str(await ensure_environment(spec.python, runner_requirements(project), on_line))
    bin_dir = str(Path(python).parent)
    env = runner_environment(spec.secrets, PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""))
    if spec.env == "isolated":
        env["VIRTUAL_ENV"] = str(Path(python).parent.parent)
    if project.mode == "app":
        argv = [python, "-m", "fal", "run", "--local", f"app.py::{config.class_name}"]
        argv += ["--exposed-port", "{port}", "--exposed-metrics-port", "{metrics_port}"]
        launch = Launch(
            argv, project.path, env, health_path="/health", startup_timeout=timeout, needs_metrics_port=True
        )
        return launch, notes
    health = config.health_check.path if config.health_check else None
    if config.cmd is None:
        return Launch([python, "server.py"], project.path, env, health_path=health, startup_timeout=timeout), notes
    fixed = None
    if not reads_port_variable(config.cmd):
        fixed = config.exposed_port
        notes.append(
            f"--cmd does not read $PORT, so the server always listens on {fixed}: this app is limited to one "
            "local runner (max_concurrency 1). Let the command use $PORT to run several."
        )
    launch = Launch(
        [config.cmd],
        project.path,
        env,
        shell=True,
        fixed_port=fixed,
        health_path=health,
        startup_timeout=timeout,
    )
    return launch, notes
