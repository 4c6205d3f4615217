"""Local runners kept from the gateway's secrets (issue 20, item 7): in a bubblewrap sandbox the
runner sees FAL_NOTEBOOK_HOME empty but for its own snapshot and environment, only its own
processes, GPU device nodes, and the binds it is given (a private /data); where bubblewrap is
missing, the deploy says the runners are not sandboxed."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from fal_notebook.backends.local import LocalBackend
from fal_notebook.gateway import start_gateway, stop_gateway
from fal_notebook.gateway.paths import pid_path
from fal_notebook.gateway.prepare import hidden_folders
from fal_notebook.gateway.sandbox import Bind, Sandbox, detect
from fal_notebook.state import read_json
from tests.gateway_helpers import LocalGateway, free_port

#: What bubblewrap's own /dev holds; any other device node passes only when it is asked for.
BWRAP_DEV = {"null", "zero", "full", "random", "urandom", "tty", "console", "ptmx", "pts", "shm", "core", "fd"}


@pytest.fixture(scope="module")
def sandbox(unavailable) -> Sandbox:
    found = detect()
    if found.bwrap is None:
        unavailable(f"No sandbox on this machine: {found.reason}")
    return found


def run_inside(sandbox: Sandbox, script: str, **options) -> dict:
    """Run a Python ``script`` (which prints one JSON line) in the sandbox."""
    argv = [*sandbox.command(cwd=Path("/"), **options), sys.executable, "-c", script]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


LOOK = """
import json, os
def read(path):
    try:
        return open(path).read()
    except OSError as exc:
        return type(exc).__name__
def write(path):
    try:
        open(path, "w").write("x")
        return "written"
    except OSError as exc:
        return type(exc).__name__
print(json.dumps({
    "home": sorted(os.listdir(HOME)),
    "key": read(HOME + "/gateway/key"),
    "env": read(HOME + "/gateway/envs/e1/bin/python"),
    "env_write": write(HOME + "/gateway/envs/e1/new"),
    "snapshot_write": write(HOME + "/gateway/apps/web/rev-1/out.txt"),
    "data": write("/data/out.txt"),
    "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
}))
"""


def test_the_sandbox_hides_the_state_folder_and_binds_back_what_a_runner_needs(sandbox, tmp_path):
    home = tmp_path / "home"
    (home / "gateway" / "envs" / "e1" / "bin").mkdir(parents=True)
    (home / "gateway" / "envs" / "e1" / "bin" / "python").write_text("the environment")
    (home / "gateway" / "apps" / "web" / "rev-1").mkdir(parents=True)
    (home / "gateway" / "key").write_text("id:secret")
    data = tmp_path / "data"
    data.mkdir()
    seen = run_inside(
        sandbox,
        LOOK.replace("HOME", repr(str(home))),
        hidden=[home],
        readable=[home / "gateway" / "envs" / "e1"],
        writable=[home / "gateway" / "apps" / "web" / "rev-1"],
        binds=[Bind(data, "/data")],
    )
    assert seen["home"] == ["gateway"] and seen["key"] == "FileNotFoundError"
    assert seen["env"] == "the environment" and seen["env_write"] == "OSError"  # read-only
    assert seen["snapshot_write"] == "written" and seen["data"] == "written"
    assert (home / "gateway" / "apps" / "web" / "rev-1" / "out.txt").read_text() == "x"
    assert (data / "out.txt").read_text() == "x"
    assert os.getpid() not in seen["pids"] and len(seen["pids"]) <= 3  # its own processes only
    assert not Path("/data/out.txt").exists()  # the machine's / is not written to


@pytest.mark.parametrize("where", ["~/.fal", "FAL_HOME_DIR"])
def test_a_runner_cannot_read_the_users_fal_login(sandbox, tmp_path, monkeypatch, where):
    """fal's own folder (the user's login and config) is empty in a runner's sandbox: by default
    ``~/.fal``, or where ``FAL_HOME_DIR`` puts it."""
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    fal_home = tmp_path / "user" / ".fal"
    if where == "FAL_HOME_DIR":
        fal_home = tmp_path / "elsewhere"
        monkeypatch.setenv("FAL_HOME_DIR", str(fal_home))
    fal_home.mkdir(parents=True)
    (fal_home / "auth0_token").write_text("the user's fal login")
    script = f"import json, os; print(json.dumps(os.listdir({str(fal_home)!r})))"
    assert run_inside(sandbox, script, hidden=hidden_folders()) == []
    assert (fal_home / "auth0_token").read_text() == "the user's fal login"  # untouched outside


def test_device_nodes_pass_through_when_asked_for(sandbox):
    """GPU nodes (/dev/nvidia*, /dev/dri) pass the same way: shown with a node this machine has."""
    nodes = sorted(
        str(p)
        for p in Path("/dev").iterdir()
        if p.name not in BWRAP_DEV and p.is_char_device() and os.access(p, os.R_OK)
    )
    if not nodes:
        pytest.skip("no device node to pass through on this machine")
    script = f"import json, os, stat; print(json.dumps(stat.S_ISCHR(os.stat({nodes[0]!r}).st_mode)))"
    argv = [*sandbox.command(cwd=Path("/"), hidden=[], devices=[nodes[0]]), sys.executable, "-c", script]
    assert json.loads(subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout) is True
    argv = [*sandbox.command(cwd=Path("/"), hidden=[], devices=[]), "test", "-e", nodes[0]]
    assert subprocess.run(argv, timeout=60).returncode == 1


def test_without_bubblewrap_runners_are_said_to_be_unconfined(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    detect.cache_clear()
    try:
        found = detect()
    finally:
        monkeypatch.undo()
        detect.cache_clear()
    assert found.bwrap is None and "not installed" in found.reason
    assert found.command(cwd=Path("/"), hidden=[tmp_path]) == []
    assert "not sandboxed" in (found.note or "") and "FAL_NOTEBOOK_HOME" in (found.note or "")


ATTACK = """
import json
import os

