"""The docker target: base images, what the image copies, the content tag, the ``docker run``
command; the runners' cleanup command (run once the runner process ended); and, with an engine, the
runner program (docker_runner.py): the container's output, exit code, graceful stop and errors."""

from __future__ import annotations

import asyncio
import socket
import sys
import uuid
from pathlib import Path

import httpx
import pytest

import fal_notebook
from fal_notebook.config import kernel_python_version
from fal_notebook.gateway.containers import (
    READ_SECRETS,
    RUNNER_PROGRAM,
    SECRETS_TARGET,
    STATE_LABEL,
    gpu_options,
    launch,
)
from fal_notebook.gateway.gpus import Gpu
from fal_notebook.gateway.images import base_images, copied_sources, image_files, image_tag, repository
from fal_notebook.gateway.runners import Launch, Runner, RunnerStartError
from fal_notebook.gateway.supervisor import Supervisor

SERVER_CELL = "from fastapi import FastAPI\n\napp = FastAPI()\n"


@pytest.fixture
def project(fal_env, tmp_path):
    return fal_notebook.capture(SERVER_CELL, "tagged", dir=tmp_path / "tagged", search_dir=tmp_path)


def test_base_images_skip_stages_and_scratch():
    dockerfile = (
        "FROM --platform=linux/amd64 python:3.11-slim AS build\nRUN pip wheel .\n"
        "FROM build AS test\nFROM scratch\nfrom falai/base:3.11-12.1.0\nCOPY --from=build /w /w\n"
    )
    assert base_images(dockerfile) == ["python:3.11-slim", "falai/base:3.11-12.1.0"]


def test_copied_sources_read_copy_and_add_but_not_other_stages():
    dockerfile = (
        "COPY requirements.txt .\nCOPY --chown=app:app server.py helpers.py ./\n"
        'ADD ["data dir/", "/data/"]\nCOPY --from=build /wheels /wheels\nCOPY \\\n  ./extra.py /app/\n'
    )
    assert copied_sources(dockerfile) == ["requirements.txt", "server.py", "helpers.py", "data dir/", "extra.py"]


def test_tag_changes_with_the_code_not_with_scaling_keys(project):
    path = project.path
    tag = image_tag("tagged", path, ["sha256:base"])
    assert tag.startswith("fal-notebook/tagged:")
    assert image_files(path) == ["Dockerfile", "requirements.txt", "server.py"]

    (path / "pyproject.toml").write_text((path / "pyproject.toml").read_text() + "\nkeep_alive = 30\n")
    (path / "README.md").write_text("notes")
    assert image_tag("tagged", path, ["sha256:base"]) == tag  # the image does not copy them
    assert image_tag("tagged", path, ["sha256:rebuilt-base"]) != tag

    (path / "server.py").write_text(SERVER_CELL + "# edited\n")
    assert image_tag("tagged", path, ["sha256:base"]) != tag


def test_copying_the_whole_folder_hashes_what_docker_sends(project):
    path = project.path
    dockerfile = path / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace("COPY server.py ./", "COPY . ./"))
    files = image_files(path)
    assert "pyproject.toml" in files and "server.py" in files
    assert ".fal-notebook.json" not in files  # .dockerignore'd


def test_runner_command_publishes_the_app_port_and_passes_secrets_in_a_file(project):
    options = gpu_options(1)
    docker_launch = launch(
        project,
        "fal-notebook/tagged:abc",
        {"API_TOKEN": "v4lue"},
        state_id="s1",
        startup_timeout=60,
        gpu_options=options,
        command=["python", "server.py"],
    )
    argv = docker_launch.argv
    secrets_file, names = argv[argv.index("{start_fd}") + 1 : argv.index("{start_fd}") + 3]
    assert secrets_file.endswith("/gateway/secrets/{instance}.env") and names == "API_TOKEN"
    assert argv[argv.index("{start_fd}") + 4 : argv.index("{start_fd}") + 6] == ["run", "--detach"]
    assert docker_launch.start_notice and "--rm" not in argv  # the runner program reads the exit code, then removes
    assert "127.0.0.1:{port}:8000" in argv and "PORT=8000" in argv
    assert argv[argv.index("--gpus") + 1] == '"device={gpus}"'  # each runner's own GPUs, by UUID
    assert f"type=bind,source={secrets_file},target={SECRETS_TARGET},readonly" in argv
    assert argv[argv.index("fal-notebook/tagged:abc") :] == [
        "fal-notebook/tagged:abc",
        "-c",
        READ_SECRETS,
        "sh",
        "python",
        "server.py",
    ]
    assert "v4lue" not in " ".join(argv)  # and no `--env API_TOKEN`: the file has it
    assert all(argv[i : i + 2] != ["--env", "API_TOKEN"] for i in range(len(argv)))
    assert docker_launch.env["API_TOKEN"] == "v4lue"  # the runner program writes it to the file
    assert docker_launch.cleanup[-3:] == ["rm", "--force", "{instance}"]
    assert docker_launch.http_probe and docker_launch.fixed_port is None
    plain = launch(project, "fal-notebook/tagged:abc", {}, state_id="s1", startup_timeout=60, gpu_options=options)
    assert plain.argv[-1] == "fal-notebook/tagged:abc" and "--mount" not in plain.argv


