"""Checks run before anything is uploaded to fal, each failing with a message that says what to do.

Each check runs what fal would run, in a separate interpreter (the kernel's Python, cwd = the
project folder), so the kernel's own state and working directory are never touched.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

from ..config import kernel_python_version
from ..credentials import FalCredentials, logged_in_as_user, not_logged_in_message, user_credentials
from ..environments import READY_MARKER, env_python, environment_key, runner_requirements
from ..errors import ConfigError, DeployError
from ..fal_sdk import MISSING_EXIT, VALIDATE_PROGRAM, missing_internal, missing_internal_error
from ..gateway.paths import envs_dir
from ..generate.project import PYPROJECT, AppProject
from ..packages import without_fal
from ..secrets import redact

CHECK_TIMEOUT = 180
IMPORT_PROGRAM = "import importlib, sys; importlib.import_module(sys.argv[1])"
#: fal builds Linux x86-64 environments.
FAL_PLATFORM = "x86_64-manylinux_2_28"
_IMAGE_PYTHON = re.compile(r"(?<![\d.])3\.(\d{1,2})(?!\d)")


def _python(program: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            [sys.executable, "-c", program, *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=CHECK_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise DeployError(
            f"Checking {cwd} took longer than {CHECK_TIMEOUT} s (something at import time waits or loops); "
            "nothing was deployed. Move slow work into setup() or the server's start-up."
        ) from None


def _tail(text: str, n: int = 12, width: int = 300) -> str:
    lines = [line for line in redact(text).splitlines() if line.strip()][-n:]
    return "\n".join("    " + (line if len(line) <= width else line[: width - 1] + "…") for line in lines)


def check_credentials() -> FalCredentials | None:
    """The key to deploy with; None when fal will use a ``fal auth login`` login instead."""
    credentials = user_credentials()
    if credentials is None and not logged_in_as_user():
        raise DeployError(not_logged_in_message())
    return credentials


def check_pyproject(project: AppProject) -> None:
    """``pyproject.toml`` passes fal's own validator."""
    done = _python(VALIDATE_PROGRAM, project.name, cwd=project.path)
    if done.returncode == MISSING_EXIT and (internal := missing_internal(done.stderr)):
        raise missing_internal_error(internal)
    if done.returncode != 0:
        raise ConfigError(
            f"fal does not accept {project.path / PYPROJECT}: {_tail(done.stderr, 3).strip()}. Change the "
            "option in the cell (or fix the file) and capture again; nothing was deployed."
        )


def image_python_version(dockerfile: str) -> str | None:
    """The Python ``major.minor`` named in the tag of the Dockerfile's first ``FROM`` image."""
    for line in dockerfile.splitlines():
        words = [w for w in line.split() if not w.startswith("--")]
        if len(words) >= 2 and words[0].upper() == "FROM":
            image = words[1]
            tag = image.rpartition(":")[2] if ":" in image.rpartition("/")[2] else ""
            match = _IMAGE_PYTHON.search(tag)
            return f"3.{match.group(1)}" if match else None
    return None


def check_python_versions(project: AppProject, kernel: str | None = None) -> None:
    """The kernel's Python minor version equals the app's ``python_version`` and the base image's."""
    kernel = kernel or kernel_python_version()
    table = tomllib.loads((project.path / PYPROJECT).read_text())
    app = table.get("tool", {}).get("fal", {}).get("apps", {}).get(project.name, {}).get("python_version")
    dockerfile = project.path / "Dockerfile"
    image = image_python_version(dockerfile.read_text()) if dockerfile.is_file() else None
    found = {
        f"the app's python_version in {PYPROJECT}": app,
        "the Dockerfile's base image (--base-image / FAL_NOTEBOOK_BASE_IMAGE)": image,
    }
    wrong = [f"{where} is {version}" for where, version in found.items() if version and version != kernel]
    if wrong:
        raise DeployError(
            f"Python version mismatch: this kernel runs Python {kernel}, but {' and '.join(wrong)}. fal "
            "pickles the app with the kernel's Python and needs the same minor version on the runner, and "
            "the pinned requirements were resolved for it. Capture the cell again in this kernel (set "
            f"--python-version {kernel} and a matching --base-image if you gave others), or deploy from a "
            "kernel with the app's Python. Nothing was deployed."
        )


def requirements_for_fal(project: AppProject) -> list[str]:
    """What fal installs: the requirements, less fal itself for a fal.App (the runner brings it)."""
    return without_fal(project.requirements) if project.mode == "app" else list(project.requirements)


def local_environment_python(project: AppProject) -> Path | None:
    """The interpreter of the isolated environment the local target built for this project's
    requirements (same hash), if there is one: having been built, they are installable."""
    folder = envs_dir() / environment_key(sys.executable, runner_requirements(project))
    return env_python(folder) if (folder / READY_MARKER).is_file() else None


def resolver_command(python_version: str) -> tuple[list[str], bool]:
    """A dry-run resolution of requirements read from stdin for fal's platform; uv when present,
    else pip (for the kernel's platform). The flag says whether it is uv."""
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    uv = shutil.which("uv", path=search)
    if uv:
        return [
            uv,
            "pip",
            "compile",
            "-",
            "--python-version",
            python_version,
            "--python-platform",
            FAL_PLATFORM,
            "--quiet",
            "--no-header",
            "-o",
            os.devnull,
        ], True
    return [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--dry-run",
        "--ignore-installed",
        "--quiet",
        "-r",
        "/dev/stdin",
    ], False


def check_requirements(
    project: AppProject, *, progress: Callable[[str], None], python_version: str | None = None
) -> None:
    """The requirements resolve (they can be installed) before fal spends a build on them."""
    requirements = requirements_for_fal(project)
    if not requirements:
        return
    if local_environment_python(project) is not None:
        progress("Requirements: already installed in the local target's environment.")
        return
    python_version = python_version or kernel_python_version()
    command, is_uv = resolver_command(python_version)
    try:
        done = subprocess.run(
            command, input="\n".join(requirements) + "\n", capture_output=True, text=True, timeout=CHECK_TIMEOUT
        )
    except subprocess.TimeoutExpired:
        progress(f"Requirements: not checked (no answer from the package index in {CHECK_TIMEOUT} s).")
        return
    if done.returncode == 0:
        progress(f"Requirements: {len(requirements)} resolve for Python {python_version}.")
        return
    unsatisfiable = (
        "No solution found" in done.stderr
        if is_uv
        else re.search(r"ResolutionImpossible|No matching distribution|Could not find a version", done.stderr)
    )
    if not unsatisfiable:
        progress(f"Requirements: not checked (the package index did not answer):\n{_tail(done.stderr, 3)}")
        return
    raise DeployError(
        f"The requirements of {project.name} cannot be installed, so fal's build would fail; nothing was "
        f"deployed. The resolver said:\n{_tail(done.stderr, 6)}\nFix the version (--requirements "
        '"pkg==x.y" overrides an inferred pin) and run the cell again.'
    )


def check_module_imports(project: AppProject) -> None:
    """The app's module imports in a fresh interpreter, as ``fal deploy`` will load it."""
    module = project.module_file.removesuffix(".py")
    done = _python(IMPORT_PROGRAM, module, cwd=project.path)
    if done.returncode != 0:
        raise DeployError(
            f"{project.path / project.module_file} does not import in a fresh Python, so fal could not "
            f"load it either; nothing was deployed. The error:\n{_tail(done.stderr)}\nEverything the cell "
            "uses must be defined in it, in an earlier cell, or in an installed package: fix the cell "
            "and run it again."
        )
