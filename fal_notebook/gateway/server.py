"""The gateway's ASGI app: fal's protocol (routes.py) and the admin API (admin.py) on Starlette."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response

from .. import wire
from . import admin, routes, uploads
from .core import Gateway
from .door import BodyBudget, Door
from .filestore import FileStore
from .gpus import GpuPool
from .limits import Limits
from .paths import files_dir
from .web import error


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error(exc.status_code, exc.detail)


def build_app(
    *,
    key: str,
    state_id: str,
    home: str,
    port: int,
    tls_port: int | None = None,
    proxy_port: int | None = None,
    limits: Limits | None = None,
    gpus: GpuPool | None = None,
    on_stop: Callable[[], None] = lambda: None,
) -> Starlette:
    """The gateway for one state directory; its Gateway starts and stops with the app's lifespan."""
    limits = limits or Limits.from_env()
    pool = gpus or GpuPool.from_env(os.environ)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.gateway = Gateway(
            key=key,
            state_id=state_id,
            max_queue=limits.max_queue,
            gpus=pool,
            webhook_window=limits.webhook_window,
            jwks_url=wire.gateway_origin(port) + wire.JWKS_PATH,
            files=files,
        )
        await app.state.gateway.start()
        try:
            yield
        finally:
            await app.state.gateway.close()
            on_stop()

    bodies = BodyBudget(limits.max_bodies)
    files = FileStore(files_dir(), max_bytes=limits.store_max, ttl=limits.store_ttl)
    app = Starlette(
        routes=[*routes.ROUTES, *uploads.ROUTES, *admin.ROUTES],
        middleware=[Middleware(Door, budget=bodies)],
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error},
    )
    app.state.key, app.state.state_id, app.state.home, app.state.port = key, state_id, home, port
    app.state.tls_port, app.state.proxy_port = tls_port, proxy_port
    app.state.limits, app.state.bodies = limits, bodies
    app.state.files, app.state.files_origin = files, wire.gateway_origin(port)
    # The store alone, for the store's socket (Docker runners, the storage proxy): no Host check there,
    # as requests through the proxy name fal's storage hosts.
    app.state.store_app = store = Starlette(routes=uploads.ROUTES, exception_handlers={HTTPException: _http_error})
    store.state.key, store.state.limits, store.state.files = key, limits, files
    store.state.files_origin = app.state.files_origin
    return app
