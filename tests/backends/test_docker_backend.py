"""``--target docker``: real images and containers behind the local gateway, called like local apps.

One gateway (private state dir, free port) serves the module; each image is built once. Images
and containers of the module are removed at its end, and none may be left over.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docker
import httpx
import pytest

import fal_notebook
from fal_notebook import cli
from fal_notebook.backends import deploy, get_deployment
from fal_notebook.backends.base import Deployment
from fal_notebook.config import kernel_python_version
from fal_notebook.errors import DeployError
from fal_notebook.gateway import gateway_key, start_gateway, stop_gateway
from fal_notebook.gateway.containers import APP_LABEL, STATE_LABEL
from fal_notebook.gateway.images import repository
from fal_notebook.gateway.paths import pid_path, state_id
from fal_notebook.gateway.runners import RUNNER_MARKER
from fal_notebook.state import read_json
from tests.gateway_helpers import free_port
from tests.polling import wait_for

pytestmark = pytest.mark.docker

SERVER_CELL = """\
import os

from fastapi import FastAPI
from pydantic import BaseModel


class Text(BaseModel):
    text: str


app = FastAPI()


@app.post("/")
def stats(body: Text) -> dict:
    print(f"counting {len(body.text)} characters", flush=True)
    return {"words": len(body.text.split()), "version": 1, "token": os.environ.get("DK_TOKEN")}
"""

FAL_APP_CELL = """\
import fal
from pydantic import BaseModel, Field


class Input(BaseModel):
    text: str = Field(description="Text to measure")


class Output(BaseModel):
    words: int
    characters: int


class TextStats(fal.App):
    @fal.endpoint("/")
    def stats(self, request: Input) -> Output:
        return Output(words=len(request.text.split()), characters=len(request.text))
"""


@dataclass
class DockerGateway:
    home: Path
    port: int
    apps_dir: Path
    docker: docker.DockerClient
    names: list[str] = field(default_factory=list)

    def name(self, stem: str) -> str:
        """A unique app name (images are shared by every gateway on the machine)."""
        name = f"{stem}-{uuid.uuid4().hex[:6]}"
        self.names.append(name)
        return name

    def capture(self, cell: str, name: str, **options):
        return fal_notebook.capture(cell, name, dir=self.apps_dir / name, search_dir=self.apps_dir, **options)

    def deploy(self, cell: str, name: str, **options) -> tuple[Deployment, list[str]]:
        lines: list[str] = []
        deployment = deploy(self.capture(cell, name, **options), target="docker", progress=lines.append)
        return deployment, lines

    def containers(self, name: str | None = None) -> list:
        labels = [f"{STATE_LABEL}={state_id()}"] + ([f"{APP_LABEL}={name}"] if name else [])
        return self.docker.containers.list(all=True, sparse=True, filters={"label": labels})

    def only_container(self, name: str):
        """The app's one container, once the runners of its earlier revisions are gone."""
        found = wait_for(lambda: len(self.containers(name)) == 1 and self.containers(name), what="one container")
        return found[0]

    def images(self, name: str) -> list[str]:
        return [tag for image in self.docker.images.list(name=repository(name)) for tag in image.tags]

    def info(self, name: str) -> dict:
        with httpx.Client(base_url=f"http://127.0.0.1:{self.port}") as client:
            response = client.get(f"/_fal_notebook/apps/{name}", headers={"Authorization": f"Key {gateway_key()}"})
        return response.json()


def runner_processes(state: str) -> list[str]:
    """The pids of the runners of gateway state ``state`` (they carry its marker in their environment)."""
    marker, found = f"{RUNNER_MARKER}={state}/".encode(), []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker in (entry / "environ").read_bytes():
                found.append(entry.name)
        except OSError:  # it ended meanwhile, or is not ours to read
            pass
    return found


