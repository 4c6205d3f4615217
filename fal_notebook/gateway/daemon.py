"""The gateway process (``python -m fal_notebook.gateway``): one per state directory, on 127.0.0.1."""

from __future__ import annotations

import fcntl
import os
import socket
import sys

import uvicorn

from ..state import gateway_port, home, write_json_atomic
from ..wire import GATEWAY_HOST
from .limits import Limits
from .paths import ensure_key, lock_path, pid_path, state_id
from .server import build_app
from .serving import http_protocol


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((GATEWAY_HOST, port))
        except OSError:
            return False
    return True


def main() -> int:
    port = gateway_port()
    lock = lock_path().open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"A gateway for {home()} is already running (see {pid_path()}).", file=sys.stderr)
        return 1
    if not _port_free(port):
        print(
            f"Port {port} on {GATEWAY_HOST} is in use by another program. Choose another port with FAL_NOTEBOOK_GATEWAY_PORT.",
            file=sys.stderr,
        )
        return 1

    def forget_pid() -> None:  # also on SIGTERM, which uvicorn re-raises after the graceful shutdown
        pid_path().unlink(missing_ok=True)

    limits = Limits.from_env()
    app = build_app(
        key=ensure_key(), state_id=state_id(), home=str(home()), port=port, limits=limits, on_stop=forget_pid
    )
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=GATEWAY_HOST,
            port=port,
            loop="uvloop",
            http=http_protocol(limits),
            timeout_keep_alive=limits.keep_alive,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=10,
        )
    )
    app.state.server = server
    write_json_atomic(pid_path(), {"pid": os.getpid(), "port": port})
    try:
        server.run()
    finally:
        forget_pid()
    return 0
