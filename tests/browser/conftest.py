"""A real JupyterLab server and a headless Chromium (Playwright) for the browser tests.

JupyterLab runs from this Python environment on a free port with a random token, in a temporary root
folder, with its own Jupyter, IPython and fal-notebook state; the kernels it starts inherit that state
(``FAL_NOTEBOOK_HOME``, a free ``FAL_NOTEBOOK_GATEWAY_PORT``), so the gateway a notebook starts is
this test's own, and is stopped at the end.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import httpx
import pytest

from fal_notebook.gateway import stop_gateway
from tests.polling import wait_for

from ..gateway_helpers import free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
LAB_START_TIMEOUT = 60.0


@dataclass
class Lab:
    url: str
    token: str
    root: Path
    log: Path

    def workspace_url(self, path: str = "") -> str:
        """A fresh workspace (JupyterLab would otherwise reopen the last one), opening ``path``."""
        tree = f"/tree/{path}" if path else ""
        return f"{self.url}/lab/workspaces/test-{secrets.token_hex(4)}{tree}?reset&token={self.token}"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, unavailable) -> Iterator[Lab]:
    if find_spec("jupyterlab") is None:
        unavailable("JupyterLab is not installed in this Python environment")
    state = tmp_path_factory.mktemp("lab-state")
    root = tmp_path_factory.mktemp("lab-root")
    port, token = free_port(), secrets.token_hex(16)
    fal_env = {
        "FAL_NOTEBOOK_HOME": str(state / "fal-notebook"),
        "FAL_NOTEBOOK_GATEWAY_PORT": str(free_port()),
        "FAL_NOTEBOOK_GATEWAY_TLS_PORT": str(free_port()),
        "FAL_NOTEBOOK_LOCAL_ENV": "kernel",
        "FAL_NOTEBOOK_GPUS": "0,1",  # two GPUs to hand out (no driver here: names unknown)
    }  # runners in the kernel's environment: no virtualenv to build
    env = {
        **os.environ,
        **fal_env,
        "JUPYTER_CONFIG_DIR": str(state / "config"),
        "JUPYTER_RUNTIME_DIR": str(state / "runtime"),
        "IPYTHONDIR": str(state / "ipython"),
        "JUPYTERLAB_SETTINGS_DIR": str(_settings(state / "settings")),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    for name in ("FAL_KEY", "FAL_KEY_ID", "FAL_KEY_SECRET"):
        env.pop(name, None)
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--allow-root",
        "--ServerApp.ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.token={token}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.expose_app_in_browser=True",
    ]
    log = state / "jupyterlab.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_server(process, url, token, log)
        yield Lab(url, token, root, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        with pytest.MonkeyPatch.context() as mp:
            for name, value in fal_env.items():
                mp.setenv(name, value)
            stop_gateway()  # the gateway the notebook's kernel started


def _settings(folder: Path) -> Path:
    """JupyterLab user settings: no "notified about official Jupyter news?" toast over the page."""
    notification = folder / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True)
    notification.write_text('{"fetchNews": "false"}')
    return folder


def _wait_for_server(process: subprocess.Popen, url: str, token: str, log: Path) -> None:

    def answers() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"JupyterLab exited with code {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            return httpx.get(f"{url}/api/status", params={"token": token}, timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(
        answers,
        "JupyterLab to answer",
        timeout=LAB_START_TIMEOUT,
        interval=0.2,
        details=lambda: log.read_text()[-3000:],
    )


@pytest.fixture(scope="module")
def chromium(unavailable):
    """A headless Chromium (the machine's, never a downloaded one) with a fresh profile."""
    if not CHROMIUM.exists():
        unavailable(f"Chromium is not installed ({CHROMIUM})")
    if find_spec("playwright") is None:
        unavailable("Python playwright is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def artifacts() -> Path:
    """``test-artifacts/`` at the repository's root (git-ignored): screenshots for people to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
