"""tests/servers/servers.ipynb, run as a user runs it: twelve kinds of servers and apps deployed first
try, called with fal_client, the CLI and the Playground, three on Docker; its table is README's."""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from fal_notebook import connect, deploy
from fal_notebook.backends import get_deployment, list_apps
from fal_notebook.errors import DeployError
from fal_notebook.gateway import stop_gateway
from fal_notebook.generate.project import reconfigure
from tests.gateway_helpers import free_port

HERE = Path(__file__).parent
README = HERE.parents[1] / "README.md"

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The notebook executed in a folder of its own, with a gateway of its own (left running for the
    tests below, stopped at the end)."""
    folder = tmp_path_factory.mktemp("servers")
    for name in ("servers.ipynb", "patterns.py", "main.py", "gradio_like.py"):
        shutil.copy(HERE / name, folder / name)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FAL_NOTEBOOK_HOME", str(folder / "home"))
        mp.setenv("FAL_NOTEBOOK_GATEWAY_PORT", str(free_port()))
        mp.setenv("FAL_NOTEBOOK_GATEWAY_TLS_PORT", str(free_port()))
        mp.chdir(folder)
        nb = nbformat.read(folder / "servers.ipynb", as_version=4)
        try:
            NotebookClient(
                nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
            ).execute()
            yield folder, nb, json.loads((folder / "servers-table.json").read_text())
        finally:
            stop_gateway()


def test_the_notebook_runs_without_an_error(run):
    _, nb, _ = run
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, errors[0]["evalue"] if errors else ""


def test_every_pattern_works_or_says_what_to_use(run):
    _, _, table = run
    failed = [
        f"{p} / {c}: {v}" for p, row in table["rows"].items() for c, v in row.items() if not v.startswith(("✓", "—"))
    ]
    assert not failed, "\n".join(failed)


def test_the_readme_shows_the_notebooks_table(run):
    _, _, table = run
    assert table["markdown"] in README.read_text(), "README.md's table is not the notebook's: copy it from the run"


def test_a_failed_docker_deploy_leaves_the_local_revision_serving_and_says_so(run):
    folder, _, _ = run
    reconfigure(folder / "fal_apps" / "get-only", {"base_image": "fal-notebook-test/missing-base:1"})
    with pytest.raises(DeployError) as info:
        deploy("get-only", target="docker", progress=lambda _line: None)
    assert "(local) keeps serving" in str(info.value)
    row = {r["name"]: r for r in list_apps()}["get-only"]
    assert (row["target"], row["status"]) == ("local", "ready") and "missing-base" in row["error"]
    assert connect("local/get-only").request("GET", "/greet", params={"name": "Ada"}).json() == {"hello": "Ada"}


def test_gradios_fixed_port_taken_by_another_process_is_named_not_served(run):
    get_deployment("gradio-demo").stop()
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the runner's closed connections linger
        other.bind(("127.0.0.1", 7860))
        other.listen()
        other.settimeout(0.1)
        with pytest.raises(DeployError, match=rf"Port 7860.*is taken by process {os.getpid()}"):
            deploy("gradio-demo", progress=lambda _line: None)
        with pytest.raises(TimeoutError):
            other.accept()  # no request of the app's reached it
