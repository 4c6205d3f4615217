"""The docker target: the project's image, built by the real Docker engine, runs behind the local gateway.

A docker deployment is a local deployment whose runners are containers: the same endpoint
(``local/<name>``), protocol, queue, scaling, retries, logs and auth. The gateway builds the image
(``fal-notebook/<name>:<content hash>``, so unchanged code is never rebuilt) and runs one
``docker run`` per runner (``gateway/images.py``, ``gateway/containers.py``); this class only checks that an
engine answers (``docker_engine.py``) and hands the deploy to the gateway.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from ..docker_engine import engine
from ..errors import ConfigError
from .base import Deployment, Progress
from .local import LocalBackend

if TYPE_CHECKING:  # pragma: no cover
    from ..generate.project import AppProject


class DockerBackend(LocalBackend):
    """Deploys to containers of the project's image, behind the local gateway."""

    target = "docker"

    def deploy(
        self,
        project: AppProject,
        *,
        wait: bool = True,
        progress: Progress = print,
        cancel: threading.Event | None = None,
        env: str | None = None,
    ) -> Deployment:
        """``env`` can only be ``docker``: the runners are containers of the project's image."""
        if env not in (None, "docker"):
            raise ConfigError(f"env={env!r}: docker runners run in containers; use target='local' for env={env!r}.")
        engine(timeout=10).close()  # a DeployError that says how to start Docker, before anything else
        return self._deploy(project, "docker", "", wait=wait, progress=progress, cancel=cancel)
