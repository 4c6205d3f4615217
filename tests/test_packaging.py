"""The wheel a user installs carries the prebuilt JupyterLab extension: installed in a fresh virtualenv with
no Node on the PATH, JupyterLab lists the extension enabled and OK, and the server extension loads."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.packaging

REPO = Path(__file__).resolve().parents[1]
BUILT = REPO / "fal_notebook" / "labextension" / "static" / "style.js"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def run(args: list[str], **kwargs) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, **kwargs)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return ANSI.sub("", done.stdout + done.stderr)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory, unavailable) -> Path:
    if not BUILT.is_file():
        unavailable("The JupyterLab extension is not built (fal_notebook/labextension)")
    out = tmp_path_factory.mktemp("wheel")
    run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-q", "-w", str(out), str(REPO)])
    (built,) = out.glob("fal_notebook-*.whl")
    return built


def test_the_wheel_installs_the_extension_without_node(wheel, tmp_path, unavailable):
    uv = shutil.which("uv", path=str(Path(sys.executable).parent))
    if uv is None:
        unavailable("uv is not installed in this Python environment")
    venv = tmp_path / "fresh"
    run([uv, "venv", "-q", str(venv), "--python", sys.executable])
    python = venv / "bin" / "python"
    run([uv, "pip", "install", "-q", "--python", str(python), str(wheel), "jupyterlab>=4.6,<5"])

    path = str(venv / "bin")  # nothing else: no node, npm or jlpm
    assert shutil.which("node", path=path) is None
    env = {"PATH": path, "HOME": str(tmp_path / "home"), "JUPYTER_CONFIG_DIR": str(tmp_path / "config")}
    listed = run([str(venv / "bin" / "jupyter"), "labextension", "list"], env=env)
    assert re.search(r"fal-notebook v\S+ enabled OK \(python, fal-notebook\)", listed), listed
    assert str(venv / "share" / "jupyter" / "labextensions") in listed
    server = run([str(venv / "bin" / "jupyter"), "server", "extension", "list"], env=env)
    assert re.search(r"fal_notebook enabled", server) and re.search(r"fal_notebook \S+ OK", server), server
    assert not os.path.exists(venv / "share" / "jupyter" / "labextensions" / "fal-notebook" / "node_modules")
