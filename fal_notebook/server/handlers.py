"""REST handlers: parse the request, call the Python API (in a thread), answer JSON or stream events.

Every route is authenticated and authorized on the resource ``fal-notebook`` (``read`` for what
only looks, ``write`` for what changes files or stops apps, ``execute`` for deploys, which run the
app's code). Paths a client sends are relative to the server's root and must stay inside it;
project folders are changed only when they are inside it.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import tornado.web
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado.http1connection import HTTP1Connection
from tornado.iostream import StreamClosedError

from .. import backends, wire
from ..backends.local import LOCAL_ENVS, default_env
from ..capture.notebook import cells_of, describe_app_cells, export_cells, export_notebook, notebook_in, path_in
from ..errors import ConfigError, FalNotebookError, GatewayError, NotFoundError
from ..generate.project import AppProject, config_schema, reconfigure
from ..jobs import AlreadyDeploying, DeployJob, Jobs, RecordedJob
from ..state import resolve_project
from ..watch import Watch
from ..wire import EVENT_STREAM, KEEPALIVE

NAME = r"(?P<name>[a-z0-9][a-z0-9_-]{0,62})"
JOB = r"(?P<job_id>[0-9a-f]{16})"
RESOURCE = "fal-notebook"
#: A comment line this often keeps an idle event stream open through proxies.
HEARTBEAT = 15.0


class Context:
    """What the handlers share: the server's root, the deploy jobs and the watch over the apps."""

    def __init__(self, root: Path):
        self.root = root.expanduser().resolve()
        self.watch = Watch(self.snapshot)
        self.jobs = Jobs(on_change=self.watch.poke)

    @property
    def folders(self) -> list[Path]:
        """Where projects not registered by a capture are found: the root's ``fal_apps/``."""
        return [self.root / "fal_apps"]

    def project(self, name: str) -> Path:
        """The project folder of app ``name``, for what changes or runs it (deploy, configure): only
        one inside the server's root (a capture elsewhere registers its folder for the kernel)."""
        path = resolve_project(name, self.folders)
        if not path.resolve().is_relative_to(self.root):
            raise ConfigError(
                f"{name} lives in {path}, outside the Jupyter server's root {self.root}: the panel deploys and "
                "changes only projects inside it. Deploy it from its notebook (%fal_deploy) or the CLI."
            )
        return path

    def relative(self, path: str | None) -> str | None:
        """``path`` relative to the root (as the file browser names it), None if outside."""
        if not path:
            return None
        resolved = Path(path).resolve()
        return resolved.relative_to(self.root).as_posix() if resolved.is_relative_to(self.root) else None

    def apps(self) -> list[dict[str, Any]]:
        return [{**row, "relpath": self.relative(row.get("path"))} for row in backends.list_apps(self.folders)]

    def snapshot(self) -> dict[str, Any]:
        """The apps, the gateway's state, the deploy jobs, and where local runners run unless a
        deploy says (what the panel shows)."""
        from ..gateway.control import gateway_status

        try:
            status = gateway_status()
            gateway = {"running": status.running, "url": status.url, "error": None}
        except GatewayError as exc:
            gateway = {"running": False, "url": None, "error": str(exc)}
        return {"apps": self.apps(), "gateway": gateway, "jobs": self.jobs.summaries(), "local_env": default_env()}


