"""Start, stop and query the gateway process from the kernel or the CLI, and talk to its admin API.

Nothing here waits long: the gateway and the runners do the work in their own processes; the
caller only polls.
"""

from __future__ import annotations

import functools
import os
import signal
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from .. import wire
from ..credentials import set_aside_fal_key
from ..errors import GatewayError
from ..state import gateway_port, gateway_tls_port, home, process_alive, read_json
from ..wire import GATEWAY_HOST
from .admin_api import APPS_PATH, GPUS_PATH, IDENTITY_PATH, SERVICE, SHUTDOWN_PATH, AppInfo
from .environment import gateway_environment
from .paths import base_url, ensure_key, gateway_dir, log_path, pid_path, state_id
from .tls import ca_bundle

START_TIMEOUT = 30.0


@dataclass
class GatewayInfo:
    running: bool
    port: int
    url: str
    home: str
    pid: int | None = None
    apps: list[AppInfo] = field(default_factory=list)
    #: The HTTPS listener's port (None: not serving HTTPS, its port was taken).
    tls_port: int | None = None
    #: The GPUs it hands to runners: {"source": how they were found, "gpus": [index, uuid, name,
    #: memory_mib, memory_used_mib, app, runner]} (gpus.py).
    gpus: dict[str, Any] = field(default_factory=dict)


def gateway_url() -> str:
    """Base URL of this user's gateway, e.g. ``http://127.0.0.1:8765``."""
    return base_url()


def gateway_key() -> str:
    """The key (``<id>:<secret>``) that private local apps and the admin API require, created with
    the state directory's first gateway (``state.read_gateway_key`` only reads it)."""
    return ensure_key()


def gateway_running() -> bool:
    """Whether a gateway answers on this state directory's port (``FAL_NOTEBOOK_GATEWAY_PORT``)."""
    return _identity(gateway_port()) is not None


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """One default SSL context for every client of the gateway: httpx builds a new one per client
    otherwise (loading the CA bundle, tens of milliseconds), even for the gateway's plain HTTP."""
    return ssl.create_default_context()


def _identity(port: int) -> dict[str, Any] | None:
    """What answers on the port: the gateway's identity, ``None`` if nothing listens."""
    try:
        response = httpx.get(wire.gateway_origin(port) + IDENTITY_PATH, timeout=2.0, verify=_ssl_context())
    except httpx.TimeoutException:
        raise GatewayError(
            f"Something on {GATEWAY_HOST}:{port} accepts connections but does not answer. Free the port, or choose "
            "another with FAL_NOTEBOOK_GATEWAY_PORT."
        ) from None
    except httpx.TransportError:
        return None
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict) or data.get("service") != SERVICE:
        raise GatewayError(
            f"Port {port} on {GATEWAY_HOST} is used by another program, not a fal-notebook gateway. Stop it, or choose "
            "another port with FAL_NOTEBOOK_GATEWAY_PORT."
        )
    return data


def _ours(identity: dict[str, Any], port: int) -> dict[str, Any]:
    if identity.get("state_id") != state_id():
        raise GatewayError(
            f"The gateway on port {port} belongs to another state directory, not "
            f"{home()}. Use that FAL_NOTEBOOK_HOME, or give this one its own port with FAL_NOTEBOOK_GATEWAY_PORT."
        )
    return identity


def start_gateway(*, timeout: float = START_TIMEOUT) -> GatewayInfo:
    """Make sure this user's gateway runs (starting it in the background if needed)."""
    port = gateway_port()
    identity = _identity(port)
    if identity is not None:
        _ours(identity, port)
        return gateway_status()
    recorded = read_json(pid_path(), None)
    if recorded and recorded.get("port") != port and process_alive(recorded.get("pid")):
        raise GatewayError(
            f"The gateway of {home()} already runs on port {recorded['port']} (pid {recorded['pid']}); set "
            f"FAL_NOTEBOOK_GATEWAY_PORT={recorded['port']}, or stop it with `fal-notebook gateway stop` first."
        )
    ensure_key()
    package_root = str(Path(__file__).resolve().parents[2])
    env = {
        **gateway_environment(os.environ),
        "FAL_NOTEBOOK_HOME": str(home()),
        "FAL_NOTEBOOK_GATEWAY_PORT": str(port),
        "PYTHONPATH": os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p),
    }
    with log_path().open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "fal_notebook.gateway"],
            cwd=gateway_dir(),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise GatewayError(f"The gateway exited with code {process.returncode}. Its log ({log_path()}):\n{_tail()}")
        identity = _identity(port)
        if identity is not None:
            _ours(identity, port)
            return gateway_status()
        time.sleep(0.1)
    raise GatewayError(f"The gateway did not answer on port {port} within {timeout:g} s. Its log:\n{_tail()}")


