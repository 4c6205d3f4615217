"""REST handlers: parse the request, call the Python API in a thread, answer JSON."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tornado.web
from jupyter_server.base.handlers import APIHandler

from .. import backends
from ..errors import FalNotebookError, NotFoundError
from ..generate.project import AppProject, reconfigure
from ..state import resolve_project

NAME = r"(?P<name>[a-z0-9][a-z0-9_-]{0,62})"


class _Handler(APIHandler):
    async def call(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run an API call off the event loop and answer its result, or a clear error."""
        try:
            result = await asyncio.to_thread(func, *args, **kwargs)
        except NotFoundError as exc:
            raise tornado.web.HTTPError(404, str(exc)) from None
        except FalNotebookError as exc:
            raise tornado.web.HTTPError(400, str(exc)) from None
        self.finish(json.dumps(result, default=str))

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


def app_detail(name: str) -> dict[str, Any]:
    """One app: its row in the list, its configuration and its files."""
    rows = {row["name"]: row for row in backends.list_apps()}
    if name not in rows:
        raise NotFoundError(f"No app named {name!r}: capture it with %%fal_app {name} first.")
    detail = dict(rows[name])
    try:
        project = AppProject.load(resolve_project(name))
    except NotFoundError:
        return detail
    detail.update(
        config=project.config.model_dump(mode="json", exclude_none=True),
        files=sorted(project.files),
        requirements=project.requirements,
    )
    return detail


def deploy_app(name: str, target: str) -> dict[str, Any]:
    progress: list[str] = []
    deployment = backends.deploy(name, target=target, progress=progress.append)
    return {**dataclasses.asdict(deployment), "progress": progress}


def stop_app(name: str) -> dict[str, Any]:
    deployment = backends.get_deployment(name)
    deployment.stop()
    return dataclasses.asdict(deployment)


def app_logs(name: str) -> dict[str, Any]:
    return {"name": name, "lines": list(backends.get_deployment(name).logs())}


def configure_app(name: str, changes: dict[str, Any], root: Path | None = None) -> dict[str, Any]:
    project = reconfigure(resolve_project(name), changes, root=root)
    return {
        "name": name,
        "config": project.config.model_dump(mode="json", exclude_none=True),
        "changed": project.changed,
    }


def capture_notebook(root: Path, relative: str) -> list[dict[str, Any]]:
    from ..capture.notebook import export_notebook, notebook_in

    notebook = notebook_in(root, relative)
    projects = export_notebook(notebook, out_dir=notebook.parent / "fal_apps")
    return [{"name": p.name, "mode": p.mode, "path": str(p.path), "summary": p.summary()} for p in projects]


class AppsHandler(_Handler):
    @tornado.web.authenticated
    async def get(self) -> None:
        await self.call(backends.list_apps)


class AppHandler(_Handler):
    @tornado.web.authenticated
    async def get(self, name: str) -> None:
        await self.call(app_detail, name)


class DeployHandler(_Handler):
    @tornado.web.authenticated
    async def post(self, name: str) -> None:
        await self.call(deploy_app, name, self.body().get("target", "local"))


class StopHandler(_Handler):
    @tornado.web.authenticated
    async def post(self, name: str) -> None:
        await self.call(stop_app, name)


class LogsHandler(_Handler):
    @tornado.web.authenticated
    async def get(self, name: str) -> None:
        await self.call(app_logs, name)


class ConfigHandler(_Handler):
    @tornado.web.authenticated
    async def put(self, name: str) -> None:
        await self.call(configure_app, name, self.body(), Path(self.settings["server_root_dir"]).expanduser())


class CaptureHandler(_Handler):
    @tornado.web.authenticated
    async def post(self) -> None:
        path = self.body().get("path")
        if not isinstance(path, str) or not path:
            raise tornado.web.HTTPError(400, 'Send {"path": "<notebook>.ipynb"} (relative to the server root).')
        await self.call(capture_notebook, Path(self.settings["server_root_dir"]).expanduser(), path)


ROUTES = [
    (r"apps", AppsHandler),
    (rf"apps/{NAME}", AppHandler),
    (rf"apps/{NAME}/deploy", DeployHandler),
    (rf"apps/{NAME}/stop", StopHandler),
    (rf"apps/{NAME}/logs", LogsHandler),
    (rf"apps/{NAME}/config", ConfigHandler),
    (r"capture", CaptureHandler),
]
