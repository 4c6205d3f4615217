"""Where the gateway keeps its state (``<FAL_NOTEBOOK_HOME>/gateway``) and the key that guards it.

Its port and the key file's place are read as the client reads them (``state.py``, ``wire.py``).
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

from .. import wire
from ..state import gateway_key_file, gateway_port, home


def gateway_dir() -> Path:
    path = home() / "gateway"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def base_url(port: int | None = None) -> str:
    return wire.gateway_origin(port or gateway_port())


def state_id() -> str:
    """Identifies this state directory, so that a gateway of another one is recognised."""
    return hashlib.sha256(str(gateway_dir().resolve()).encode()).hexdigest()[:16]


def ensure_key() -> str:
    """The gateway's key ``<id>:<secret>``, created on first use, readable only by the user."""
    gateway_dir()  # its folder, private to the user
    path = gateway_key_file()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(f"{secrets.token_hex(8)}:{secrets.token_urlsafe(32)}\n")
    return path.read_text().strip()


def db_path() -> Path:
    return gateway_dir() / "gateway.sqlite3"


def pid_path() -> Path:
    return gateway_dir() / "gateway.pid"


def log_path() -> Path:
    return gateway_dir() / "gateway.log"


def lock_path() -> Path:
    return gateway_dir() / "gateway.lock"


def app_log_path(name: str) -> Path:
    folder = gateway_dir() / "logs"
    folder.mkdir(exist_ok=True, mode=0o700)
    return folder / f"{name}.log"


def envs_dir() -> Path:
    folder = gateway_dir() / "envs"
    folder.mkdir(exist_ok=True, mode=0o700)
    return folder


def snapshots_dir(name: str) -> Path:
    folder = gateway_dir() / "apps" / name
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


def secrets_dir() -> Path:
    """Where docker runners put an app's secrets for their container to read at start (then removed)."""
    folder = gateway_dir() / "secrets"
    folder.mkdir(exist_ok=True, mode=0o700)
    return folder
