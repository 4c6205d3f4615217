"""The generated project folder builds with the real Docker engine and serves the app on its port.

Each test captures a cell with the real generators, builds the generated Dockerfile with the
``docker`` SDK (the legacy builder, as the docker backend does), runs the image with its port
published on 127.0.0.1 and talks to it over HTTP.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import docker
import httpx
import pytest

import fal_notebook
from fal_notebook.generate.dockerfile import base_image
from tests.gateway_helpers import free_port
from tests.polling import wait_for

pytestmark = pytest.mark.docker

FASTAPI_CELL = """\
from fastapi import FastAPI

app = FastAPI()


@app.get("/hello")
def hello(name: str = "world"):
    return {"message": f"hello {name}"}
"""

FAL_APP_CELL = """\
import fal
from pydantic import BaseModel, Field


class Input(BaseModel):
    text: str = Field(description="Text to count the words of")


class Output(BaseModel):
    words: int


class WordCount(fal.App):
    @fal.endpoint("/")
    def count(self, request: Input) -> Output:
        return Output(words=len(request.text.split()))
"""


@dataclass
class Running:
    url: str
    container: docker.models.containers.Container
    build_seconds: float


@pytest.fixture
def serve(docker_client, unavailable, tmp_path, monkeypatch) -> Iterator[Callable[..., Running]]:
    """``serve(cell, name, **options)``: capture the cell, build its image, run it, and return
    its URL once it answers ``ready_path``. Images and containers are removed afterwards."""
    monkeypatch.setenv("FAL_NOTEBOOK_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FAL_NOTEBOOK_BASE_IMAGE", raising=False)
    images: list[str] = []
    containers: list[docker.models.containers.Container] = []

    def run(cell: str, name: str, *, ready_path: str, timeout: float = 120, **options) -> Running:
        project = fal_notebook.capture(cell, name, dir=tmp_path / name, search_dir=tmp_path, **options)
        base = base_image(project.config)
        try:
            docker_client.images.get(base)
        except docker.errors.ImageNotFound:
            unavailable(f"The base image {base} is not on this machine (no registry to pull it from)")
        tag = f"fal-notebook-test/{project.name}:{uuid.uuid4().hex[:12]}"
        started = time.monotonic()
        try:
            docker_client.images.build(path=str(project.path), tag=tag, rm=True, forcerm=True)
        except docker.errors.BuildError as exc:
            log = "".join(chunk.get("stream", chunk.get("error", "")) for chunk in exc.build_log)
            pytest.fail(f"docker build of the generated {project.name} failed: {exc}\n{log[-4000:]}")
        build_seconds = time.monotonic() - started
        images.append(tag)
        print(f"{project.name}: image built in {build_seconds:.1f} s")
        port = free_port()
        container = docker_client.containers.run(
            tag, detach=True, ports={f"{project.config.port}/tcp": ("127.0.0.1", port)}
        )
        containers.append(container)
        url = f"http://127.0.0.1:{port}"
        wait_until_answers(url + ready_path, container, timeout)
        return Running(url=url, container=container, build_seconds=build_seconds)

    yield run
    for container in containers:
        container.remove(force=True)
    for tag in images:
        docker_client.images.remove(tag, force=True)


def wait_until_answers(url: str, container, timeout: float) -> None:

    def answers() -> bool:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        container.reload()
        if container.status == "exited":
            pytest.fail(f"{url} did not answer 200: its container exited:\n{logs()}")
        return False

    def logs() -> str:
        return container.logs().decode(errors="replace")[-4000:]

    wait_for(
        answers, f"{url} to answer 200 (container {container.short_id})", timeout=timeout, interval=0.2, details=logs
    )


def test_server_mode_fastapi_image_serves_the_cell(serve):
    running = serve(FASTAPI_CELL, "hello-server", ready_path="/openapi.json")

    hello = httpx.get(running.url + "/hello", params={"name": "docker"})
    assert hello.status_code == 200
    assert hello.json() == {"message": "hello docker"}
    schema = httpx.get(running.url + "/openapi.json")
    assert schema.status_code == 200
    assert "/hello" in schema.json()["paths"]


def test_app_mode_image_runs_the_fal_app(serve):
    running = serve(FAL_APP_CELL, "word-count", ready_path="/health", timeout=180)

    assert httpx.get(running.url + "/health").status_code == 200
    result = httpx.post(running.url + "/", json={"text": "three little words"}, timeout=30)
    assert result.status_code == 200
    assert result.json() == {"words": 3}
    bad = httpx.post(running.url + "/", json={"txt": "misspelled field"}, timeout=30)
    assert bad.status_code == 422
    assert any(error["loc"][-1] == "text" for error in bad.json()["detail"])


def test_cmd_server_image_runs_the_command_on_port(serve):
    running = serve(
        "# Static files, served by Python's own web server.\n",
        "static-files",
        cmd="python -m http.server $PORT",
        ready_path="/",
    )

    listing = httpx.get(running.url + "/")
    assert listing.status_code == 200
    assert "server.py" in listing.text  # it serves the project folder copied into the image


def test_cmd_server_gets_sigterm_on_stop(serve):
    running = serve(
        FASTAPI_CELL,
        "uvicorn-cmd",
        cmd="uvicorn server:app --host 0.0.0.0 --port $PORT",
        requirements=["uvicorn"],
        ready_path="/hello",
    )
    # the command runs as PID 1 (exec, not under sh), so `docker stop`'s SIGTERM reaches uvicorn,
    # which shuts down cleanly instead of being killed when the timeout ends (exit code 137)
    running.container.stop(timeout=20)
    running.container.reload()
    assert running.container.attrs["State"]["ExitCode"] == 0
