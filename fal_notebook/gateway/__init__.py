"""The local gateway: fal's protocol for ``local/<name>`` in front of local runner processes.

The gateway is one background process per user (``python -m fal_notebook.gateway``); these
functions start, stop and query it. They never run a server in the calling process.
"""

from __future__ import annotations

from .control import (
    GatewayInfo,
    apply_client_environment,
    client_environment,
    gateway_key,
    gateway_running,
    gateway_status,
    gateway_url,
    start_gateway,
    stop_gateway,
)

__all__ = [
    "GatewayInfo",
    "apply_client_environment",
    "client_environment",
    "gateway_key",
    "gateway_running",
    "gateway_status",
    "gateway_url",
    "start_gateway",
    "stop_gateway",
]
