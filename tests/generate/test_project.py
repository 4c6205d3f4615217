"""Writing a project folder: all of it or nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fal_notebook import capture

pytestmark = pytest.mark.usefixtures("fal_env")  # a private FAL_NOTEBOOK_HOME

CELL = (
    "import fal\n\nclass Demo(fal.App):\n    @fal.endpoint('/')\n"
    "    def run(self) -> dict:\n        return {{'answer': {answer}}}\n"
)


def contents(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_write_that_fails_midway_leaves_the_old_folder_as_it_was(tmp_path, monkeypatch):
    folder = tmp_path / "demo"
    capture(CELL.format(answer=1), "demo", dir=folder, search_dir=tmp_path, keep_alive=10)
    before = contents(folder)
    replace = os.replace

    def failing_replace(source, target):  # the disk refuses the Dockerfile, after app.py was replaced
        if Path(target) == folder / "Dockerfile":
            raise OSError(28, "No space left on device")
        replace(source, target)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space left"):
        capture(CELL.format(answer=2), "demo", dir=folder, search_dir=tmp_path, keep_alive=20)
    assert contents(folder) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".demo.")] == []  # no staging left

    monkeypatch.setattr(os, "replace", replace)
    project = capture(CELL.format(answer=2), "demo", dir=folder, search_dir=tmp_path, keep_alive=20)
    assert "'answer': 2" in (folder / "app.py").read_text() and project.changed


def test_what_the_user_set_last_deploys_and_nothing_set_is_dropped(tmp_path, monkeypatch):
    """The configuration model: a key the cell leaves as it was keeps the file's value (the config
    editor's or a hand edit); a key the cell changes takes the cell's; both changed: the capture asks."""
    from fal_notebook.capture import capture
    from fal_notebook.errors import ConfigConflictError
    from fal_notebook.generate.project import AppProject, reconfigure

    monkeypatch.setenv("FAL_NOTEBOOK_HOME", str(tmp_path / "home"))
    cell = (
        "import fal\n\nclass Greeter(fal.App):\n    @fal.endpoint('/')\n    def run(self) -> dict:\n        return {}\n"
    )

    def run_cell(**flags):
        return capture(cell, "greeter", notebook_cells=[], search_dir=tmp_path, **flags)

    project = run_cell(keep_alive=120)
    pyproject = project.path / "pyproject.toml"
    reconfigure(project.path, {"keep_alive": 300, "max_concurrency": 2})  # the config editor
    again = run_cell(keep_alive=120)  # the same cell, run again (or the panel's Deploy)
    assert (again.config.keep_alive, again.config.max_concurrency) == (300, 2)
    assert "keep_alive = 300" in pyproject.read_text() and "max_concurrency = 2" in pyproject.read_text()
    assert any("Kept from pyproject.toml" in note and "keep_alive = 300" in note for note in again.notes)
    assert AppProject.load(project.path).config.keep_alive == 300  # what a deploy reads

    pyproject.write_text(pyproject.read_text().replace("max_concurrency = 2", "max_concurrency = 3"))  # by hand
    assert run_cell(keep_alive=120).config.max_concurrency == 3
    assert run_cell(keep_alive=120, min_concurrency=1).config.min_concurrency == 1  # the cell's new key

    with pytest.raises(ConfigConflictError) as conflict:  # both changed keep_alive since the last capture
        run_cell(keep_alive=60, min_concurrency=1)
    assert conflict.value.fields == ["keep_alive"]
    assert "is 60 in the cell and 300 in the file (it was 120)" in str(conflict.value)
    assert "keep_alive = 300" in pyproject.read_text()  # nothing written
    forced = run_cell(keep_alive=60, min_concurrency=1, force=True)
    assert (forced.config.keep_alive, forced.config.max_concurrency) == (60, 3)
