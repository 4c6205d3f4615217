"""Deploy a generated project to a target: ``local`` (default), ``docker`` or ``fal``."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..statuses import AppStatus
from .base import (
    Backend,
    Deployment,
    FalDetail,
    LocalDetail,
    Progress,
    crash_loop_summary,
    get_backend,
    held_gpu_line,
)

if TYPE_CHECKING:  # pragma: no cover
    from ..generate.project import AppProject

__all__ = [
    "Backend",
    "Deployment",
    "crash_loop_summary",
    "deploy",
    "get_backend",
    "get_deployment",
    "held_gpu_line",
    "list_apps",
]


def deploy(
    app: str | os.PathLike[str] | AppProject,
    target: str = "local",
    wait: bool = True,
    progress: Progress = print,
    env: str | None = None,
    **options: Any,
) -> Deployment:
    """Deploy a captured app (its name, its project folder's path, or an AppProject).

    ``env`` (local runners): ``"kernel"`` runs them in the kernel's own Python environment as it is,
    ``"isolated"`` in a virtualenv built from requirements.txt; default FAL_NOTEBOOK_LOCAL_ENV, else
    isolated. ``options`` go to the target's backend."""
    from ..generate.project import AppProject
    from ..state import resolve_project

    backend = get_backend(target)
    if env is not None:
        options["env"] = env
    project = app if isinstance(app, AppProject) else AppProject.load(resolve_project(_as_str(app)))
    return backend.deploy(project, wait=wait, progress=progress, **options)


def _as_str(app: str | os.PathLike[str]) -> str:
    return os.fspath(app) if isinstance(app, Path) else str(app)


def get_deployment(name: str) -> Deployment:
    """The recorded deployment of app ``name``, with its current status."""
    from ..errors import NotFoundError

    deployment = Deployment.load(name)
    if deployment is None:
        raise NotFoundError(f"{name!r} has not been deployed. Deploy it with `%fal_deploy {name}`.")
    return deployment.backend.refresh(deployment)


def list_apps(folders: Iterable[str | os.PathLike[str]] = ()) -> list[dict[str, Any]]:
    """Every captured or deployed app: name, mode, path, target, status, endpoint_id; deployed
    apps also have url, queue_url, runners, queued, gpus (each runner's, with its ``line`` to show:
    held_gpu_line) and waiting (local targets) and error. ``folders``
    (e.g. a server root's ``fal_apps/``) are searched for project folders no capture registered."""
    from ..errors import ConfigError
    from ..state import project_folders, read_manifest, registered_projects

    rows: dict[str, dict[str, Any]] = {}
    projects = {**project_folders(folders), **registered_projects()}
    for name, path in sorted(projects.items()):
        try:  # the mode comes from the cell (recorded at capture), never from pyproject.toml
            manifest = read_manifest(path)
        except ConfigError:  # a broken folder still shows up
            manifest = None
        mode = manifest.config["mode"] if manifest else "unreadable"
        rows[name] = {
            "name": name,
            "mode": mode,
            "path": str(path),
            "target": None,
            "status": "captured",
            "endpoint_id": None,
        }
    by_target: dict[str, list[Deployment]] = {}
    for deployment in Deployment.all():
        by_target.setdefault(deployment.target, []).append(deployment)
    for target, deployments in by_target.items():
        for deployment in get_backend(target).refresh_many(deployments):
            row = rows.setdefault(deployment.name, {"name": deployment.name, "mode": None, "path": deployment.path})
            detail = deployment.detail
            local = detail if isinstance(detail, LocalDetail) else None
            on_fal = detail if isinstance(detail, FalDetail) else None
            row.update(
                target=deployment.target,
                status=deployment.status,
                endpoint_id=deployment.endpoint_id,
                url=deployment.url,
                queue_url=deployment.queue_url,
                runners=local.runners if local else None,
                queued=local.queued if local else None,
                gpus=[{**gpu, "line": held_gpu_line(gpu)} for gpu in local.gpus] if local else [],
                waiting=local.waiting if local else None,
                error=local.error if local else on_fal.last_error if on_fal else None,
                openapi=local.openapi if local else None,
            )
            if deployment.status == AppStatus.CRASH_LOOPING:
                row["crash_loop"] = crash_loop_summary(deployment)
    return [rows[name] for name in sorted(rows)]
