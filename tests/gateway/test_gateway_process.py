"""The gateway process: one per state directory, found by its identity, refusing foreign ports."""

from __future__ import annotations

import http.server
import socket
import threading

import pytest

from fal_notebook.errors import ConfigError, GatewayError
from fal_notebook.gateway import gateway_status, start_gateway, stop_gateway
from tests.gateway_helpers import free_port


def test_start_is_idempotent_and_status_reports(gateway):
    first = start_gateway()
    again = start_gateway()
    assert first.running and again.pid == first.pid
    status = gateway_status()
    assert status.url == f"http://127.0.0.1:{gateway.port}" and status.home == str(gateway.home)


def test_status_and_stop_when_not_running(tmp_path, monkeypatch):
    monkeypatch.setenv("FAL_NOTEBOOK_HOME", str(tmp_path))
    monkeypatch.setenv("FAL_NOTEBOOK_GATEWAY_PORT", str(free_port()))
    assert gateway_status().running is False
    assert stop_gateway() is False


def test_gateway_of_another_state_dir_on_the_port_is_refused(gateway, tmp_path, monkeypatch):
    monkeypatch.setenv("FAL_NOTEBOOK_HOME", str(tmp_path / "other"))
    with pytest.raises(GatewayError, match="belongs to another state directory"):
        start_gateway()


def test_same_state_dir_on_another_port_is_refused(gateway, monkeypatch):
    monkeypatch.setenv("FAL_NOTEBOOK_GATEWAY_PORT", str(free_port()))
    with pytest.raises(GatewayError, match=f"already runs on port {gateway.port}"):
        start_gateway()


def test_port_used_by_another_program_is_refused(tmp_path, monkeypatch):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("FAL_NOTEBOOK_HOME", str(tmp_path))
        monkeypatch.setenv("FAL_NOTEBOOK_GATEWAY_PORT", str(server.server_address[1]))
        with pytest.raises(GatewayError, match="used by another program"):
            start_gateway()
    finally:
        server.shutdown()


def test_bad_port_setting_is_a_config_error(monkeypatch):
    monkeypatch.setenv("FAL_NOTEBOOK_GATEWAY_PORT", "eighty")
    with pytest.raises(ConfigError, match="FAL_NOTEBOOK_GATEWAY_PORT"):
        start_gateway()


def test_a_taken_tls_port_leaves_the_gateway_without_https_and_env_says_why(tmp_path, monkeypatch):
    from fal_notebook.gateway import client_environment

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    monkeypatch.setenv("FAL_NOTEBOOK_HOME", str(tmp_path))
    monkeypatch.setenv("FAL_NOTEBOOK_GATEWAY_PORT", str(free_port()))
    monkeypatch.setenv("FAL_NOTEBOOK_GATEWAY_TLS_PORT", str(taken.getsockname()[1]))
    try:
        info = start_gateway()
        assert info.running and info.tls_port is None  # plain HTTP still serves
        with pytest.raises(GatewayError, match="serves no HTTPS.*FAL_NOTEBOOK_GATEWAY_TLS_PORT"):
            client_environment()
    finally:
        stop_gateway()
        taken.close()