class _Handler(APIHandler):
    auth_resource = RESOURCE

    @property
    def context(self) -> Context:
        return self.settings["fal_notebook"]

    async def call(self, func: Callable[..., Any], *args: Any, status: int = 200, **kwargs: Any) -> None:
        """Run an API call off the event loop and answer its result, or a clear error."""
        try:
            result = await asyncio.to_thread(func, *args, **kwargs)
        except FalNotebookError as exc:
            self.fail(exc)
            return
        self.set_status(status)
        self.finish(json.dumps(result, default=str))

    def fail(self, exc: FalNotebookError) -> None:
        """The error as JSON: ``message``, and ``fields`` (the config keys or request fields it is about)."""
        code = 400
        if isinstance(exc, NotFoundError):
            code = 404
        elif isinstance(exc, AlreadyDeploying):
            code = 409
        elif isinstance(exc, GatewayError):
            code = 503
        self.set_status(code)
        self.finish(json.dumps({"message": str(exc), "fields": getattr(exc, "fields", [])}))

    def body(self) -> dict[str, Any]:
        if not self.request.body:
            return {}
        try:
            data = json.loads(self.request.body)
        except (ValueError, RecursionError) as exc:  # also: numbers over 4,300 digits, deep nesting
            raise tornado.web.HTTPError(400, f"The request body is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise tornado.web.HTTPError(400, "The request body must be a JSON object.")
        return data


class _Stream(_Handler):
    """Server-Sent Events: one ``data:`` line of JSON per event, until the source ends or the client
    leaves (which cancels the source)."""

    _pump: asyncio.Task | None = None

    async def stream(self, events: AsyncIterator[tuple[str, Any]]) -> None:
        self.set_header("Content-Type", EVENT_STREAM)
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")

        async def pump() -> None:
            async for name, data in events:
                self.write(f"event: {name}\ndata: {json.dumps(data, default=str)}\n\n")
                await self.flush()

        try:
            await self.flush()
            self._pump = asyncio.ensure_future(pump())
            while not self._pump.done():
                done, _ = await asyncio.wait({self._pump}, timeout=HEARTBEAT)
                if not done:
                    self.write(KEEPALIVE)
                    await self.flush()
        except StreamClosedError:
            pass
        finally:
            if self._pump is not None:
                self._pump.cancel()
                await asyncio.gather(self._pump, return_exceptions=True)
        connection = self.request.connection
        if isinstance(connection, HTTP1Connection) and not connection.stream.closed():
            self.finish(set_content_type=EVENT_STREAM)

    def on_connection_close(self) -> None:
        if self._pump is not None:
            self._pump.cancel()


async def _threaded(lines: Callable[[threading.Event], Iterator[str]]) -> AsyncIterator[str]:
    """A blocking iterator (given a stop event) read in a thread of its own (it may wait long, so
    not in the shared pool), as an async iterator; leaving the loop sets the stop event."""
    loop, stop = asyncio.get_running_loop(), threading.Event()
    queue: asyncio.Queue[str | FalNotebookError | None] = asyncio.Queue()

    def read() -> None:
        try:
            for line in lines(stop):
                loop.call_soon_threadsafe(queue.put_nowait, line)
                if stop.is_set():
                    break
        except FalNotebookError as exc:
            loop.call_soon_threadsafe(queue.put_nowait, exc)
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, None)  # the end

    threading.Thread(target=read, name="fal-notebook-logs", daemon=True).start()
    try:
        while (item := await queue.get()) is not None:
            if isinstance(item, FalNotebookError):
                raise item
            yield item
    finally:
        stop.set()


# -- the API calls behind the routes (each one is what a route does) ------------------------------
def app_detail(context: Context, name: str) -> dict[str, Any]:
    """One app: its row in the list, its configuration and its files."""
    rows = {row["name"]: row for row in context.apps()}
    if name not in rows:
        raise NotFoundError(f"No app named {name!r}: capture it with %%fal_app {name} first.")
    detail = dict(rows[name])
    try:
        project = AppProject.load(resolve_project(name, context.folders))
    except NotFoundError:
        return detail
    detail.update(
        config=project.config.model_dump(mode="json", exclude_none=True),
        files=sorted(project.files),
        requirements=project.requirements,
    )
    return detail


def stop_app(name: str) -> dict[str, Any]:
    deployment = backends.get_deployment(name)
    deployment.stop()
    return {"name": name, "target": deployment.target, "status": deployment.status}


def app_logs(name: str) -> dict[str, Any]:
    return {"name": name, "lines": list(backends.get_deployment(name).logs())}


