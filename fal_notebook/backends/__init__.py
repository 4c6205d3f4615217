"""Deploy a generated project to a target: ``local`` (default), ``docker`` or ``fal``."""

from __future__ import annotations

import os
from importlib import import_module
from pathlib import Path

from ..errors import ConfigError
from .base import Backend, Deployment, Progress, Target

BACKENDS = {
    "local": "fal_notebook.backends.local:LocalBackend",
    "docker": "fal_notebook.backends.docker:DockerBackend",
    "fal": "fal_notebook.backends.fal:FalBackend",
}

__all__ = ["Backend", "Deployment", "deploy", "get_backend"]


def get_backend(target: str) -> Backend:
    if target not in BACKENDS:
        raise ConfigError(f"Unknown target {target!r} (--target): use one of {', '.join(BACKENDS)}.")
    module, _, cls = BACKENDS[target].partition(":")
    return getattr(import_module(module), cls)()


def deploy(app, target: Target = "local", wait: bool = True, progress: Progress = print, **options) -> Deployment:
    """Deploy a captured app (its name, its project folder's path, or an AppProject).

    ``options`` go to the target's backend, e.g. ``env="kernel"`` for local runners in the
    kernel's own Python environment."""
    from ..generate.project import AppProject
    from ..state import resolve_project

    backend = get_backend(target)
    project = app if isinstance(app, AppProject) else AppProject.load(resolve_project(_as_str(app)))
    return backend.deploy(project, wait=wait, progress=progress, **options)


def _as_str(app) -> str:
    return os.fspath(app) if isinstance(app, Path) else str(app)
