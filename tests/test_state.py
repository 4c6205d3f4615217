"""FAL_NOTEBOOK_HOME holds the gateway's key, queue and logs: it is the user's alone; the pids it
records are told apart from other processes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from fal_notebook.errors import ConfigError
from fal_notebook.state import home, process_alive, process_start

from .polling import wait_for


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


def test_a_recorded_pid_counts_as_running_only_while_its_own_process_runs():
    assert process_alive(os.getpid(), process_start(os.getpid()))
    assert not process_alive(os.getpid(), "1")  # the pid given to another process since it was recorded
    assert not process_alive(None) and not process_alive(0) and not process_alive("12")  # a damaged pid file
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    started = process_start(child.pid)
    wait_for(lambda: not process_alive(child.pid, started), "the child process ended")
    os.kill(child.pid, 0)  # still there, unreaped: a zombie is not running
    assert child.wait() == 0 and not process_alive(child.pid, started)
