"""fal's real workloads on Docker runners, with the runners cut off the network: the MEDIA app
(tests/gateway/gateway_apps.py) in a container stores the files it returns through the store's socket
(fal's node-local uploader), reads files uploaded by fal_client, fal-js and our client, and finds on /data
after a redeploy the weights it wrote in setup() (docs/fal-conformance.md, "Storage", "/data").

The guard: the gateway's runners join a Docker network of this module's own
(``FAL_NOTEBOOK_DOCKER_NETWORK``) whose forwarded traffic the machine drops (a rule in Docker's
``DOCKER-USER`` chain, put before any container starts), so a container reaches nothing but this
machine: the gateway reaches it on its published port (host traffic, not forwarded), the store through
the mounted socket. The test proves it from inside the runner's container (no route out, no name
resolved). The callers (fal_client, fal-js, our client) run on the host beside the gateway; the same
callers run with the network cut in tests/gateway/test_workloads.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import fal_notebook
from fal_notebook.gateway import client_environment, stop_gateway
from fal_notebook.gateway.containers import NETWORK_VARIABLE
from tests.backends.test_docker_backend import DockerGateway, docker_gateway
from tests.gateway.gateway_apps import MEDIA

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
FAL_JS = REPO / ".ci" / "cache" / "fal-js" / "node_modules" / "@fal-ai" / "client"
#: Run inside a runner's container: whether it reaches anything beyond this machine.
PROBE = """
import json, socket
seen = {}
try:
    socket.create_connection(("1.1.1.1", 443), timeout=3).close()
    seen["route"] = True
except OSError as exc:
    seen["route"] = False
try:
    socket.getaddrinfo("fal.ai", 443)
    seen["dns"] = True
except OSError:
    seen["dns"] = False
print(json.dumps(seen))
"""


@pytest.fixture(scope="module")
def cut_network(docker_client, unavailable) -> Iterator[str]:
    """A bridge network whose forwarded traffic is dropped: its containers reach only this machine."""
    if os.geteuid() != 0 or shutil.which("iptables") is None:
        unavailable("iptables, as root (the guard that keeps Docker runners off the network)")
    suffix = uuid.uuid4().hex[:6]
    bridge = f"fnbcut{suffix}"  # an interface name: at most 15 characters
    network = docker_client.networks.create(
        f"fal-notebook-cut-{suffix}", driver="bridge", options={"com.docker.network.bridge.name": bridge}
    )
    rule = ["DOCKER-USER", "-i", bridge, "-j", "DROP"]
    try:
        subprocess.run(["iptables", "-I", *rule], check=True, capture_output=True)
        yield network.name
    finally:
        subprocess.run(["iptables", "-D", *rule], capture_output=True)
        network.remove()


@pytest.fixture(scope="module")
def gw(docker_client, cut_network, tmp_path_factory) -> Iterator[DockerGateway]:
    with docker_gateway(docker_client, tmp_path_factory, **{NETWORK_VARIABLE: cut_network}) as handle:
        yield handle


def test_a_media_app_in_a_container_cut_off_the_network(gw, cut_network, unavailable):
    if shutil.which("node") is None or not FAL_JS.is_dir():
        unavailable("Node or @fal-ai/client (.ci/cache/fal-js) is not installed")
    name = gw.name("dk-media")
    gw.deploy(MEDIA + "\nVERSION = 1\n", name, auth="public")
    container = gw.only_container(name)
    container.reload()
    assert list(container.attrs["NetworkSettings"]["Networks"]) == [cut_network]
    probe = container.exec_run(["python", "-c", PROBE])
    assert json.loads(probe.output.decode().strip().splitlines()[-1]) == {"route": False, "dns": False}

    base = f"http://127.0.0.1:{gw.port}/local/{name}"
    env = {"PATH": os.environ["PATH"], **client_environment()}
    with httpx.Client(timeout=60) as client:
        assert client.post(f"{base}/weights", json={}).json() == {
            "found": False,
            "path": "/data/.cache/huggingface/weights.bin",
            "key_id": "runners",
        }
        image = client.post(base, json={"size": 16}).json()["image"]
        got = client.get(image["url"])
        assert got.headers["content-type"] == "image/png" and got.content.startswith(b"\x89PNG")
        note = client.post(f"{base}/file", json={"text": "from a container"}).json()["file"]
        assert client.get(note["url"]).text == "from a container"

        script = "import fal_client; print(fal_client.upload(b'docker reads me', 'text/plain', 'x.txt'))"
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        read = client.post(f"{base}/read", json={"file": {"url": done.stdout.strip()}}).json()
        assert read == {"size": 15, "text": "docker reads me"}

    ours = fal_notebook.connect(f"local/{name}")
    url = ours.upload(b"our client's bytes", "text/plain", file_name="ours.txt")
    assert ours.run({"file": url}, "/read") == {"size": 18, "text": "our client's bytes"}

    js = subprocess.run(
        ["node", str(REPO / "tests" / "gateway" / "fal_js_media.js"), str(FAL_JS), f"local/{name}"],
        env={**env, "NODE_EXTRA_CA_CERTS": env["SSL_CERT_FILE"]},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert js.returncode == 0, js.stderr
    seen = json.loads(js.stdout.strip().splitlines()[-1])
    assert seen["image"]["type"] == "image/png" and seen["image"]["png"] and seen["file"]["text"] == "from fal-js"
    assert seen["stored"]["read"]["text"] == "stored by fal.storage" and seen["blob"]["text"] == "a Blob in the input"

    gw.deploy(MEDIA + "\nVERSION = 2\n", name, auth="public")  # new containers, the same volume
    with httpx.Client(timeout=60) as client:
        assert client.post(f"{base}/weights", json={}).json()["found"]


def test_a_network_the_engine_lacks_is_refused_before_the_build(gw, monkeypatch):
    from fal_notebook.backends import deploy
    from fal_notebook.errors import DeployError

    stop_gateway()  # the gateway reads the setting when it starts
    monkeypatch.setenv(NETWORK_VARIABLE, "no-such-network-here")
    name = gw.name("dk-no-network")
    with pytest.raises(DeployError, match="names no network of the Docker engine") as refused:
        deploy(gw.capture(MEDIA, name), target="docker", progress=lambda line: None)
    assert "docker network create no-such-network-here" in str(refused.value) and not gw.images(name)
    stop_gateway()
