"""Deploy a generated project to a target: ``local`` (default), ``docker`` or ``fal``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import FalNotebookError
from .base import Backend, Deployment, Progress, get_backend

if TYPE_CHECKING:  # pragma: no cover
    from ..generate.project import AppProject

__all__ = ["Backend", "Deployment", "deploy", "get_backend", "get_deployment", "list_apps"]


def deploy(
    app: str | os.PathLike[str] | AppProject,
    target: str = "local",
    wait: bool = True,
    progress: Progress = print,
    **options: Any,
) -> Deployment:
    """Deploy a captured app (its name, its project folder's path, or an AppProject).

    ``options`` go to the target's backend, e.g. ``env="kernel"`` for local runners in the
    kernel's own Python environment."""
    from ..generate.project import AppProject
    from ..state import resolve_project

    backend = get_backend(target)
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


def list_apps() -> list[dict[str, Any]]:
    """Every captured or deployed app: name, mode, path, target, status, endpoint_id."""
    from ..generate.project import AppProject
    from ..state import registered_projects

    rows: dict[str, dict[str, Any]] = {}
    for name, path in registered_projects().items():
        try:
            mode = AppProject.load(path).mode
        except (FalNotebookError, OSError, ValueError, KeyError):  # a broken folder still shows up
            mode = "unreadable"
        rows[name] = {
            "name": name,
            "mode": mode,
            "path": str(path),
            "target": None,
            "status": "captured",
            "endpoint_id": None,
        }
    for deployment in Deployment.all():
        deployment = deployment.backend.refresh(deployment)
        row = rows.setdefault(deployment.name, {"name": deployment.name, "mode": None, "path": deployment.path})
        row.update(target=deployment.target, status=deployment.status, endpoint_id=deployment.endpoint_id)
    return [rows[name] for name in sorted(rows)]
