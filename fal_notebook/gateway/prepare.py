"""From a project folder to how its runners start: the environment, the command, the ports."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import shutil
from pathlib import Path

from jupyter_core.paths import jupyter_runtime_dir

from .. import wire
from ..config import kernel_python_version, reads_port_variable
from ..environments import runner_requirements
from ..generate.project import AppProject, file_digest
from ..state import gateway_tls_port, home
from .admin_api import DeploySpec
from .containers import gpu_options, gpu_runtime, image_command, launch as docker_launch, runner_network
from .envs import OnLine, ensure_environment
from .gpus import GpuPool, plan
from .images import ensure_image
from .paths import state_id
from .platform_env import (
    DATA_MOUNT,
    check_data_literal,
    data_dir,
    docker_environment,
    docker_mounts,
    local_environment,
)
from .runners import Launch, runner_environment
from .sandbox import Bind, detect
from .settings import Settings
from .tls import ca_bundle


def digest(project: AppProject, spec: DeploySpec, key: str) -> str:
    """Changes whenever a redeploy must replace the runners (keyed, as it covers secret values)."""
    data = {
        "config": project.config.model_dump(mode="json", exclude_none=True),
        "files": {name: text for name, text in sorted(project.files.items())},
        "data": {name: file_digest(path) for name, path in sorted(project.data_files.items())},
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


async def prepare(project: AppProject, spec: DeploySpec, on_line: OnLine, pool: GpuPool) -> tuple[Launch, list[str]]:
    """The Launch for the project's runners, building the environment if needed, and notes. Runners
    of a GPU machine type take their GPUs from ``pool`` (gpus.py)."""
    config = project.config
    notes: list[str] = list(project.notes)  # keys fal applies and local runners do not
    wanted = (config.num_gpus or 1) if config.is_gpu else 0
    if config.machine_type and not wanted:
        notes.append(f"machine_type {', '.join(config.machine_type)} applies on fal; local runners use this machine.")
    timeout = Settings.from_config(config).startup_timeout
    if spec.env == "docker":
        network = await asyncio.to_thread(runner_network)  # a wrong setting is said before a long build
        image = await ensure_image(project, Path(spec.path) / "Dockerfile", on_line)
        if wanted and not await asyncio.to_thread(gpu_runtime):
            notes.append(
                "This Docker engine has no NVIDIA runtime (NVIDIA's container toolkit): the containers run without "
                "GPUs. Install the toolkit and restart the engine to give them theirs, or deploy with --target local."
            )
            wanted = 0
        gpus = plan(pool, wanted, config.machine_type or [])
        notes += [gpus.note] if gpus.note else []
        secrets = {**spec.secrets, **docker_environment()}  # the store's key among them: never in docker inspect
        launch = docker_launch(
            project,
            image,
            secrets,
            state_id=state_id(),
            startup_timeout=timeout,
            gpu_options=gpu_options(gpus.count if gpus.visible else wanted, managed=gpus.visible),
            mounts=docker_mounts(),
            network=network,
            command=await asyncio.to_thread(image_command, image),
        )
        launch.gpus = gpus.count
        return launch, notes
    gpus = plan(pool, wanted, config.machine_type or [])
    notes += [gpus.note] if gpus.note else []
    if config.python_version and config.python_version != kernel_python_version():
        notes.append(
            f"python_version {config.python_version} applies on fal; local runners use Python "
            f"{kernel_python_version()}."
        )
    sandbox = detect()
    if sandbox.note:
        notes.append(sandbox.note)
    entry = project.path / ("app.py" if project.mode == "app" else "server.py")
    if sandbox.bwrap is None and entry.is_file():
        check_data_literal(entry.read_text(), entry.name)
    if spec.env == "kernel":
        python = spec.python
        on_line(f"Using the kernel's Python environment ({python}): nothing to install.")
    else:
        python = str(await ensure_environment(spec.python, runner_requirements(project), on_line))
    bin_dir = str(Path(python).parent)
    env = runner_environment(
        spec.secrets,
        python_path=spec.python_path if spec.env == "kernel" else "",
        PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""),
    )
    trusted = (
        Path(env[wire.CA_BUNDLE_VARIABLE])
        if env.get(wire.CA_BUNDLE_VARIABLE) and Path(env[wire.CA_BUNDLE_VARIABLE]).is_file()
        else None
    )
    data = DATA_MOUNT if sandbox.bwrap else str(data_dir())  # where the runner sees it
    env.update(local_environment(gateway_tls_port(), ca_bundle(trusted, "runner-ca-bundle.pem"), env, data))
    if spec.env == "isolated":
        env["VIRTUAL_ENV"] = str(Path(python).parent.parent)
    launch = _process_launch(project, python, env, timeout, notes)
    launch.gpus, launch.visible_devices = gpus.count, gpus.visible
    launch.wrapper = sandbox.command(
        cwd=project.path,
        hidden=hidden_folders(),
        readable=needed_inside(python, env),
        writable=[project.path],
        binds=[Bind(data_dir(), DATA_MOUNT)],  # the user's /data, private to their runners, as on fal
    )
    return launch, notes


def _process_launch(project: AppProject, python: str, env: dict[str, str], timeout: float, notes: list[str]) -> Launch:
    """How runners on this machine start: ``fal run --local``, the server module, or the --cmd."""
    config = project.config
    if project.mode == "app":
        argv = [python, "-m", "fal", "run", "--local", f"app.py::{config.class_name}"]
        argv += ["--exposed-port", "{port}", "--exposed-metrics-port", "{metrics_port}"]
        return Launch(argv, project.path, env, health_path="/health", startup_timeout=timeout, needs_metrics_port=True)
    health = config.health_check.path if config.health_check else None
    if config.cmd is None:
        return Launch([python, "server.py"], project.path, env, health_path=health, startup_timeout=timeout)
    fixed = None
    if not reads_port_variable(config.cmd):
        fixed = config.exposed_port
        notes.append(
            f"--cmd does not read $PORT, so the server always listens on {fixed}: this app is limited to one "
            "local runner (max_concurrency 1). Let the command use $PORT to run several."
        )
    return Launch(
        [config.cmd],
        project.path,
        env,
        shell=True,
        fixed_port=fixed,
        health_path=health,
        startup_timeout=timeout,
    )


def hidden_folders() -> list[Path]:
    """What local runners must not read: ``FAL_NOTEBOOK_HOME`` (the gateway's key, queue, logs, the
    other apps), Jupyter's runtime folder (each kernel's connection key) and fal's own folder (the
    user's fal login and config: ``~/.fal``, or ``FAL_HOME_DIR``; a local runner has the gateway's
    store key instead)."""
    fal_home = Path(os.environ.get("FAL_HOME_DIR") or "~/.fal").expanduser()
    return [home(), Path(jupyter_runtime_dir()), fal_home]


def needed_inside(python: str, env: dict[str, str]) -> list[Path]:
    """What a runner reads inside the hidden folders: its virtualenv, and files its environment names
    (e.g. ``SSL_CERT_FILE``, a CA bundle in the state folder)."""
    hidden = hidden_folders()
    wanted = [Path(python).parent.parent, *(Path(value) for value in env.values() if value.startswith("/"))]
    return [path for path in wanted if path.exists() and any(path.is_relative_to(folder) for folder in hidden)]