def test_gpu_options_name_the_runners_gpus_or_none():
    assert gpu_options(2) == [
        "--gpus",
        '"device={gpus}"',
        "--env",
        "NVIDIA_VISIBLE_DEVICES={gpus}",
        "--env",
        "CUDA_VISIBLE_DEVICES={gpus}",
    ]
    assert gpu_options(0) == ["--env", "CUDA_VISIBLE_DEVICES="]  # as on fal's CPU machines
    assert gpu_options(2, managed=False) == ["--gpus", "2"]  # the gateway found no GPU: the engine's


@pytest.mark.docker
def test_docker_takes_a_runners_gpus_by_uuid(docker_client, tmp_path: Path):
    """What a runner's ``{gpus}`` becomes is what the docker CLI reads as device requests (created,
    not started: this engine has no NVIDIA runtime)."""
    image = f"python:{kernel_python_version()}-slim"
    create = ["docker", "create", "--label", f"{STATE_LABEL}=test-{uuid.uuid4().hex}", "--name", "{instance}"]
    launch = Launch(
        [sys.executable, "-m", "http.server", "{port}", "--bind", "127.0.0.1"],
        tmp_path,
        {},
        cleanup=[*create, *gpu_options(2), image, "true"],  # run once the runner ended, with its placeholders
    )
    runner = Runner("gpu-r1-1", 1, launch, lambda *_: None, gpus=(Gpu(0, "GPU-aaaa-1111"), Gpu(1, "GPU-bbbb-2222")))

    async def run() -> None:
        tasks = Supervisor()
        async with httpx.AsyncClient() as http:
            await runner.start(http, state_id=uuid.uuid4().hex, tasks=tasks)
            await runner.stop(grace=5)
        await tasks.close()

    asyncio.run(run())
    container = docker_client.containers.get(runner.instance)
    try:
        [request] = container.attrs["HostConfig"]["DeviceRequests"]
        assert request["DeviceIDs"] == ["GPU-aaaa-1111", "GPU-bbbb-2222"] and request["Capabilities"] == [["gpu"]]
        env = container.attrs["Config"]["Env"]
        assert "NVIDIA_VISIBLE_DEVICES=GPU-aaaa-1111,GPU-bbbb-2222" in env
        assert "CUDA_VISIBLE_DEVICES=GPU-aaaa-1111,GPU-bbbb-2222" in env
    finally:
        container.remove(force=True)


def test_repository_names_are_valid_for_docker():
    assert repository("text-stats") == "fal-notebook/text-stats"
    assert repository("odd_-name_") == "fal-notebook/odd-name"


def test_runner_cleanup_runs_once_with_the_runner_instance_name(tmp_path: Path):
    launch = Launch(
        [sys.executable, "-m", "http.server", "{port}", "--bind", "127.0.0.1"],
        tmp_path,
        {},
        cleanup=[sys.executable, "-c", "import sys; open(sys.argv[1], 'a').write('x')", "{instance}.cleaned"],
    )
    runner = Runner("app-r1-1", 1, launch, lambda *_: None)

    async def run() -> None:
        tasks = Supervisor()
        async with httpx.AsyncClient() as http:
            await runner.start(http, state_id="0123456789abcdef", tasks=tasks)
            await runner.stop(grace=5)
            await runner.stop(grace=5)
        await tasks.close()
        assert tasks.failures == 0

    asyncio.run(run())
    assert runner.instance == "fal-notebook-app-r1-1-01234567"
    assert (tmp_path / f"{runner.instance}.cleaned").read_text() == "x"


NOTICE_SERVER = """\
import http.server, os, sys, threading, time
server = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), http.server.SimpleHTTPRequestHandler)
threading.Thread(target=server.serve_forever, daemon=True).start()
time.sleep(0.3)
print("start notice closed", flush=True)
os.close(int(sys.argv[2]))
time.sleep(60)
"""