@pytest.fixture(scope="module")
def gw(docker_client, tmp_path_factory) -> Iterator[DockerGateway]:
    home = tmp_path_factory.mktemp("home")
    port = free_port()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FAL_NOTEBOOK_HOME", str(home))
        mp.setenv("FAL_NOTEBOOK_GATEWAY_PORT", str(port))
        mp.setenv("FAL_NOTEBOOK_GATEWAY_TLS_PORT", str(free_port()))
        mp.delenv("FAL_NOTEBOOK_BASE_IMAGE", raising=False)
        handle = DockerGateway(home, port, tmp_path_factory.mktemp("apps"), docker_client)
        try:
            yield handle
        finally:
            stop_gateway()
            leftovers = handle.containers()
            for container in leftovers:
                container.remove(force=True)
            images = [tag for name in handle.names for tag in handle.images(name)]
            for tag in images:
                docker_client.images.remove(tag, force=True)
    assert not leftovers, f"containers left after the gateway stopped: {[c.name for c in leftovers]}"


@pytest.fixture(scope="module")
def server(gw):
    name = gw.name("dk-server")
    started = time.monotonic()
    # keep_alive: its container must outlive the fal.App image build of the next fixture (minutes on a busy machine)
    deployment, lines = gw.deploy(SERVER_CELL, name, auth="public", max_concurrency=2, keep_alive=900)
    print(f"{name}: built and deployed in {time.monotonic() - started:.1f} s")
    return deployment, lines


@pytest.fixture(scope="module")
def fal_app(gw):
    name = gw.name("dk-text-stats")
    started = time.monotonic()
    deployment, lines = gw.deploy(FAL_APP_CELL, name, auth="public")
    print(f"{name}: built and deployed in {time.monotonic() - started:.1f} s")
    return deployment, lines


def test_server_cell_deploys_as_a_container_behind_the_gateway(gw, server):
    deployment, lines = server
    base = f"http://127.0.0.1:{gw.port}"
    assert deployment.target == "docker" and deployment.status == "ready"
    assert deployment.endpoint_id == f"local/{deployment.name}"
    assert deployment.url == f"{base}/local/{deployment.name}"
    assert deployment.queue_url == f"{base}/queue/local/{deployment.name}"
    assert any(line.startswith("Building the image fal-notebook/") for line in lines)
    assert any(line.strip().startswith("Step 1/") for line in lines)  # the build's progress is shown
    [container] = gw.containers(deployment.name)
    assert container.status == "running"
    assert container.image.tags == [deployment.detail.image]
    assert Deployment.load(deployment.name).target == "docker"

    client = fal_notebook.connect(deployment.endpoint_id)
    assert client.run({"text": "three little words"}) == {"words": 3, "version": 1, "token": None}
    handle = client.submit({"text": "four words in queue"})
    assert handle.result(timeout=60) == {"words": 4, "version": 1, "token": None}
    assert "/" in client.openapi()["paths"]

    logs = deployment.logs()
    assert any("counting 18 characters" in line for line in logs)  # the container's output is the log


def test_the_deploy_reports_its_steps_and_how_far_the_image_build_is(gw, server):
    _, lines = server
    steps = [line.step for line in lines if line.kind == "step"]
    assert steps == ["image", "runners", "ready"], steps
    fractions = [line.fraction for line in lines if line.step == "image" and line.fraction is not None]
    assert fractions[0] == 0.0 and fractions == sorted(fractions) and fractions[-1] < 1.0, fractions


def test_fal_app_cell_runs_in_its_image(gw, fal_app):
    deployment, lines = fal_app
    assert deployment.target == "docker" and deployment.status == "ready"
    client = fal_notebook.connect(f"local/{deployment.name}")
    assert client.run({"text": "hello docker world"}) == {"words": 3, "characters": 18}
    handle = client.submit({"text": "queued through the gateway"})
    assert handle.result(timeout=60) == {"words": 4, "characters": 26}
    schema = client.openapi()
    assert "Input" in json.dumps(schema)
    [container] = gw.containers(deployment.name)
    assert container.image.tags == [deployment.detail.image]


