"""The default runner environment: an isolated virtualenv from the project's requirements (uv)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest
from gateway_apps import ENV_PROBE

from fal_notebook.backends.local import LocalBackend
from fal_notebook.errors import DeployError
from fal_notebook.gateway.envs import uv_binary


def test_uv_is_available_to_build_environments():
    assert uv_binary() is not None


def test_isolated_environment_is_built_once_and_cached(gateway):
    started = time.monotonic()
    gateway.deploy(ENV_PROBE, "probe", env="isolated", auth="public")
    first = time.monotonic() - started
    built = "\n".join(gateway.progress)
    assert "with uv" in built and "built in" in built
    with gateway.http() as client:
        prefix = client.post("/local/probe").json()["prefix"]
    assert prefix.startswith(str(gateway.home / "gateway" / "envs"))

    started = time.monotonic()
    gateway.deploy(ENV_PROBE.replace("EnvProbe", "EnvProbeTwo"), "probe-two", env="isolated", auth="public")
    second = time.monotonic() - started
    assert any("Using the cached environment" in line for line in gateway.progress)
    with gateway.http() as client:
        assert client.post("/local/probe-two").json()["prefix"] == prefix
    print(f"\nisolated environment: first deploy {first:.1f} s (build with uv), cached {second:.1f} s")


def test_requirement_missing_from_requirements_txt_fails_the_deploy(gateway):
    project = gateway.capture("import tomlkit\n" + ENV_PROBE.replace("EnvProbe", "NeedsToml"), "needs-toml")
    requirements = project.path / "requirements.txt"
    kept = [line for line in requirements.read_text().splitlines() if "tomlkit" not in line]
    requirements.write_text("".join(line + "\n" for line in kept))
    with pytest.raises(DeployError, match="No module named 'tomlkit'"):
        LocalBackend(env="isolated").deploy(project, progress=lambda line: None)


def test_unsatisfiable_requirement_fails_the_build_with_the_installers_log(gateway):
    with pytest.raises(DeployError, match="Building the environment failed") as info:
        gateway.deploy(ENV_PROBE, "unsatisfiable", env="isolated", requirements=["pydantic==0.0.999999"])
    assert "pydantic" in str(info.value)


OFFLINE_BUILD = """
import asyncio
import sys

from fal_notebook.gateway.envs import EnvBuildError, ensure_environment

try:
    asyncio.run(ensure_environment(sys.executable, ["six==1.16.0"], lambda line: None))
except EnvBuildError as exc:
    print(exc)
"""


def test_a_build_without_network_says_to_deploy_in_the_kernels_environment(tmp_path, unavailable):
    """The network cut (a network namespace of its own): the installer cannot reach the package index."""
    if shutil.which("unshare") is None:
        unavailable("unshare (util-linux) is not installed")
    env = {**os.environ, "FAL_NOTEBOOK_HOME": str(tmp_path / "home"), "UV_CACHE_DIR": str(tmp_path / "uv-cache")}
    done = subprocess.run(
        ["unshare", "--net", sys.executable, "-c", OFFLINE_BUILD], capture_output=True, text=True, env=env, timeout=300
    )
    assert "The package index cannot be reached (no network?): deploy with --env kernel" in done.stdout, (
        done.stdout + done.stderr
    )
