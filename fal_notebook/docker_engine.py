"""The Docker engine, reached through Docker's SDK: one client that answers, or an error that says
how to start the engine. The docker target checks it before a deploy (backends/docker.py); the
gateway builds images and runs containers with it (gateway/images.py, gateway/containers.py)."""

from __future__ import annotations

import docker
import requests

from .errors import DeployError

ENGINE_HINT = (
    "Start the Docker engine (Docker Desktop, `systemctl start docker` or `dockerd`; on a fal-notebook "
    "development machine `.ci/provision --tests` starts it), and check DOCKER_HOST."
)


def engine(timeout: float = 60.0) -> docker.DockerClient:
    """A client of the Docker engine that answers, or a DeployError saying how to start one."""
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except (docker.errors.DockerException, requests.RequestException) as exc:
        raise DeployError(f"No Docker engine answers ({exc}). {ENGINE_HINT}") from None
    return client
