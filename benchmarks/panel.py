"""The JupyterLab panel with 50 apps, side by side with JupyterLab's own baselines (ratios; absolute times
vary by machine and load):

(a) First render: open the fal panel until its 50 app rows show the live server state (its
    ``aria-busy`` cleared), vs open JupyterLab's file browser on a folder of 50 files until its 50
    rows show. Both ask the server and render a list; each run starts from a reloaded page.
(b) ``GET <base_url>/fal-notebook/apps`` with 50 apps (through the running Jupyter server) vs
    ``fal-notebook apps --json`` in a terminal (a new process: what a user would otherwise run).

The 50 apps are real captured projects under the server root's ``fal_apps/``; ``--deployed N`` of
them (default 5) run on the local gateway, in the benchmark's own Python environment.

    PYTHONPATH=. python benchmarks/panel.py [--runs 7] [--calls 20] [--deployed 5]

Needs the built labextension (``.ci/provision --tests``), JupyterLab, Playwright and /usr/bin/chromium.
Uses a temporary FAL_NOTEBOOK_HOME, Jupyter state and free ports (removed after, but for a JupyterLab log
worth reading); prints the figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

APPS = 50
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--disable-sync"]
SERVER_CELL = "from fastapi import FastAPI\n\napp = FastAPI()\n\n\n@app.get('/')\ndef hello() -> dict:\n    return {}\n"
#: Resolves when ``count`` elements match ``selector`` (and ``ready()``, if given): a MutationObserver, no polling.
WAIT_FOR = """() => {
  window.falWaitFor = (selector, count, ready = () => true) => new Promise((resolve, reject) => {
    const done = () => document.querySelectorAll(selector).length >= count && ready();
    if (done()) return resolve();
    const observer = new MutationObserver(() => { if (done()) { observer.disconnect(); resolve(); } });
    observer.observe(document.body, {subtree: true, childList: true, attributes: true});
    setTimeout(() => reject(new Error(`${selector}: fewer than ${count} after 60 s`)), 60000);
  });
}"""
PANEL_RENDER = """async (count) => {
  const t0 = performance.now();
  await window.jupyterapp.commands.execute('fal-notebook:open-panel');
  await window.falWaitFor('#fal-notebook-panel [data-fal-app]', count,
    () => document.querySelector('#fal-notebook-panel .fal-Panel-body[aria-busy="false"]') !== null);
  return performance.now() - t0;
}"""
BROWSER_RENDER = """async (count) => {
  const t0 = performance.now();
  await window.jupyterapp.commands.execute('filebrowser:go-to-path', {path: '/files50'});
  await window.falWaitFor('.jp-FileBrowser .jp-DirListing-item', count);
  return performance.now() - t0;
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare(root: Path, deployed: int) -> None:
    """50 captured apps under ``root/fal_apps`` (``deployed`` of them running), 50 files in ``root/files50``."""
    import fal_notebook
    from fal_notebook.backends.local import LocalBackend

    for i in range(APPS):
        project = fal_notebook.capture(SERVER_CELL, f"app-{i:02d}", dir=root / "fal_apps" / f"app-{i:02d}")
        if i < deployed:
            LocalBackend(env="kernel").deploy(project, progress=lambda line: None)
    (root / "files50").mkdir()
    for i in range(APPS):
        (root / "files50" / f"file-{i:02d}.txt").write_text(f"file {i}\n")
    (root / "empty.ipynb").write_text(
        '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'
    )  # a notebook without app cells: all 50 apps are in Deployed / Folders


def start_lab(root: Path, state: Path, env: dict[str, str]) -> tuple[subprocess.Popen, str, str]:
    port, token = free_port(), secrets.token_hex(16)
    settings = state / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    lab_env = {
        **env,
        "JUPYTER_CONFIG_DIR": str(state / "config"),
        "JUPYTER_RUNTIME_DIR": str(state / "runtime"),
        "IPYTHONDIR": str(state / "ipython"),
        "JUPYTERLAB_SETTINGS_DIR": str(state / "settings"),
        "PYTHONFAULTHANDLER": "1",
    }
    log = (state / "jupyterlab.log").open("wb")
    process = subprocess.Popen(
        [
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
        ],
        cwd=root,
        env=lab_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{url}/api/status", params={"token": token}, timeout=2).status_code == 200:
                return process, url, token
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"JupyterLab did not start; its log: {state / 'jupyterlab.log'}")


def first_renders(url: str, token: str, runs: int) -> tuple[list[float], list[float]]:
    """Milliseconds to the 50 rows: the fal panel, and the file browser on 50 files (alternating)."""
    from playwright.sync_api import sync_playwright

    panel, browser = [], []
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = chromium.new_page(viewport={"width": 1400, "height": 1000})
        for run in range(runs + 1):  # the first round warms caches (the page's assets) and is not counted
            for script, times in ((PANEL_RENDER, panel), (BROWSER_RENDER, browser)):
                page.goto(f"{url}/lab/workspaces/bench-{secrets.token_hex(4)}/tree/empty.ipynb?reset&token={token}")
                page.wait_for_function("() => window.jupyterapp?.shell?.currentWidget?.content?.model", timeout=120_000)
                page.locator("#jupyterlab-splash").wait_for(state="detached", timeout=120_000)
                page.evaluate(WAIT_FOR)
                elapsed = page.evaluate(script, APPS)
                if run:
                    times.append(elapsed)
        chromium.close()
    return panel, browser


def list_calls(url: str, token: str, env: dict[str, str], calls: int) -> tuple[list[float], list[float]]:
    """Seconds per listing: ``GET .../fal-notebook/apps`` and ``fal-notebook apps --json`` (alternating)."""
    rest, cli = [], []
    with httpx.Client(base_url=url, headers={"Authorization": f"token {token}"}, timeout=60) as client:
        for call in range(calls + 1):
            start = time.perf_counter()
            response = client.get("/fal-notebook/apps")
            rest_time = time.perf_counter() - start
            assert response.status_code == 200 and len(response.json()) == APPS, response.text[:300]
            start = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-m", "fal_notebook.cli", "apps", "--json"], env=env, capture_output=True, text=True
            )
            cli_time = time.perf_counter() - start
            assert done.returncode == 0, done.stderr
            if call:  # the first round warms both up
                rest.append(rest_time)
                cli.append(cli_time)
    return rest, cli


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="page loads per side for the first render")
    parser.add_argument("--calls", type=int, default=20, help="listings per side")
    parser.add_argument("--deployed", type=int, default=5, help="apps of the 50 running on the local gateway")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="fal-panel-bench-"))
    root, state = work / "root", work / "state"
    root.mkdir()
    state.mkdir()
    env = {
        **os.environ,
        "FAL_NOTEBOOK_HOME": str(state / "fal-notebook"),
        "FAL_NOTEBOOK_GATEWAY_PORT": str(free_port()),
        "FAL_NOTEBOOK_LOCAL_ENV": "kernel",
    }
    os.environ.update({k: env[k] for k in ("FAL_NOTEBOOK_HOME", "FAL_NOTEBOOK_GATEWAY_PORT")})
    from fal_notebook.gateway import stop_gateway

    process, keep = None, False
    try:
        os.chdir(root)
        started = time.perf_counter()
        prepare(root, args.deployed)
        print(f"{APPS} apps captured, {args.deployed} deployed, in {time.perf_counter() - started:.1f} s")
        process, url, token = start_lab(root, state, env)

        rest, cli = list_calls(url, token, env, args.calls)
        rest_ms, cli_ms = statistics.median(rest) * 1000, statistics.median(cli) * 1000
        print(f"\n(b) list {APPS} apps, median of {args.calls}:")
        print(f"    GET fal-notebook/apps        {rest_ms:8.1f} ms")
        print(f"    fal-notebook apps --json     {cli_ms:8.1f} ms   (a new process each time)")
        print(f"    ratio GET / CLI              {rest_ms / cli_ms:8.2f}")

        panel, browser = first_renders(url, token, args.runs)
        panel_ms, browser_ms = statistics.median(panel), statistics.median(browser)
        print(f"\n(a) first render of {APPS} rows, median of {args.runs} page loads:")
        print(f"    fal panel (live state)       {panel_ms:8.1f} ms   {sorted(round(t) for t in panel)}")
        print(f"    file browser, 50 files       {browser_ms:8.1f} ms   {sorted(round(t) for t in browser)}")
        print(f"    ratio panel / file browser   {panel_ms / browser_ms:8.2f}")
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                print(f"JupyterLab did not stop within 60 s (its log: {state / 'jupyterlab.log'}); killing it")
                process.kill()
                keep = True
        stop_gateway()
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
