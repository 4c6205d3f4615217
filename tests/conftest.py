"""Fixtures shared by the test modules."""

from __future__ import annotations

import pytest

FAL_ENV = ("FAL_KEY", "FAL_KEY_ID", "FAL_KEY_SECRET", "FAL_RUN_HOST", "FAL_QUEUE_RUN_HOST",
           "FAL_NOTEBOOK_GATEWAY_PORT")


@pytest.fixture
def fal_env(monkeypatch, tmp_path):
    """No fal credentials or hosts from the developer's environment, and a fresh FAL_NOTEBOOK_HOME."""
    for name in FAL_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FAL_NOTEBOOK_HOME", str(tmp_path / "home"))