def test_unchanged_redeploy_from_the_cli_reuses_image_revision_and_container(gw, server, capsys):
    deployment, _ = server
    before = gw.info(deployment.name)
    [container] = gw.containers(deployment.name)

    assert cli.main(["deploy", deployment.name, "--target", "docker", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["target"] == "docker" and shown["status"] == "ready"
    assert shown["endpoint_id"] == f"local/{deployment.name}"
    after = gw.info(deployment.name)
    assert after["revision"] == before["revision"] and after["image"] == before["image"]
    assert [c.id for c in gw.containers(deployment.name)] == [container.id]


def test_magic_deploys_with_target_docker(gw, fal_app):
    from IPython.core.interactiveshell import InteractiveShell

    deployment, _ = fal_app
    shell = InteractiveShell.instance()
    try:
        shell.extension_manager.load_extension("fal_notebook")
        again = shell.run_line_magic("fal_deploy", f"{deployment.name} --target docker")
    finally:
        InteractiveShell.clear_instance()
    assert again.target == "docker" and again.status == "ready"
    assert again.detail.image == deployment.detail.image
    assert again.detail.revision == deployment.detail.revision


def test_config_change_reuses_the_image_code_change_builds_a_new_one(gw, server):
    name = server[0].name
    first, _ = gw.deploy(SERVER_CELL, name, auth="public")
    old_container = gw.only_container(name)

    rescaled, lines = gw.deploy(SERVER_CELL, name, auth="public", keep_alive=30)
    assert rescaled.detail.revision == first.detail.revision + 1  # new settings, new runners...
    assert rescaled.detail.image == first.detail.image  # ...of the same image, not rebuilt
    assert not any(line.startswith("Building the image") for line in lines)
    wait_for(lambda: old_container.id not in [c.id for c in gw.containers(name)], what="old container removed")

    changed, lines = gw.deploy(SERVER_CELL.replace('"version": 1', '"version": 2'), name, auth="public")
    assert changed.detail.image != first.detail.image
    assert any(line.startswith("Building the image") for line in lines)
    assert fal_notebook.connect(f"local/{name}").run({"text": "new code"}) == {"words": 2, "version": 2, "token": None}
    container = gw.only_container(name)
    assert container.image.tags == [changed.detail.image]
    # the revisions before are gone, and with them their image
    wait_for(lambda: gw.images(name) == [changed.detail.image], what="the old image removed")


def test_secrets_reach_the_container_but_not_its_command_line_or_config(gw, server, monkeypatch):
    """Nor its configuration: `docker inspect` shows neither the secret nor the user's fal key (issue
    20, item 9); they come in a file the runner removes once the container started."""
    name = server[0].name
    monkeypatch.setenv("DK_TOKEN", "s3cret-value-for-docker")
    monkeypatch.setenv("FAL_KEY", "docker-key-id-0123:docker-key-secret-4567")
    deployment, lines = gw.deploy(SERVER_CELL, name, auth="public", secrets=["DK_TOKEN"])
    assert fal_notebook.connect(f"local/{name}").run({"text": "x"})["token"] == "s3cret-value-for-docker"
    [runner] = [r for r in gw.info(name)["runners"] if r["state"] == "ready"]
    command_line = Path(f"/proc/{runner['pid']}/cmdline").read_bytes().decode()
    assert "DK_TOKEN" in command_line and "s3cret-value-for-docker" not in command_line
    assert not any("s3cret-value-for-docker" in line for line in [*lines, *deployment.logs()])
    inspected = json.dumps(gw.docker.api.inspect_container(gw.only_container(name).id))  # `docker inspect`
    for value in ("s3cret-value-for-docker", "docker-key-id-0123", "docker-key-secret-4567"):
        assert value not in inspected
    assert list((gw.home / "gateway" / "secrets").iterdir()) == []


def test_gpu_machine_type_without_nvidia_runtime_runs_without_gpus(gw, server):
    if "nvidia" in (gw.docker.info().get("Runtimes") or {}):
        pytest.skip("this engine has NVIDIA's runtime")
    cpu_base = f"python:{kernel_python_version()}-slim"  # a GPU app's default base image cannot be pulled here
    deployment, lines = gw.deploy(
        SERVER_CELL, server[0].name, auth="public", machine_type=["GPU-A100"], base_image=cpu_base
    )
    assert deployment.detail.image == server[0].detail.image  # the same Dockerfile: no rebuild
    assert any("no NVIDIA runtime" in line for line in lines)
    assert fal_notebook.connect(deployment.endpoint_id).run({"text": "no gpu here"})["words"] == 3


def test_a_killed_docker_client_takes_its_container_along(gw, server):
    name = server[0].name
    gw.deploy(SERVER_CELL, name, auth="public")
    container = gw.only_container(name)
    [runner] = gw.info(name)["runners"]
    os.kill(runner["pid"], signal.SIGKILL)  # the `docker run` client, not the container
    wait_for(lambda: container.id not in [c.id for c in gw.containers(name)], what="its container removed")
    assert fal_notebook.connect(f"local/{name}").run({"text": "on a new runner"})["words"] == 4
    assert gw.only_container(name).id != container.id


def test_stop_removes_the_containers(gw, server):
    name = server[0].name
    deployment, _ = gw.deploy(SERVER_CELL, name, auth="public", min_concurrency=2, max_concurrency=2)
    wait_for(lambda: len(gw.containers(name)) == 2, what="two warm runners")
    deployment.stop()
    assert gw.containers(name) == []
    assert get_deployment(name).status == "stopped"


def test_a_restarted_gateway_removes_containers_of_the_killed_one(gw, server):
    name = server[0].name
    gw.deploy(SERVER_CELL, name, auth="public")
    orphan = gw.only_container(name)
    os.kill(read_json(pid_path(), {})["pid"], signal.SIGKILL)  # its runners (`docker run` clients) die with it
    wait_for(lambda: not runner_processes(state_id()), "the killed gateway's runners to die with it")
    orphan.reload()
    assert orphan.status == "running"  # killing the client does not stop the container

    start_gateway()
    restored = wait_for(
        lambda: [c for c in gw.containers(name) if c.id != orphan.id and c.status == "running"],
        what="the app restored in a new container",
    )
    assert orphan.id not in [c.id for c in gw.containers(name)]
    assert len(restored) == 1
    wait_for(lambda: gw.info(name)["status"] == "ready", what="restored app ready")
    assert fal_notebook.connect(f"local/{name}").run({"text": "back again"})["words"] == 2


def test_build_failure_names_the_step_and_its_output(gw):
    name = gw.name("dk-broken")
    with pytest.raises(DeployError) as failed:
        gw.deploy(SERVER_CELL, name, requirements=["fal-notebook-no-such-package==0.0.1"])
    message = str(failed.value)
    assert "docker build of" in message and "RUN python -m pip install -r requirements.txt" in message
    assert "fal-notebook-no-such-package" in message
    assert gw.containers(name) == []


def test_missing_base_image_is_named_with_what_to_do(gw):
    name = gw.name("dk-gpu")
    with pytest.raises(DeployError) as failed:
        gw.deploy(SERVER_CELL, name, base_image="fal-notebook-test/no-such-base:0")
    message = str(failed.value)
    assert "fal-notebook-test/no-such-base:0" in message
    assert "--base-image" in message and "FAL_NOTEBOOK_BASE_IMAGE" in message


def test_no_engine_is_a_deploy_error_that_says_what_to_do(gw, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{gw.home}/no-docker.sock")
    project = gw.capture(SERVER_CELL, gw.name("dk-no-engine"))
    with pytest.raises(DeployError, match="No Docker engine answers") as failed:
        deploy(project, target="docker", progress=lambda line: None)
    assert "Start the Docker engine" in str(failed.value) and "DOCKER_HOST" in str(failed.value)


def test_stopping_the_gateway_removes_every_container(gw, server, fal_app):
    assert gw.containers()  # the apps above still run
    stop_gateway()
    assert gw.containers() == []
