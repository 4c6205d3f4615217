"""Docker runners: the app's image, built once per content, and the ``docker run`` command a runner is.

A runner of a docker deployment is the ``docker run`` client in attached mode: its output is the
container's, it exits when the container does, and its SIGTERM reaches the app (``--init``). A
killed client leaves its container running, so each container is named after its runner and
removed when the runner ends (the launch's ``cleanup``), and labelled with the gateway's state, so
that a gateway starting after a crash removes what the previous one left.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import threading
from collections import deque
from fnmatch import fnmatch
from pathlib import Path
from typing import Callable, Iterator

import docker
import requests
from docker.utils.build import exclude_paths

from ..errors import DeployError
from ..generate.project import AppProject
from .runners import Launch

STATE_LABEL = "org.fal-notebook.state"
APP_LABEL = "org.fal-notebook.app"
REPOSITORY = "fal-notebook/"
ENGINE_HINT = (
    "Start the Docker engine (Docker Desktop, `systemctl start docker` or `dockerd`; on a fal-notebook "
    "development machine `.ci/provision` starts it), and check DOCKER_HOST."
)
_FROM = re.compile(r"^\s*FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?", re.IGNORECASE | re.MULTILINE)
#: Build output that says nothing about the app: the builder's bookkeeping, pip's progress bars.
_BOOKKEEPING = re.compile(r"^( ---> |Removing intermediate container |Successfully (built|tagged) |\s*[━╸])")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_COMMITTED = re.compile(r"^ ---> ([0-9a-f]{12,})$")
OUTPUT_SHOWN = 40


def engine(timeout: float = 60.0) -> docker.DockerClient:
    """A client of the Docker engine that answers, or a DeployError saying how to start one."""
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except (docker.errors.DockerException, requests.RequestException) as exc:
        raise DeployError(f"No Docker engine answers ({exc}). {ENGINE_HINT}") from None
    return client


def repository(name: str) -> str:
    """``fal-notebook/<name>``, spelled as Docker wants image names (no ``_-`` runs, no trailing ``-``)."""
    return REPOSITORY + re.sub(r"[-_]{2,}", "-", name).strip("-_")


def base_images(dockerfile: str) -> list[str]:
    """The images the Dockerfile builds FROM (not its own stages, not ``scratch``)."""
    stages: set[str] = set()
    bases = []
    for match in _FROM.finditer(dockerfile):
        image, alias = match.group(1), match.group(2)
        if image.lower() != "scratch" and image.lower() not in stages and image not in bases:
            bases.append(image)
        if alias:
            stages.add(alias.lower())
    return bases


def context_files(context: Path) -> list[str]:
    """The build context's files as ``docker build`` sends them (``.dockerignore`` applied)."""
    ignore = context / ".dockerignore"
    patterns = []
    if ignore.is_file():
        lines = (line.strip() for line in ignore.read_text().splitlines())
        patterns = [line for line in lines if line and not line.startswith("#")]
    return sorted(p for p in exclude_paths(str(context), patterns, dockerfile="Dockerfile") if (context / p).is_file())


def copied_sources(dockerfile: str) -> list[str]:
    """The context paths (or patterns) that the Dockerfile's COPY and ADD instructions read."""
    sources = []
    for instruction in re.sub(r"\\\n", " ", dockerfile).splitlines():
        words = instruction.split(None, 1)
        if len(words) < 2 or words[0].upper() not in ("COPY", "ADD"):
            continue
        rest = words[1].strip()
        while rest.startswith("--"):
            flag, _, rest = rest.partition(" ")
            if flag.startswith("--from"):
                break
            rest = rest.strip()
        else:
            args = _json_list(rest) or rest.split()
            sources += [source.removeprefix("./") or "." for source in args[:-1]]
    return sources


def _json_list(text: str) -> list[str] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, list) else None


def image_files(context: Path) -> list[str]:
    """The context files the image is made of: the Dockerfile and what it copies."""
    sources = copied_sources((context / "Dockerfile").read_text())

    def copied(path: str) -> bool:
        return any(
            source in (".", "*") or path == source or path.startswith(source.rstrip("/") + "/") or fnmatch(path, source)
            for source in sources
        )

    return ["Dockerfile", *(path for path in context_files(context) if path != "Dockerfile" and copied(path))]


def image_tag(name: str, context: Path, base_ids: list[str]) -> str:
    """``fal-notebook/<name>:<hash>`` of the base images and the files the image copies: the same
    code gives the same tag (a change of scaling keys in pyproject.toml does not rebuild)."""
    digest = hashlib.sha256("\n".join(base_ids).encode())
    for relative in image_files(context):
        digest.update(b"\0" + relative.encode() + b"\0" + (context / relative).read_bytes())
    return f"{repository(name)}:{digest.hexdigest()[:16]}"


def ensure_base_images(client: docker.DockerClient, dockerfile: str, where: Path, on_line: Callable[[str], None]) -> list[str]:
    """The ids of the base images, pulled if missing; a DeployError naming one that cannot be had."""
    ids = []
    for base in base_images(dockerfile):
        try:
            ids.append(client.images.get(base).id)
            continue
        except docker.errors.ImageNotFound:
            pass
        on_line(f"Pulling the base image {base} ...")
        try:
            ids.append(client.images.pull(base).id)
        except docker.errors.APIError as exc:
            raise DeployError(
                f"The base image {base} (FROM in {where}) is not on this machine and cannot be pulled "
                f"({exc.explanation or exc}). Pull or build it (`docker pull {base}`), or capture the app again "
                "with a base image this machine has: `--base-image IMAGE` in the %%fal_app line, or "
                "FAL_NOTEBOOK_BASE_IMAGE=IMAGE."
            ) from None
    return ids


