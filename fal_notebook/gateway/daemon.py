"""The gateway process (``python -m fal_notebook.gateway``): one per state directory, on 127.0.0.1.

It listens twice, for the same app: plain HTTP on ``FAL_NOTEBOOK_GATEWAY_PORT`` (our client, the
runners' tools) and HTTPS on ``FAL_NOTEBOOK_GATEWAY_TLS_PORT`` with the certificate of ``tls.py``
(fal_client speaks only https). Without its port the HTTPS listener is left out, and said so.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import math
import os
import socket
import sys
from collections.abc import Iterator
from typing import Any

import uvicorn

from ..errors import GatewayError
from ..state import gateway_port, gateway_tls_port, home, write_json_atomic
from ..wire import GATEWAY_HOST, GATEWAY_PORT_VARIABLE, GATEWAY_TLS_PORT_VARIABLE
from .gpus import GpuPool
from .limits import Limits
from .paths import ensure_key, lock_path, pid_path, state_id
from .server import build_app
from .serving import http_protocol
from .tls import ensure_certificate


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((GATEWAY_HOST, port))
        except OSError:
            return False
    return True


class Gateway(uvicorn.Server):
    """The HTTP listener; it owns the app's lifespan and stops its companion listeners first."""

    def __init__(self, config: uvicorn.Config):
        super().__init__(config)
        self.companions: list[tuple[uvicorn.Server, asyncio.Task]] = []

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for companion, _ in self.companions:
            companion.should_exit = True
        await asyncio.gather(*(task for _, task in self.companions), return_exceptions=True)
        await super().shutdown(sockets)


class Companion(uvicorn.Server):
    """A listener that serves the primary's app (no lifespan of its own) and exits with it."""

    def __init__(self, config: uvicorn.Config, primary: uvicorn.Server):
        super().__init__(config)
        self.primary = primary

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the primary handles the signals

    async def on_tick(self, counter: int) -> bool:
        return self.primary.should_exit or await super().on_tick(counter)


async def _serve(primary: Gateway, tls: uvicorn.Config | None) -> None:
    task = asyncio.create_task(primary.serve())
    while not primary.started and not task.done():
        await asyncio.sleep(0.02)
    if tls is not None and primary.started:
        companion = Companion(tls, primary)
        primary.companions.append((companion, asyncio.create_task(companion.serve())))
    await task


def main() -> int:
    port, tls_port = gateway_port(), gateway_tls_port()
    lock = lock_path().open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"A gateway for {home()} is already running (see {pid_path()}).", file=sys.stderr)
        return 1
    if not _port_free(port):
        print(
            f"Port {port} on {GATEWAY_HOST} is in use by another program. "
            f"Choose another port with {GATEWAY_PORT_VARIABLE}.",
            file=sys.stderr,
        )
        return 1
    https = tls_port != port and _port_free(tls_port)
    if not https:
        print(
            f"Port {tls_port} on {GATEWAY_HOST} is in use: the gateway serves no HTTPS (fal_client needs it). Choose "
            f"another port with {GATEWAY_TLS_PORT_VARIABLE}.",
            file=sys.stderr,
        )

    def forget_pid() -> None:  # also on SIGTERM, which uvicorn re-raises after the graceful shutdown
        pid_path().unlink(missing_ok=True)

    try:
        limits, gpus = Limits.from_env(), GpuPool.from_env(os.environ)
    except GatewayError as exc:
        print(exc, file=sys.stderr)
        return 1
    app = build_app(
        key=ensure_key(),
        state_id=state_id(),
        home=str(home()),
        port=port,
        tls_port=tls_port if https else None,
        limits=limits,
        gpus=gpus,
        on_stop=forget_pid,
    )
    common: dict[str, Any] = {
        "loop": "uvloop",
        "http": http_protocol(limits),
        "timeout_keep_alive": math.ceil(limits.keep_alive),  # uvicorn counts whole seconds
        "log_level": "warning",
        "access_log": False,
        "timeout_graceful_shutdown": 10,
    }
    server = Gateway(uvicorn.Config(app, host=GATEWAY_HOST, port=port, **common))
    tls = None
    if https:
        files = ensure_certificate()
        tls = uvicorn.Config(
            app,
            host=GATEWAY_HOST,
            port=tls_port,
            lifespan="off",
            ssl_certfile=str(files.certificate),
            ssl_keyfile=str(files.key),
            **common,
        )
    app.state.server = server
    write_json_atomic(pid_path(), {"pid": os.getpid(), "port": port, "tls_port": tls_port if https else None})
    try:
        with asyncio.Runner(loop_factory=server.config.get_loop_factory()) as runner:
            runner.run(_serve(server, tls))
    finally:
        forget_pid()
    return 0
