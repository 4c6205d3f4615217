"""tests/servers/servers.ipynb, run as a user runs it: twelve kinds of servers and apps deployed first
try, called with fal_client, the CLI and the Playground, three on Docker; its table is README's."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from fal_notebook.gateway import stop_gateway
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