def test_a_runner_with_a_start_notice_is_probed_only_once_it_closed_it(tmp_path: Path):
    output: list[str] = []
    argv = [sys.executable, "-c", NOTICE_SERVER, "{port}", "{start_fd}"]
    launch = Launch(argv, tmp_path, {}, http_probe=True, start_notice=True)
    runner = Runner("app-r1-1", 1, launch, lambda _, name, line: output.append(line))

    async def run() -> None:
        tasks = Supervisor()
        async with httpx.AsyncClient() as http:
            try:
                await runner.start(http, state_id="0123456789abcdef", tasks=tasks)
            finally:
                await runner.stop(grace=5)
        await tasks.close()
        assert tasks.failures == 0

    asyncio.run(run())
    probes = [i for i, line in enumerate(output) if '"GET / HTTP/1.1"' in line]  # the server logs each request
    assert probes and output.index("start notice closed") < probes[0]


def container_launch(tmp_path: Path, label: str, script: str, *, port: int | None = None) -> Launch:
    """A runner of the base image running ``python -c script`` (serving HTTP on port 8000, to be ready),
    as containers.launch runs an app."""
    image = f"python:{kernel_python_version()}-slim"
    run = ["docker", "run", "--detach", "--init", "--pull", "never", "--name", "{instance}", "--label", label]
    run += ["--publish", "127.0.0.1:{port}:8000", image, "python", "-u", "-c", script]
    argv = [sys.executable, "-I", "-S", RUNNER_PROGRAM, "{instance}", "{start_fd}", "-", "", *run]
    return Launch(argv, tmp_path, {}, fixed_port=port, http_probe=True, start_notice=True)


def run_runner(launch: Launch, *, stop: bool) -> tuple[Runner, list[tuple[str, str]], str]:
    """Start a runner of ``launch`` (then stop it, if ``stop``): the runner, its output, its start error."""
    output: list[tuple[str, str]] = []
    runner = Runner(f"t{uuid.uuid4().hex[:8]}", 1, launch, lambda _, name, line: output.append((name, line)))
    error = ""

    async def run() -> None:
        nonlocal error
        tasks = Supervisor()
        async with httpx.AsyncClient() as http:
            try:
                await runner.start(http, state_id=uuid.uuid4().hex, tasks=tasks)
                if stop:
                    await runner.stop(grace=10)
            except RunnerStartError as exc:
                error = str(exc)
            finally:
                await runner.stop(grace=10)
        await tasks.close()
        assert tasks.failures == 0

    asyncio.run(run())
    return runner, output, error


@pytest.mark.docker
def test_runner_program_passes_on_the_containers_streams_and_exit_code(docker_client, tmp_path):
    label = f"{STATE_LABEL}=test-{uuid.uuid4().hex}"
    script = "import sys; print('to stdout'); print('to stderr', file=sys.stderr); sys.exit(3)"
    runner, output, error = run_runner(container_launch(tmp_path, label, script), stop=False)
    assert runner.returncode == 3
    assert "exited with code 3 before it was ready" in error and "to stderr" in error
    assert ("stdout", "to stdout") in output and ("stderr", "to stderr") in output
    assert docker_client.containers.list(all=True, filters={"label": label}) == []


@pytest.mark.docker
def test_runner_program_stops_its_container_gracefully(docker_client, tmp_path):
    label = f"{STATE_LABEL}=test-{uuid.uuid4().hex}"
    script = (
        "import http.server, signal, sys\n"
        "signal.signal(signal.SIGTERM, lambda *_: sys.exit(print('stopping gracefully')))\n"
        "http.server.HTTPServer(('', 8000), http.server.SimpleHTTPRequestHandler).serve_forever()"
    )
    runner, output, error = run_runner(container_launch(tmp_path, label, script), stop=True)
    assert error == ""
    assert ("stdout", "stopping gracefully") in output and runner.returncode == 0
    assert docker_client.containers.list(all=True, filters={"label": label}) == []


@pytest.mark.docker
def test_runner_program_reports_a_taken_port_as_a_port_conflict(docker_client, tmp_path):
    label = f"{STATE_LABEL}=test-{uuid.uuid4().hex}"
    with socket.socket() as taken:  # bound, not listening: the probe is refused, docker cannot bind
        taken.bind(("127.0.0.1", 0))
        launch = container_launch(tmp_path, label, "pass", port=taken.getsockname()[1])
        runner, _, error = run_runner(launch, stop=False)
    assert runner.returncode == 125 and "before it was ready" in error
    assert "address already in use" in error or "port is already allocated" in error
    assert docker_client.containers.list(all=True, filters={"label": label}) == []
