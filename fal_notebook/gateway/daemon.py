"""The gateway process (``python -m fal_notebook.gateway``): one per state directory, on 127.0.0.1.

It listens twice, for the same app: plain HTTP on ``FAL_NOTEBOOK_GATEWAY_PORT`` (our client, the
runners' tools) and HTTPS on ``FAL_NOTEBOOK_GATEWAY_TLS_PORT`` with the certificate of ``tls.py``
(fal_client speaks only https). Without its port the HTTPS listener is left out, and said so.
Besides, the file store alone (uploads.py) on a socket in the state directory (``store.sock``: Docker
runners mount it, the storage proxy relays to it), and the storage proxy (proxy.py) on
``FAL_NOTEBOOK_GATEWAY_PROXY_PORT``, left out like the HTTPS listener when its port is taken.
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
from pathlib import Path
from typing import Any

import uvicorn

from ..errors import GatewayError
from ..state import gateway_port, gateway_proxy_port, gateway_tls_port, home, write_json_atomic
from ..wire import GATEWAY_HOST, GATEWAY_PORT_VARIABLE, GATEWAY_PROXY_PORT_VARIABLE, GATEWAY_TLS_PORT_VARIABLE
from .gpus import GpuPool
from .limits import Limits
from .paths import ensure_key, lock_path, pid_path, state_id, store_socket_path
from .proxy import StorageProxy
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


def _listening(port: int) -> socket.socket | None:
    """A listening socket on ``127.0.0.1:port`` (None: the port is taken). The companion listeners are
    bound before the gateway answers, so a client told of them never finds them refusing: what
    connects before they serve waits in the backlog."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((GATEWAY_HOST, port))
    except OSError:
        sock.close()
        return None
    sock.listen(BACKLOG)
    return sock


def _listening_unix(path: Path) -> socket.socket:
    """The store's socket, the user's alone from the start (mode 0600)."""
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    mask = os.umask(0o177)
    try:
        sock.bind(str(path))
    finally:
        os.umask(mask)
    sock.listen(BACKLOG)
    return sock


#: The longest request head the storage proxy reads.
MAX_PROXY_HEAD = 16 * 1024
BACKLOG = 2048


class Gateway(uvicorn.Server):
    """The HTTP listener; it owns the app's lifespan and stops its companion listeners first."""

    def __init__(self, config: uvicorn.Config):
        super().__init__(config)
        self.companions: list[tuple[uvicorn.Server, asyncio.Task]] = []
        self.proxy: asyncio.Server | None = None

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.proxy is not None:
            self.proxy.close()
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


async def _serve(
    primary: Gateway,
    companions: list[tuple[uvicorn.Config, socket.socket]],
    proxy: tuple[StorageProxy, socket.socket] | None,
) -> None:
    task = asyncio.create_task(primary.serve())
    while not primary.started and not task.done():
        await asyncio.sleep(0.02)
    if primary.started:
        for config, sock in companions:
            companion = Companion(config, primary)
            primary.companions.append((companion, asyncio.create_task(companion.serve(sockets=[sock]))))
        if proxy is not None:
            primary.proxy = await asyncio.start_server(proxy[0], sock=proxy[1], limit=MAX_PROXY_HEAD)
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
    tls_socket = _listening(tls_port) if tls_port != port else None
    https = tls_socket is not None
    if not https:
        print(
            f"Port {tls_port} on {GATEWAY_HOST} is in use: the gateway serves no HTTPS (fal_client needs it). Choose "
            f"another port with {GATEWAY_TLS_PORT_VARIABLE}.",
            file=sys.stderr,
        )

    proxy_port = gateway_proxy_port()
    proxy_socket = _listening(proxy_port) if https and proxy_port not in (port, tls_port) else None
    proxying = proxy_socket is not None
    if https and not proxying:
        print(
            f"Port {proxy_port} on {GATEWAY_HOST} is in use: the gateway serves no storage proxy (fal_client's "
            f"uploads need it). Choose another port with {GATEWAY_PROXY_PORT_VARIABLE}.",
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
        proxy_port=proxy_port if proxying else None,
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
    store_socket = store_socket_path()
    store_config = uvicorn.Config(app.state.store_app, uds=str(store_socket), lifespan="off", **common)
    companions = [(store_config, _listening_unix(store_socket))]
    proxy = None
    if tls_socket is not None:
        files = ensure_certificate()
        tls_config = uvicorn.Config(
            app,
            host=GATEWAY_HOST,
            port=tls_port,
            lifespan="off",
            ssl_certfile=str(files.certificate),
            ssl_keyfile=str(files.key),
            **common,
        )
        companions.append((tls_config, tls_socket))
        if proxy_socket is not None:
            handler = StorageProxy(
                key=app.state.key, store_socket=store_socket, certificate=files.certificate, private_key=files.key
            )
            proxy = (handler, proxy_socket)
    app.state.server = server
    write_json_atomic(
        pid_path(),
        {
            "pid": os.getpid(),
            "port": port,
            "tls_port": tls_port if https else None,
            "proxy_port": proxy_port if proxying else None,
        },
    )
    try:
        with asyncio.Runner(loop_factory=server.config.get_loop_factory()) as runner:
            runner.run(_serve(server, companions, proxy))
    finally:
        forget_pid()
    return 0
