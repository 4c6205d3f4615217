"""Fixtures for every test folder: a clean fal environment, a real gateway, and what the machine must provide.

A missing tool skips a test on a developer's machine and fails it in CI (``CI`` set to a true
value), where `.ci/provision --tests` installs everything and a skip would hide a broken set-up.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import NoReturn

import docker
import pytest

from fal_notebook.backends.base import Deployment
from fal_notebook.gateway import start_gateway, stop_gateway

from .gateway_helpers import TEST_MAX_BODY, TEST_WEBHOOK_WINDOW, LocalGateway, free_port
from .realtime_apps import LIVE

FAL_ENV = (
    "FAL_KEY",
    "FAL_KEY_ID",
    "FAL_KEY_SECRET",
    "FAL_RUN_HOST",
    "FAL_QUEUE_RUN_HOST",
    "FAL_NOTEBOOK_GATEWAY_PORT",
    "FAL_NOTEBOOK_GATEWAY_TLS_PORT",
    "FAL_NOTEBOOK_GATEWAY_PROXY_PORT",
)


@pytest.fixture
def fal_env(monkeypatch, tmp_path):
    """No fal credentials or hosts from the developer's environment, and a fresh FAL_NOTEBOOK_HOME."""
    for name in FAL_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FAL_NOTEBOOK_HOME", str(tmp_path / "home"))


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalGateway]:
    """A gateway process of its own (state dir, port) for the test module; stopped at its end."""
    home = tmp_path_factory.mktemp("home")
    port, tls_port = free_port(), free_port()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FAL_NOTEBOOK_HOME", str(home))
        mp.setenv("FAL_NOTEBOOK_GATEWAY_PORT", str(port))
        mp.setenv("FAL_NOTEBOOK_GATEWAY_TLS_PORT", str(tls_port))
        mp.setenv("FAL_NOTEBOOK_GATEWAY_PROXY_PORT", str(free_port()))
        mp.setenv("FAL_NOTEBOOK_GATEWAY_MAX_BODY", str(TEST_MAX_BODY))
        mp.setenv("FAL_NOTEBOOK_GATEWAY_WEBHOOK_WINDOW", str(TEST_WEBHOOK_WINDOW))
        start_gateway()
        try:
            yield LocalGateway(home=home, port=port, tls_port=tls_port, apps_dir=tmp_path_factory.mktemp("apps"))
        finally:
            stop_gateway()


@pytest.fixture(scope="module")
def live(gateway: LocalGateway) -> Deployment:
    """The LIVE app (tests/realtime_apps.py: a realtime and a websocket endpoint) on the module's gateway, private."""
    return gateway.deploy(LIVE, "live")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` run where the gateway finds an NVIDIA GPU; elsewhere they are deselected
    (no machine of CI has one, and test_gpu_runners.py tests assignment without one)."""
    from fal_notebook.gateway import gpus

    if not any(item.get_closest_marker("gpu") for item in items) or gpus.found()[0]:
        return
    kept = [item for item in items if not item.get_closest_marker("gpu")]
    config.hook.pytest_deselected(items=[item for item in items if item.get_closest_marker("gpu")])
    items[:] = kept


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}


def _unavailable(what: str) -> NoReturn:
    message = f"{what}. Run .ci/provision --tests to install and start what the tests need."
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def unavailable() -> Callable[[str], NoReturn]:
    """``unavailable("Chromium is not installed")``: skip the test, or fail it in CI."""
    return _unavailable


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    """A client of the machine's Docker engine (the ``docker`` SDK)."""
    error = ""
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        error = str(exc)
    if error:  # outside the except block, so that the report is not a chained traceback
        _unavailable(f"No Docker engine answers ({error})")
    yield client
    client.close()
