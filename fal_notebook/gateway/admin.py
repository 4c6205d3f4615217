"""The admin API's handlers (its paths and bodies: admin_api.py); all need the gateway's key but the
identity, which says without it only which state directory the gateway serves."""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import wire
from .._version import __version__
from ..errors import FalNotebookError
from ..statuses import AppStatus
from .admin_api import (
    APPS_PATH,
    GPUS_PATH,
    IDENTITY_PATH,
    SERVICE,
    SHUTDOWN_PATH,
    DeploySpec,
    app_path,
    cancel_path,
)
from .door import BodyRefused, read_body
from .web import error, gateway_of, has_key, unauthorized

#: Longest long poll (``?wait=``) of an app's state, in seconds.
MAX_WAIT = 10
Handler = Callable[[Request], Awaitable[Response]]


def guarded(handler: Handler) -> Handler:
    async def checked(request: Request) -> Response:
        if not has_key(request):
            return unauthorized("the admin API needs the gateway's key")
        return await handler(request)

    return checked


async def identity(request: Request) -> Response:
    state = request.app.state
    found = {
        "service": SERVICE,
        "state_id": state.state_id,
        "port": state.port,
        "tls_port": state.tls_port,
        "version": __version__,
    }
    if has_key(request):
        found.update(home=state.home, pid=os.getpid())
    return JSONResponse(found)


async def list_apps(request: Request) -> Response:
    return JSONResponse([rt.info(since=1 << 62).to_json() for rt in gateway_of(request).apps.values()])


async def list_gpus(request: Request) -> Response:
    """The GPUs the gateway hands out, where they were found, and who holds each."""
    return JSONResponse(gateway_of(request).gpus.info())


async def get_app(request: Request) -> Response:
    runtime = gateway_of(request).apps.get(request.path_params["name"])
    if runtime is None:
        return error(404, f"No app named {request.path_params['name']!r} was deployed here.")
    raw_since, raw_wait = request.query_params.get("since", "0"), request.query_params.get("wait", "0")
    since, wait = wire.parse_count(raw_since), wire.parse_count(raw_wait)
    if since is None:
        return error(422, f"since must be an event number (0, 1, 2...), got {raw_since[:40]!r}.")
    if wait is None:
        return error(422, f"wait must be whole seconds (0, 1, 2...), got {raw_wait[:40]!r}.")
    if wait:  # a long poll: answer as soon as something happens, at the latest after `wait` s
        await runtime.log.news(since, min(wait, MAX_WAIT))
    return JSONResponse(runtime.info(since).to_json())


async def put_app(request: Request) -> Response:
    try:
        spec = DeploySpec.from_body(json.loads(await read_body(request)))
    except BodyRefused as refused:
        return refused.response
    except (ValueError, RecursionError) as exc:
        return error(422, f"The deploy's body: {exc}")
    try:
        info = gateway_of(request).deploy(request.path_params["name"], spec)
    except (FalNotebookError, ValueError, OSError) as exc:
        return error(422, str(exc))
    return JSONResponse(info.to_json(), 202)


async def delete_app(request: Request) -> Response:
    if not await gateway_of(request).remove(request.path_params["name"]):
        return error(404, f"No app named {request.path_params['name']!r} was deployed here.")
    return JSONResponse({"name": request.path_params["name"], "status": AppStatus.STOPPED})


async def cancel_rollout(request: Request) -> Response:
    name = request.path_params["name"]
    runtime = gateway_of(request).apps.get(name)
    if runtime is None:
        return error(404, f"No app named {name!r} was deployed here.")
    try:
        number = (await request.json()).get("revision")
    except (ValueError, AttributeError):
        number = None
    if not await runtime.cancel_rollout(number if isinstance(number, int) else None):
        return error(409, f"{name} has no deploy in progress{f' of revision {number}' if number else ''}.")
    return JSONResponse(runtime.info(since=1 << 62).to_json())


async def shutdown(request: Request) -> Response:
    server = getattr(request.app.state, "server", None)
    if server is not None:
        server.should_exit = True
    return JSONResponse({"status": "stopping"})


ROUTES = [
    Route(IDENTITY_PATH, identity, methods=["GET"]),
    Route(APPS_PATH, guarded(list_apps), methods=["GET"]),
    Route(GPUS_PATH, guarded(list_gpus), methods=["GET"]),
    Route(app_path("{name}"), guarded(get_app), methods=["GET"]),
    Route(app_path("{name}"), guarded(put_app), methods=["PUT"]),
    Route(app_path("{name}"), guarded(delete_app), methods=["DELETE"]),
    Route(cancel_path("{name}"), guarded(cancel_rollout), methods=["POST"]),
    Route(SHUTDOWN_PATH, guarded(shutdown), methods=["POST"]),
]