def configure_app(context: Context, name: str, changes: dict[str, Any]) -> dict[str, Any]:
    project = reconfigure(context.project(name), changes, root=context.root)
    return {
        "name": name,
        "config": project.config.model_dump(mode="json", exclude_none=True),
        "changed": project.changed,
    }


def capture_notebook(context: Context, relative: str) -> list[dict[str, Any]]:
    notebook = notebook_in(context.root, relative)
    projects = export_notebook(notebook, out_dir=notebook.parent / "fal_apps")
    return [
        {"name": p.name, "mode": p.mode, "path": str(p.path), "relpath": context.relative(str(p.path))}
        for p in projects
    ]


def notebook_cells(data: Any) -> tuple[str, list[tuple[str, str]]]:
    """``{"path": ..., "cells": [{"cell_type", "source"}, ...]}`` checked: the path and the cells."""
    if not isinstance(data, dict) or not isinstance(data.get("path"), str) or not isinstance(data.get("cells"), list):
        raise ConfigError(
            'notebook must be {"path": "<notebook>.ipynb", "cells": [{"cell_type": ..., "source": ...}]}.',
            fields=["notebook"],
        )
    try:
        return data["path"], cells_of(data["cells"], where="notebook.cells")
    except FalNotebookError as exc:
        raise ConfigError(str(exc), fields=["notebook.cells"]) from None


def start_deploy(context: Context, name: str, data: dict[str, Any]) -> dict[str, Any]:
    target = data.get("target", "local")
    if not isinstance(target, str):
        raise ConfigError("target must be one of local, docker, fal.", fields=["target"])
    env = data.get("env")
    if env is not None and env not in LOCAL_ENVS:
        raise ConfigError("env must be kernel or isolated (local runners), or absent.", fields=["env"])
    if data.get("notebook") is None:
        return context.jobs.deploy(name, target, context.project(name), env=env).summary()
    relative, cells = notebook_cells(data["notebook"])
    notebook = path_in(context.root, relative, field="notebook.path")
    if not notebook.parent.is_dir():
        raise NotFoundError(f"No folder for the notebook {relative!r} under the server's root directory.")

    def capture() -> AppProject:
        return export_cells(cells, notebook, notebook.parent / "fal_apps", only=name)[0]

    return context.jobs.deploy(name, target, name, env=env, capture=capture).summary()


def describe_cells(context: Context, data: dict[str, Any]) -> list[dict[str, Any] | None]:
    """``{"cells": [...], "path": "<notebook>.ipynb"}``: each app cell as it would deploy (``path``,
    optional, finds the projects of cells captured before)."""
    sources = data.get("cells")
    if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
        raise ConfigError('Send {"cells": ["<cell source>", ...]}.', fields=["cells"])
    relative = data.get("path")
    notebook = path_in(context.root, relative) if relative is not None else None
    return describe_app_cells(sources, notebook)


# -- routes ---------------------------------------------------------------------------------------
class AppsHandler(_Handler):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        await self.call(self.context.apps)


class AppHandler(_Handler):
    @tornado.web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        await self.call(app_detail, self.context, name)


class EndpointsHandler(_Handler):
    """What the app's Playground offers: its schema's forms, or only the form for any request."""

    @tornado.web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        await self.call(app_endpoints, name)


def app_endpoints(name: str) -> dict[str, Any]:
    from ..widgets.playground import describe_endpoints

    return describe_endpoints(backends.get_deployment(name))


class DeployHandler(_Handler):
    @tornado.web.authenticated
    @authorized("execute")
    async def post(self, name: str) -> None:
        await self.call(start_deploy, self.context, name, self.body(), status=202)


class StopHandler(_Handler):
    @tornado.web.authenticated
    @authorized
    async def post(self, name: str) -> None:
        await self.call(stop_app, name)
        self.context.watch.poke()


