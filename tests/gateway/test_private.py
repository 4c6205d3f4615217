"""Private means private (issue 12, item 1): after deploying to every local target, nothing of
fal-notebook listens beyond loopback, and runners get a clean environment (what programs need,
the app's declared secrets and the user's fal key), not the gateway's whole environment."""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
from pathlib import Path

import httpx
import pytest

import fal_notebook
from fal_notebook.gateway.paths import pid_path
from fal_notebook.state import read_json
from tests.polling import wait_for

CANARY = "FAL_NOTEBOOK_TEST_CANARY"
FAKE_KEY = "fake-key-id-0123:fake-key-secret-4567"

APP = """
import os

import fal


class EnvApp(fal.App):
    @fal.endpoint("/")
    def run(self) -> dict:
        return {"env": sorted(os.environ)}
"""
SERVER = """
import os

from fastapi import FastAPI

app = FastAPI()


@app.post("/")
def run() -> dict:
    return {"env": sorted(os.environ)}
"""
CMD = "python -m http.server $PORT"


@pytest.fixture(scope="module")
def environment():
    """What the user's kernel and so the gateway have: a canary variable, a fal key, a secret."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CANARY, "must-not-reach-runners")
        mp.setenv("FAL_KEY", FAKE_KEY)
        mp.setenv("MY_SERVICE_TOKEN", "declared-secret-value")
        yield


@pytest.fixture(scope="module")
def private_gateway(environment, gateway):
    return gateway


def listening() -> list[tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int, int]]:
    """(address, port, socket inode) of every listening TCP socket of this machine (Linux)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            if fields[3] != "0A":
                continue
            address, port = fields[1].split(":")
            raw = bytes.fromhex(address)
            ip = ipaddress.ip_address(b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4)))
            found.append((ip, int(port, 16), int(fields[9])))
    return found


def owners() -> dict[int, int]:
    """socket inode → pid of the process holding it."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    found[int(target[8:-1])] = int(proc.name)
        except OSError:
            continue
    return found


def descendants(root: int) -> set[int]:
    children: dict[int, set[int]] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, set()).add(int(proc.name))
    found, todo = {root}, [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def is_loopback(ip) -> bool:
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


def beyond_loopback(gateway_pid: int, runner_ports: set[int]) -> list[str]:
    """Listening sockets of the gateway's process tree, or on a runner's port, not on loopback."""
    ours = descendants(gateway_pid)
    holders = owners()
    return [
        f"{ip}:{port} (pid {holders.get(inode)})"
        for ip, port, inode in listening()
        if (holders.get(inode) in ours or port in runner_ports) and not is_loopback(ip)
    ]


def runner_ports(gateway, names: list[str]) -> set[int]:
    return {r["port"] for name in names for r in gateway.info(name)["runners"] if r.get("port")}


def env_of(deployment) -> list[str]:
    client = fal_notebook.connect(deployment.endpoint_id)
    return client.run({})["env"]


def network_address() -> str | None:
    """The machine's address on its network (the one a neighbour would use), if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # a documentation address: nothing is sent
        except OSError:
            return None
        address = s.getsockname()[0]
    return None if ipaddress.ip_address(address).is_loopback else address


@pytest.mark.docker
def test_every_local_target_listens_on_loopback_only(private_gateway, docker_client):
    gateway = private_gateway
    deployed = [
        gateway.deploy(APP, "private-app", auth="private"),
        gateway.deploy(SERVER, "private-server", auth="private"),
        gateway.deploy("", "private-cmd", mode="server", cmd=CMD, auth="private"),
    ]
    docker_project = fal_notebook.capture("", "private-docker", out_dir=gateway.apps_dir, mode="server", cmd=CMD)
    deployed.append(fal_notebook.deploy(docker_project, target="docker", progress=lambda line: None))
    try:
        ports = runner_ports(gateway, [d.name for d in deployed])
        assert len(ports) >= len(deployed)
        gateway_pid = read_json(pid_path(), {})["pid"]
        assert beyond_loopback(gateway_pid, ports) == []
        address = network_address()
        for port in ports if address else ():  # nothing answers on the machine's network address
            with pytest.raises(httpx.TransportError):
                httpx.get(f"http://{address}:{port}/", timeout=2.0)
    finally:
        for deployment in deployed:
            deployment.stop()


def test_runners_get_a_clean_environment(private_gateway):
    gateway = private_gateway
    for source, name, options in [
        (APP, "env-app", {}),
        (SERVER, "env-server", {"secrets": ["MY_SERVICE_TOKEN"]}),
    ]:
        deployment = gateway.deploy(source, name, auth="private", **options)
        try:
            env = env_of(deployment)
        finally:
            deployment.stop()
        assert CANARY not in env
        assert "FAL_KEY" in env  # the user has a fal key: fal's toolkit in the runner can upload outputs
        assert ("MY_SERVICE_TOKEN" in env) == ("secrets" in options)
        assert {"PATH", "HOME", "PORT", "HOST"} <= set(env)


def test_the_gateway_runs_without_the_kernels_secrets(private_gateway):
    """The gateway process gets what its runners may inherit and its own settings: not the kernel's
    other variables (a canary), its fal key or an undeclared secret (issue 20, item 7)."""
    environ = Path(f"/proc/{read_json(pid_path(), {})['pid']}/environ").read_bytes().split(b"\0")
    names = {entry.partition(b"=")[0].decode() for entry in environ if entry}
    assert {"FAL_NOTEBOOK_HOME", "PATH", "HOME"} <= names
    assert not names & {CANARY, "FAL_KEY", "MY_SERVICE_TOKEN"}


REBINDING = """
import http.server
import os
import threading
import time


class Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


port = int(os.environ["PORT"])
server = http.server.HTTPServer(("127.0.0.1", port), Answer)
threading.Thread(target=server.serve_forever, daemon=True).start()
time.sleep(3)  # past the start's check
server.shutdown()
server.server_close()
http.server.HTTPServer(("0.0.0.0", port), Answer).serve_forever()
"""


def test_a_server_that_rebinds_beyond_loopback_after_its_start_is_stopped(private_gateway, tmp_path):
    """`python -I` skips the runners' loopback guard (sitecustomize); the server binds every interface
    three seconds after it started: the gateway finds it within a second and stops it (issue 20, item 9)."""
    gateway = private_gateway
    (tmp_path / "rebinding.py").write_text(REBINDING)
    cmd = f"{sys.executable} -I {tmp_path / 'rebinding.py'}  # reads $PORT"
    deployment = gateway.deploy("", "rebinding", mode="server", cmd=cmd, port=8000, auth="private")
    try:
        found = wait_for(
            lambda: next((e for e in gateway.info("rebinding")["events"] if "It is stopped." in e["message"]), None),
            "the rebound runner stopped",
            timeout=30,
        )
        assert "listens on 0.0.0.0:" in found["message"]
    finally:
        deployment.stop()
    assert beyond_loopback(read_json(pid_path(), {})["pid"], set()) == []
