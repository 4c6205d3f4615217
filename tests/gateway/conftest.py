"""Fixtures for the gateway tests: a TLS terminator that records what passes (tls_terminator.py, for the
fal target tests; fal_client reaches the gateway through its own HTTPS listener);
the ``gateway`` fixture itself is in tests/conftest.py, shared with tests/widgets."""

from __future__ import annotations

import uuid

import pytest
from tls_terminator import serve_tls


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