class LogsHandler(_Stream):
    @tornado.web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        if self.get_argument("follow", "") not in ("1", "true"):
            await self.call(app_logs, name)
            return
        try:
            deployment = await asyncio.to_thread(backends.get_deployment, name)
        except FalNotebookError as exc:
            self.fail(exc)
            return

        async def lines() -> AsyncIterator[tuple[str, Any]]:
            try:
                async for line in _threaded(lambda stop: iter(deployment.logs(follow=True, stop=stop))):
                    yield "line", line
            except FalNotebookError as exc:
                yield "error", {"message": str(exc)}

        await self.stream(lines())


class ConfigHandler(_Handler):
    @tornado.web.authenticated
    @authorized
    async def put(self, name: str) -> None:
        await self.call(configure_app, self.context, name, self.body())
        self.context.watch.poke()


class ConfigSchemaHandler(_Handler):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        await self.call(config_schema)


class CaptureHandler(_Handler):
    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        path = self.body().get("path")
        if not isinstance(path, str) or not path:
            self.fail(ConfigError('Send {"path": "<notebook>.ipynb"} (relative to the server root).', fields=["path"]))
            return
        await self.call(capture_notebook, self.context, path)
        self.context.watch.poke()


class NotebookAppsHandler(_Handler):
    @tornado.web.authenticated
    @authorized("read")
    async def post(self) -> None:
        await self.call(describe_cells, self.context, self.body())


class JobsHandler(_Handler):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        await self.call(self.context.jobs.summaries)


class _JobHandler(_Stream):
    def job(self, job_id: str) -> DeployJob | RecordedJob | None:
        job = self.context.jobs.get(job_id)
        if job is None:
            self.fail(NotFoundError(f"No deploy job {job_id} (jobs live as long as the Jupyter server)."))
        return job


class JobHandler(_JobHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        job = self.job(job_id)
        if job is not None:
            since = _int(self.get_argument("since", "0"))
            self.finish(json.dumps({**job.summary(), "log": job.events(since)}))


class JobEventsHandler(_JobHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        job = self.job(job_id)
        if job is None:
            return
        since = _int(self.get_argument("since", "0") or self.request.headers.get("Last-Event-ID", "0"))

        async def events() -> AsyncIterator[tuple[str, Any]]:
            async for event in job.follow(since):
                yield "progress", event

        await self.stream(events())


class JobCancelHandler(_JobHandler):
    @tornado.web.authenticated
    @authorized
    async def post(self, job_id: str) -> None:
        job = self.job(job_id)
        if job is not None:
            self.finish(json.dumps({"id": job.id, "cancelling": job.cancel(), "state": job.state}))


class StatusHandler(_Handler):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        await self.call(self.context.snapshot)


class EventsHandler(_Stream):
    """The panel's live view: the snapshot (apps, gateway, jobs) now and each time it changes."""

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        async def snapshots() -> AsyncIterator[tuple[str, Any]]:
            async for snapshot in self.context.watch.follow():
                yield "snapshot", snapshot

        await self.stream(snapshots())


def _int(value: str) -> int:
    return wire.parse_count(value) or 0


ROUTES: Iterable[tuple[str, type[_Handler]]] = [
    (r"apps", AppsHandler),
    (rf"apps/{NAME}", AppHandler),
    (rf"apps/{NAME}/endpoints", EndpointsHandler),
    (rf"apps/{NAME}/deploy", DeployHandler),
    (rf"apps/{NAME}/stop", StopHandler),
    (rf"apps/{NAME}/logs", LogsHandler),
    (rf"apps/{NAME}/config", ConfigHandler),
    (r"config/schema", ConfigSchemaHandler),
    (r"capture", CaptureHandler),
    (r"notebook/apps", NotebookAppsHandler),
    (r"jobs", JobsHandler),
    (rf"jobs/{JOB}", JobHandler),
    (rf"jobs/{JOB}/events", JobEventsHandler),
    (rf"jobs/{JOB}/cancel", JobCancelHandler),
    (r"status", StatusHandler),
    (r"events", EventsHandler),
]