import httpx
from fastapi import FastAPI

app = FastAPI()


def attempt(what):
    try:
        return what()
    except Exception as exc:
        return type(exc).__name__


@app.post("/")
def attack(target: dict) -> dict:
    key = attempt(lambda: open(target["key_file"]).read().strip())
    admin = attempt(
        lambda: httpx.get(target["admin"], headers={"Authorization": f"Key {key}"}).status_code
    )
    return {
        "gateway_environ": attempt(lambda: open(f"/proc/{target['gateway_pid']}/environ").read()[:20]),
        "kernel_environ": attempt(lambda: open(f"/proc/{target['kernel_pid']}/environ").read()[:20]),
        "key": key if key in ("FileNotFoundError", "PermissionError") else "read",
        "admin": admin,
        "home": attempt(lambda: sorted(os.listdir(target["home"]))),
        "data": attempt(lambda: open("/data/attacker.txt", "w").write("kept")),
        "data_variable": os.environ["FAL_NOTEBOOK_DATA"],
    }
"""


def test_a_runner_cannot_read_the_gateways_key_state_or_environment(gateway, sandbox):
    """The issue's attack, from app code: /proc/<gateway pid>/environ, the key file, the admin API;
    and the private /data it has instead (issue 17)."""
    deployment = gateway.deploy(ATTACK, "attacker", mode="server", auth="public")
    target = {
        "gateway_pid": read_json(pid_path(), {})["pid"],
        "kernel_pid": os.getpid(),
        "key_file": str(gateway.home / "gateway" / "key"),
        "admin": f"{gateway.base}/_fal_notebook/apps",
        "home": str(gateway.home),
    }
    with gateway.http(key=False) as client:
        seen = client.post("/local/attacker", json=target).json()
    deployment.stop()
    assert seen["gateway_environ"] == "FileNotFoundError" and seen["kernel_environ"] == "FileNotFoundError"
    assert seen["key"] == "FileNotFoundError" and seen["admin"] == 401
    assert seen["home"] == ["gateway"]  # what holds its own snapshot, nothing else
    # The user's /data, as on fal: the literal path deploys and writes into FAL_NOTEBOOK_HOME/data only.
    assert seen["data"] == 4 and seen["data_variable"] == "/data"
    assert (gateway.home / "data" / "attacker.txt").read_text() == "kept"
    assert not Path("/data/attacker.txt").exists()


@pytest.fixture(scope="module")
def unconfined_gateway(tmp_path_factory):
    """A gateway whose PATH has no bwrap: runners unconfined, and said so."""
    home = tmp_path_factory.mktemp("home-unconfined")
    with pytest.MonkeyPatch.context() as mp:
        port = free_port()
        mp.setenv("FAL_NOTEBOOK_HOME", str(home))
        mp.setenv("FAL_NOTEBOOK_GATEWAY_PORT", str(port))
        mp.setenv("FAL_NOTEBOOK_GATEWAY_TLS_PORT", str(free_port()))
        mp.setenv("PATH", str(Path(sys.executable).parent))
        start_gateway()
        try:
            yield LocalGateway(home=home, port=port, apps_dir=tmp_path_factory.mktemp("apps"))
        finally:
            stop_gateway()


def test_a_deploy_says_when_runners_are_not_sandboxed(unconfined_gateway):
    progress: list[str] = []
    project = unconfined_gateway.capture("from fastapi import FastAPI\n\napp = FastAPI()\n", "bare", port=9000)
    LocalBackend(env="kernel").deploy(project, progress=progress.append).stop()
    assert any("Runners are not sandboxed on this machine" in line for line in map(str, progress)), progress
    assert stat.S_IMODE(unconfined_gateway.home.stat().st_mode) == 0o700
