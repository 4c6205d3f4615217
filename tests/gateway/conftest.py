"""Fixtures for the gateway tests: a private state dir and a free port per module, a real gateway
process on them (helpers in gateway_helpers.py), and a TLS terminator in front (tls_terminator.py)."""

from __future__ import annotations

import uuid

import pytest
from gateway_helpers import TEST_MAX_BODY, LocalGateway, free_port
from tls_terminator import serve_tls

from fal_notebook.gateway import start_gateway, stop_gateway


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory):
    """A gateway process of its own (state dir, port) for the test module; stopped at its end."""
    home = tmp_path_factory.mktemp("home")
    port = free_port()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FAL_NOTEBOOK_HOME", str(home))
        mp.setenv("FAL_NOTEBOOK_GATEWAY_PORT", str(port))
        mp.setenv("FAL_NOTEBOOK_GATEWAY_MAX_BODY", str(TEST_MAX_BODY))
        start_gateway()
        try:
            yield LocalGateway(home=home, port=port, apps_dir=tmp_path_factory.mktemp("apps"))
        finally:
            stop_gateway()


@pytest.fixture(scope="module")
def tls(gateway, tmp_path_factory):
    """HTTPS (self-signed, its certificate in ``cert_file``) in front of the module's gateway."""
    yield from serve_tls(gateway.base, tmp_path_factory.mktemp("tls"))


@pytest.fixture
def gate(tmp_path):
    """A file path a ``/hold`` request of the WORDS app waits for; created at the test's end at the latest."""
    path = tmp_path / f"gate-{uuid.uuid4().hex[:8]}"
    yield path
    path.touch()
