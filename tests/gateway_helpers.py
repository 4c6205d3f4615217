"""Helpers for the tests that run a real gateway (tests/gateway, tests/widgets): free ports, and a handle on
a test gateway that captures and deploys small real apps (in the kernel's environment, for speed) and
polls its state. The ``gateway`` fixture (tests/conftest.py) gives one per test module."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

import fal_notebook
from fal_notebook.backends.base import Deployment
from fal_notebook.backends.local import LocalBackend
from fal_notebook.gateway import gateway_key

from .polling import wait_for

#: Bodies above this size are refused with 413 in the tests' gateways.
TEST_MAX_BODY = 1 << 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LocalGateway:
    home: Path
    port: int
    apps_dir: Path
    tls_port: int = 0
    progress: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def key(self) -> str:
        return gateway_key()

    def http(self, *, key: bool = True) -> httpx.Client:
        headers = {"Authorization": f"Key {self.key}"} if key else {}
        return httpx.Client(base_url=self.base, headers=headers, timeout=60.0)

    def capture(self, source: str, name: str, **options: Any):
        return fal_notebook.capture(source, name, out_dir=self.apps_dir, **options)

    def deploy(self, source: str, name: str, *, env: str = "kernel", **options: Any) -> Deployment:
        self.progress.clear()
        project = self.capture(source, name, **options)
        return LocalBackend(env=env).deploy(project, progress=self.progress.append)

    def app_log(self, name: str) -> str:
        """The app's log as the gateway writes it (runner output, websockets opened and closed)."""
        log = self.home / "gateway" / "logs" / f"{name}.log"
        return log.read_text() if log.exists() else ""

    def info(self, name: str) -> dict[str, Any]:
        with self.http() as client:
            return client.get(f"/_fal_notebook/apps/{name}").json()

    def wait_completed(self, client: httpx.Client, status_url: str, timeout: float = 60.0) -> dict[str, Any]:
        def completed() -> dict[str, Any] | None:
            response = client.get(status_url, params={"logs": 1})
            assert response.status_code in (200, 202), response.text
            return response.json() if response.status_code == 200 else None

        return wait_for(completed, f"{status_url} to complete", timeout=timeout)


def messages(logs: list[dict[str, Any]]) -> list[str]:
    """The messages of a status's log entries."""
    return [entry["message"] for entry in logs]


def hold(gateway: LocalGateway, client: Any, gate: Path) -> Any:
    """Submit a ``/hold`` request to the WORDS app (gateway_apps.py) and wait until it occupies a
    runner: the app logs when it starts to wait for ``gate`` to exist."""
    handle = client.submit({"path": str(gate)}, path="/hold")
    started = f"holding until {gate.name} exists"
    wait_for(
        lambda: started in messages(getattr(handle.status(logs=True), "logs", [])), what=f"the app to log {started!r}"
    )
    return handle
