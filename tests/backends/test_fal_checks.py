"""The checks that run before anything is uploaded to fal."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from fal_notebook import capture
from fal_notebook.backends import fal_checks
from fal_notebook.config import kernel_python_version
from fal_notebook.errors import ConfigError, DeployError

pytestmark = pytest.mark.fal_sdk


def test_the_generated_project_passes_every_check(project, fake_key):
    lines = []
    assert fal_checks.check_credentials().key == fake_key
    fal_checks.check_pyproject(project)
    fal_checks.check_python_versions(project)
    fal_checks.check_requirements(project, progress=lines.append)
    fal_checks.check_module_imports(project)
    assert lines == [f"Requirements: 1 resolve for Python {kernel_python_version()}."]


def test_a_fal_auth_login_counts_as_credentials(project):
    with pytest.raises(DeployError, match="not logged in"):
        fal_checks.check_credentials()
    (Path.home() / ".fal").mkdir()
    (Path.home() / ".fal" / "auth0_token").write_text("refresh-token\n")
    assert fal_checks.check_credentials() is None  # fal uses the login; no key to pass on


def test_fal_validator_rejects_what_fal_would_reject(project):
    toml = project.path / "pyproject.toml"
    toml.write_text(toml.read_text() + "gpu_count = 2\n")
    with pytest.raises(ConfigError, match=r"fal does not accept .*pyproject.toml: .*Found unexpected keys.*gpu_count"):
        fal_checks.check_pyproject(project)


def test_validator_runs_outside_the_kernels_working_directory(project, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no pyproject.toml here: the check must look in the project folder
    fal_checks.check_pyproject(project)
    assert Path.cwd() == tmp_path


def test_python_version_mismatch_names_both_places(fal_env, cell, tmp_path):
    other = "3.10" if kernel_python_version() != "3.10" else "3.12"
    project = capture(cell, "text-stats", dir=tmp_path / "p", search_dir=tmp_path, python_version=other)
    with pytest.raises(DeployError) as err:
        fal_checks.check_python_versions(project)
    message = str(err.value)
    assert message.startswith(f"Python version mismatch: this kernel runs Python {kernel_python_version()}")
    assert f"python_version in pyproject.toml is {other}" in message
    assert f"base image (--base-image / FAL_NOTEBOOK_BASE_IMAGE) is {other}" in message


def test_base_image_version_alone_is_checked(fal_env, cell, tmp_path):
    project = capture(cell, "text-stats", dir=tmp_path / "p", search_dir=tmp_path, base_image="python:3.9-slim")
    with pytest.raises(DeployError, match=r"base image .* is 3\.9"):
        fal_checks.check_python_versions(project)


@pytest.mark.parametrize(
    ("from_line", "version"),
    [
        ("FROM python:3.11-slim", "3.11"),
        ("FROM --platform=linux/amd64 falai/base:3.12-12.1.0 AS base", "3.12"),
        ("FROM registry:5000/team/python:3.10.14-bookworm", "3.10"),
        ("FROM nvidia/cuda:12.3.1-runtime-ubuntu22.04", None),
        ("FROM my-image", None),
    ],
)
def test_image_python_version(from_line, version):
    assert fal_checks.image_python_version(f"# comment\n{from_line}\nRUN true\n") == version


def test_unsatisfiable_requirements_are_caught_before_the_build(fal_env, cell, tmp_path):
    project = capture(cell, "text-stats", dir=tmp_path / "p", search_dir=tmp_path, requirements=["pydantic==1.0.0.0.1"])
    with pytest.raises(DeployError, match="cannot be installed") as err:
        fal_checks.check_requirements(project, progress=lambda line: None)
    assert "pydantic==1.0.0.0.1" in str(err.value)


def test_the_local_targets_environment_is_reused(fal_env, cell, tmp_path, monkeypatch):
    project = capture(cell, "text-stats", dir=tmp_path / "p", search_dir=tmp_path, requirements=["pydantic==1.0.0.0.1"])
    monkeypatch.setattr(fal_checks, "local_environment_python", lambda p: Path(sys.executable))
    lines = []
    fal_checks.check_requirements(project, progress=lines.append)  # pydantic==1.0.0.0.1 is not resolved
    assert lines == ["Requirements: already installed in the local target's environment."]


def test_without_uv_pip_resolves(fal_env, cell, tmp_path, monkeypatch):
    monkeypatch.setattr(fal_checks.shutil, "which", lambda *a, **k: None)
    command, is_uv = fal_checks.resolver_command("3.11")
    assert not is_uv and command[:6] == [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed"]
    project = capture(cell, "text-stats", dir=tmp_path / "p", search_dir=tmp_path, requirements=["pydantic==1.0.0.0.1"])
    with pytest.raises(DeployError, match="cannot be installed") as err:
        fal_checks.check_requirements(project, progress=lambda line: None)
    assert "pydantic==1.0.0.0.1" in str(err.value)


def test_module_that_does_not_import_is_caught(project):
    app = project.path / "app.py"
    app.write_text(app.read_text() + "\nraise RuntimeError('needs a notebook variable')\n")
    with pytest.raises(DeployError, match="does not import in a fresh Python") as err:
        fal_checks.check_module_imports(project)
    assert "RuntimeError: needs a notebook variable" in str(err.value)
