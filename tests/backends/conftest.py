"""Fixtures for the backends' tests of the fal target: no credentials anywhere fal looks, fal's hosts
pointed at a closed local port (no test ever reaches a public address), a captured app, and the fake
cloud. (The docker target's tests bring their own gateway.)"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from fal_notebook import capture

FAKE_CLOUD = Path(__file__).parent / "fake_cloud"
#: A recognisable fake key: the secret scan looks for it (and its halves) everywhere.
FAKE_KEY_ID = "fnbkeyid-0001"
FAKE_KEY_SECRET = "fnb-secret-Q7x9-DO-NOT-LEAK-5521"
FAKE_KEY = f"{FAKE_KEY_ID}:{FAKE_KEY_SECRET}"

CREDENTIAL_VARS = (
    "FAL_KEY",
    "FAL_KEY_ID",
    "FAL_KEY_SECRET",
    "FAL_PROFILE",
    "FAL_CONFIG_PATH",
    "FAL_HOME_DIR",
    "FAL_FORCE_AUTH_BY_USER",
    "FAL_ENV",
)
HOST_VARS = ("FAL_HOST", "FAL_GRPC_HOST", "FAL_REST_HOST", "FAL_RUN_HOST", "FAL_QUEUE_RUN_HOST")

CELL = """
import fal
from pydantic import BaseModel


class Input(BaseModel):
    text: str


class Output(BaseModel):
    words: int


class TextStats(fal.App, keep_alive=60):
    machine_type = "S"

    @fal.endpoint("/")
    def run(self, inp: Input) -> Output:
        return Output(words=len(inp.text.split()))
"""


def closed_port() -> int:
    """A local port nothing listens on (bound and released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def fal_env(fal_env, tmp_path, monkeypatch):
    """The suite's clean fal environment, and a user with no fal credentials: an empty HOME, no
    FAL_* variables; fal's API host is a closed local port, so a call that gets past the
    credentials fails as "unreachable", fast and locally. Returns the user's HOME."""
    home = tmp_path / "user"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in (*CREDENTIAL_VARS, *HOST_VARS, "FAKE_FAL_CLOUD"):
        monkeypatch.delenv(var, raising=False)
    host = f"127.0.0.1:{closed_port()}"
    monkeypatch.setenv("FAL_GRPC_HOST", host)
    monkeypatch.setenv("FAL_REST_HOST", host)
    return home


@pytest.fixture
def cell():
    """The source of a notebook cell defining a small fal.App."""
    return CELL


@pytest.fixture
def project(fal_env, tmp_path):
    return capture(
        CELL,
        "text-stats",
        dir=tmp_path / "apps" / "text-stats",
        search_dir=tmp_path,
        min_concurrency=0,
        max_concurrency=2,
    )


class FakeCloud:
    """Switches the fake fal cloud on for ``fal`` subprocesses and reads what it was asked."""

    def __init__(self, monkeypatch, log: Path):
        self.monkeypatch = monkeypatch
        self.log = log
        paths = [str(FAKE_CLOUD), os.environ.get("PYTHONPATH", "")]
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in paths if p))
        monkeypatch.setenv("FAKE_FAL_CLOUD_LOG", str(log))
        self.scenario("ok")

    def scenario(self, name: str) -> None:
        self.monkeypatch.setenv("FAKE_FAL_CLOUD", name)

    def calls(self, kind: str | None = None) -> list[dict]:
        if not self.log.exists():
            return []
        calls = [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]
        return [c for c in calls if kind is None or c["call"] == kind]


@pytest.fixture
def fake_cloud(fal_env, tmp_path, monkeypatch):
    return FakeCloud(monkeypatch, tmp_path / "fake-cloud.jsonl")


@pytest.fixture
def fake_key(fal_env, monkeypatch):
    monkeypatch.setenv("FAL_KEY", FAKE_KEY)
    return FAKE_KEY
