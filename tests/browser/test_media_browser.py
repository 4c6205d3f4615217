"""The Playground of an image and file app in a real browser, with the network cut (media_scenario.py, run
in a network namespace with loopback only): the image the app returned is shown from the gateway's store,
a file picked in the browser is stored in the gateway and read back by the app, and the browser asked
nothing of any host but this machine's."""

from __future__ import annotations

import json
import os
import sys
from importlib.util import find_spec

import pytest

from tests.gateway import offline

from .conftest import CHROMIUM, REPO
from .media_scenario import UPLOADED

pytestmark = pytest.mark.browser


def test_an_image_shown_and_a_file_uploaded_in_the_playground_with_the_network_cut(tmp_path, artifacts, unavailable):
    if not offline.available():
        unavailable("a network namespace (`unshare -n`, as root)")
    if not CHROMIUM.exists() or find_spec("playwright") is None or find_spec("jupyterlab") is None:
        unavailable("Chromium, Python playwright and JupyterLab are needed")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    done = offline.run(
        [sys.executable, "-m", "tests.browser.media_scenario", str(tmp_path / "work"), str(artifacts)],
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-6000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["no_route"], "the scenario ran with a route off the machine"

    image = seen["image"]  # the PNG the app returned, served by the gateway's store and decoded by the browser
    assert image["src"].startswith("http://127.0.0.1:") and "/files/" in image["src"]
    assert image["size"] == [96, 96]  # the size typed into the form

    assert "picked.txt" in seen["uploaded_note"] and "uploaded" in seen["uploaded_note"]
    assert seen["uploaded_url"].startswith("http://127.0.0.1:") and seen["uploaded_url"].endswith("/picked.txt")
    assert UPLOADED.decode() in seen["read"]  # the app read the stored bytes back

    assert all(origin.startswith("http://127.0.0.1:") for origin in seen["requests"]), seen["requests"]
    for name in ("media-light", "media-dark", "upload-light", "upload-dark"):
        assert (artifacts / f"playground-{name}.png").stat().st_size > 0
