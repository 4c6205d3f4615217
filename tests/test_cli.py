"""The ``fal-notebook`` command end to end: export, deploy, apps, call, logs, stop, gateway."""

import json
import os
import subprocess
import sys

import nbformat

from tests.gateway_helpers import free_port

SERVER = """%%fal_app echo-server --port 9000 --auth public --max-concurrency 1
from fastapi import FastAPI

app = FastAPI()


@app.post("/")
def echo(body: dict):
    print("echoing", body)
    return {"echo": body}
"""


def cli(*args, env, check=True):
    done = subprocess.run(
        [sys.executable, "-m", "fal_notebook.cli", *args], capture_output=True, text=True, timeout=300, env=env
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


def test_cli_from_notebook_to_call_and_back(tmp_path):
    env = {
        **os.environ,
        "FAL_NOTEBOOK_HOME": str(tmp_path / "home"),
        "FAL_NOTEBOOK_GATEWAY_PORT": str(free_port()),
        "FAL_NOTEBOOK_GATEWAY_TLS_PORT": str(free_port()),
    }
    env.pop("FAL_NOTEBOOK_LOCAL_ENV", None)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(SERVER)]
    nbformat.write(nb, tmp_path / "demo.ipynb")
    try:
        assert "not running" in cli("gateway", "status", env=env).stdout
        cli("export", str(tmp_path / "demo.ipynb"), "--out", str(tmp_path / "apps"), env=env)
        deployed = json.loads(cli("deploy", "echo-server", "--env", "kernel", "--json", env=env).stdout)
        assert deployed["status"] == "ready" and deployed["endpoint_id"] == "local/echo-server"
        assert {"name", "target", "url", "queue_url"} <= set(deployed)
        apps = json.loads(cli("apps", "--json", env=env).stdout)
        assert [(a["name"], a["status"], a["target"]) for a in apps] == [("echo-server", "ready", "local")]
        called = cli("call", "local/echo-server", "--input", '{"n": 1}', env=env)
        assert json.loads(called.stdout) == {"echo": {"n": 1}}
        queued = cli("call", "local/echo-server", "--input", '{"n": 2}', "--queue", env=env)
        assert json.loads(queued.stdout) == {"echo": {"n": 2}} and "request " in queued.stderr
        assert "echoing {'n': 1}" in cli("logs", "echo-server", env=env).stdout
        status = json.loads(cli("gateway", "status", "--json", env=env).stdout)
        assert status["running"] and [(a["name"], a["env"]) for a in status["apps"]] == [("echo-server", "kernel")]
        assert "stopped" in cli("stop", "echo-server", env=env).stdout
        bad = cli("call", "local/echo-server", "--input", "{not json", env=env, check=False)
        assert bad.returncode == 1 and "--input is not valid JSON" in bad.stderr
        missing = cli("deploy", "nope", env=env, check=False)
        assert missing.returncode == 1 and "No captured app or project folder named 'nope'" in missing.stderr
    finally:
        cli("gateway", "stop", env=env)
    assert "not running" in cli("gateway", "status", env=env).stdout
