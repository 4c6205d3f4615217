"""The example notebooks run from top to bottom in a real kernel (nbclient)."""

import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from fal_notebook.gateway import stop_gateway
from tests.gateway_helpers import free_port

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    monkeypatch.setenv("FAL_NOTEBOOK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FAL_NOTEBOOK_GATEWAY_PORT", str(free_port()))
    monkeypatch.setenv("FAL_NOTEBOOK_GATEWAY_TLS_PORT", str(free_port()))
    shutil.copy(path, tmp_path / path.name)
    nb = nbformat.read(tmp_path / path.name, as_version=4)
    try:
        NotebookClient(
            nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
        ).execute()
    finally:
        stop_gateway()  # the gateway outlives the kernel by design; this test's one is stopped here
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    assert (tmp_path / "fal_apps").is_dir()