def build_lines(client: docker.DockerClient, context: Path, tag: str, app: str, stop: threading.Event) -> Iterator[str]:
    """Build the image (legacy builder, intermediate containers removed), yielding its progress
    lines; a DeployError with the failing step and its output when it fails."""
    step, output, last_image = "", deque(maxlen=OUTPUT_SHOWN), None
    chunks = client.api.build(
        path=str(context), tag=tag, rm=True, forcerm=True, decode=True, labels={APP_LABEL: app}
    )
    for chunk in chunks:
        if stop.is_set():
            chunks.close()
            return
        if "error" in chunk:
            _remove_untagged(client, last_image)
            shown = "\n".join(output) or "(no output)"
            raise DeployError(
                f"docker build of {app} failed at {step or 'its start'}\n{shown}\n{chunk['error'].strip()}\n"
                "Fix the cell (or its --requirements) and deploy again."
            )
        for line in _ANSI.sub("", chunk.get("stream", "")).splitlines():
            committed = _COMMITTED.match(line)
            last_image = committed.group(1) if committed else last_image
            if line.startswith("Step "):
                step = line
                output.clear()
            elif _BOOKKEEPING.match(line) or not line.strip():
                continue
            else:
                output.append(line)
            yield line


def _remove_untagged(client: docker.DockerClient, image_id: str | None) -> None:
    """Remove what a failed build committed (the legacy builder leaves it as an untagged image)."""
    if image_id is None:
        return
    try:
        if not client.images.get(image_id).tags:
            client.images.remove(image_id)
    except docker.errors.APIError:  # gone, or the parent of something else: leave it
        pass


async def ensure_image(project: AppProject, dockerfile_shown: Path, on_line: Callable[[str], None]) -> str:
    """The tag of the project's image, built unless an image of the same content exists."""
    loop = asyncio.get_running_loop()
    stop = threading.Event()

    def from_thread(line: str) -> None:
        loop.call_soon_threadsafe(on_line, line)

    def work() -> str:
        client = engine()
        try:
            dockerfile = (project.path / "Dockerfile").read_text()
            base_ids = ensure_base_images(client, dockerfile, dockerfile_shown, from_thread)
            tag = image_tag(project.name, project.path, base_ids)
            try:
                client.images.get(tag)
                from_thread(f"Using the image {tag} (built before from the same code).")
                return tag
            except docker.errors.ImageNotFound:
                pass
            from_thread(f"Building the image {tag} (docker build) ...")
            for line in build_lines(client, project.path, tag, project.name, stop):
                from_thread("  " + line)
            return tag
        finally:
            client.close()

    try:
        return await asyncio.to_thread(work)
    finally:
        stop.set()  # a superseded deploy stops the build at its next line


def launch(project: AppProject, image: str, secrets: dict[str, str], *, state_id: str, startup_timeout: float) -> Launch:
    """A runner is ``docker run`` of the image, the app's port published on 127.0.0.1:{port}."""
    docker_cli = shutil.which("docker")
    if docker_cli is None:
        raise DeployError(
            "The `docker` command is not on the gateway's PATH: docker runners are `docker run` processes. "
            "Install Docker's command-line client, then deploy again."
        )
    config = project.config
    argv = [
        docker_cli, "run", "--rm", "--init", "--pull", "never", "--name", "{instance}",
        "--label", f"{STATE_LABEL}={state_id}", "--label", f"{APP_LABEL}={project.name}",
        "--publish", f"127.0.0.1:{{port}}:{config.port}", "--env", f"PORT={config.port}",
    ]
    for name in sorted(secrets):  # the value comes from the client's environment, never the command line
        argv += ["--env", name]
    argv.append(image)
    health = "/health" if project.mode == "app" else (config.health_check.path if config.health_check else None)
    return Launch(
        argv,
        project.path,
        {**os.environ, **secrets},
        health_path=health,
        startup_timeout=startup_timeout,
        cleanup=[docker_cli, "rm", "--force", "{instance}"],
        http_probe=True,
        image=image,
    )


def remove_containers(state_id: str) -> int:
    """Remove the containers a previous gateway of this state left (after a crash); how many."""
    try:
        client = engine(timeout=10)
    except DeployError:
        return 0  # no engine, no containers
    removed = 0
    try:
        for container in client.containers.list(all=True, filters={"label": f"{STATE_LABEL}={state_id}"}):
            try:
                container.remove(force=True)
                removed += 1
            except docker.errors.APIError:
                pass
    finally:
        client.close()
    return removed


def remove_image(tag: str) -> None:
    """Remove an image no revision uses any more (kept if a container still uses it)."""
    try:
        client = engine(timeout=30)
    except DeployError:
        return
    try:
        client.images.remove(tag)
    except docker.errors.APIError:  # not found, or in use
        pass
    finally:
        client.close()