def stop_gateway(*, timeout: float = 20.0) -> bool:
    """Stop this user's gateway and its runners; ``False`` if it was not running."""
    port = gateway_port()
    identity = _identity(port)
    if identity is None:
        return False
    _ours(identity, port)
    pid = read_json(pid_path(), {}).get("pid")
    try:
        with admin() as client:
            client.post(SHUTDOWN_PATH)
    except httpx.HTTPError:
        if pid:
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process_alive(pid) and _identity(port) is None:
            return True
        time.sleep(0.1)
    if pid and process_alive(pid):
        os.kill(pid, signal.SIGKILL)
    return True


def gateway_status() -> GatewayInfo:
    """Whether the gateway runs, where, and its apps."""
    port = gateway_port()
    identity = _identity(port)
    info = GatewayInfo(running=False, port=port, url=base_url(port), home=str(home()))
    if identity is None:
        return info
    _ours(identity, port)
    info.running, info.pid = True, read_json(pid_path(), {}).get("pid")
    info.tls_port = identity.get("tls_port")
    with admin() as client:
        info.apps = [AppInfo.from_json(app) for app in client.get(APPS_PATH).json()]
        info.gpus = client.get(GPUS_PATH).json()
    return info


def client_environment() -> dict[str, str]:
    """The environment that points unmodified fal_client code at this user's gateway (started if
    needed): its HTTPS hosts, the CA bundle that trusts its certificate, and its key as ``FAL_KEY``."""
    info = start_gateway()
    if info.tls_port is None:
        raise GatewayError(
            f"The gateway at {info.url} serves no HTTPS: port {gateway_tls_port()} was in use when it started. "
            f"Choose a free port with {wire.GATEWAY_TLS_PORT_VARIABLE} and restart it (`fal-notebook gateway stop`)."
        )
    return {
        **wire.gateway_hosts(info.tls_port),
        wire.CA_BUNDLE_VARIABLE: str(ca_bundle(_trusted())),
        wire.FAL_KEY_VARIABLE: ensure_key(),
    }


def _trusted() -> Path | None:
    """The CA file this process trusts (``SSL_CERT_FILE``), None for Python's and httpx's default."""
    named = os.environ.get(wire.CA_BUNDLE_VARIABLE)
    return Path(named) if named and Path(named).is_file() else None


def apply_client_environment() -> str:
    """Set ``client_environment()`` in this process; returns what was set, the key not shown."""
    env = client_environment()
    imported = sys.modules.get("fal_client.auth")
    set_aside_fal_key()  # the user's fal key stays theirs (deploys, runners, redaction)
    os.environ.update(env)
    lines = [f"{name}={'<the gateway key>' if name == wire.FAL_KEY_VARIABLE else value}" for name, value in env.items()]
    stale = imported is not None and getattr(imported, "FAL_RUN_HOST", None) != env[wire.RUN_HOST_VARIABLE]
    if stale:
        lines.append(
            "fal_client was imported before: it reads its hosts once, at import. Restart the kernel and run "
            "%fal_env before `import fal_client`."
        )
    return "\n".join(lines)


def admin() -> httpx.Client:
    """An httpx client for the admin API, with the key (use it as a context manager)."""
    return httpx.Client(
        base_url=base_url(),
        headers={wire.AUTHORIZATION: wire.key_header(ensure_key())},
        timeout=30.0,
        verify=_ssl_context(),
    )


def _tail(lines: int = 30) -> str:
    try:
        return "\n".join(log_path().read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
