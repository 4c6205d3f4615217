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
