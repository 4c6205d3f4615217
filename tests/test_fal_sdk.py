"""fal's internals, fenced: a fal outside the tested range, or one without an internal fal-notebook
uses, fails with a message that names it and says what to install, never with a traceback."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from fal_notebook import capture, fal_sdk
from fal_notebook.backends.fal_checks import check_pyproject
from fal_notebook.backends.fal_cli import deploy_args, run_fal
from fal_notebook.backends.fal_errors import explain
from fal_notebook.errors import FalNotebookError

pytestmark = [pytest.mark.fal_sdk, pytest.mark.usefixtures("fal_env")]

APP = "import fal\n\nclass Demo(fal.App):\n    @fal.endpoint('/')\n    def run(self) -> dict:\n        return {}\n"


@pytest.fixture
def old_fal(tmp_path, monkeypatch):
    """A fal package without the internals fal-notebook uses, first on the path of subprocesses."""
    root = tmp_path / "old-fal"
    for package in ("fal", "fal/cli", "fal/api"):
        (root / package).mkdir(parents=True)
        (root / package / "__init__.py").write_text("")
    monkeypatch.setenv("PYTHONPATH", str(root))
    return root


def test_the_installed_fal_is_tested_and_has_the_internals():
    fal_sdk.check_version()
    program = "import fal.cli._utils as u, fal.api.deploy as d, fal.config as c; "
    program += "assert u.get_app_data_from_toml and d.execute_prepared_deployment and c.Config()._config is not None"
    subprocess.run([sys.executable, "-c", program], check=True)


def test_pyproject_pins_the_tested_range():
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert f"fal{fal_sdk.TESTED_FAL}" in pyproject["project"]["dependencies"]


@pytest.mark.parametrize("version", ["2.0.0", "1.82.1", "not-a-version"])
def test_a_fal_outside_the_tested_range_is_refused(version):
    with pytest.raises(FalNotebookError) as info:
        fal_sdk.check_version(version)
    message = str(info.value)
    assert f"fal {version}" in message and ">=1.83,<2" in message and "pip install 'fal" in message


def test_a_fal_without_its_validator_says_so(old_fal, tmp_path):
    project = capture(APP, "demo", dir=tmp_path / "demo", search_dir=tmp_path)
    with pytest.raises(FalNotebookError, match=r"has no fal\.cli\._utils\.get_app_data_from_toml") as info:
        check_pyproject(project)
    assert "Traceback" not in str(info.value) and "pip install 'fal" in str(info.value)


def test_a_fal_without_its_deploy_function_says_so(old_fal, tmp_path):
    run = run_fal(deploy_args("demo"), cwd=tmp_path)
    assert run.returncode == fal_sdk.MISSING_EXIT
    error = explain(run, app="demo", folder=str(tmp_path))
    assert "has no fal.api.deploy.execute_prepared_deployment" in str(error) and "Nothing was deployed" in str(error)
