"""FAL_NOTEBOOK_HOME holds the gateway's key, queue and logs: it is the user's alone."""

from __future__ import annotations

import pytest

from fal_notebook.errors import ConfigError
from fal_notebook.state import home


def test_an_existing_home_readable_by_others_is_made_private(tmp_path, monkeypatch):
    folder = tmp_path / "home"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    monkeypatch.setenv("FAL_NOTEBOOK_HOME", str(folder))
    assert home() == folder
    assert folder.stat().st_mode & 0o777 == 0o700


def test_a_new_home_is_private(tmp_path, monkeypatch):
    monkeypatch.setenv("FAL_NOTEBOOK_HOME", str(tmp_path / "new" / "home"))
    assert home().stat().st_mode & 0o777 == 0o700


def test_a_folder_shared_with_others_is_refused_not_changed(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp
    monkeypatch.setenv("FAL_NOTEBOOK_HOME", str(shared))
    with pytest.raises(ConfigError, match="shared with other users"):
        home()
    assert shared.stat().st_mode & 0o7777 == 0o1777
