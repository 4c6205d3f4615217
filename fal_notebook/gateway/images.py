"""Docker images of apps: built once per content by the real engine, as the docker analog of envs.py.

The tag ``fal-notebook/<name>:<hash>`` hashes the base images and the files the Dockerfile copies,
so an unchanged app is never rebuilt and a change of its scaling keys (pyproject.toml) reuses the
image. Builds use the legacy builder (the docker SDK's), removing intermediate containers even
when a step fails; a failed build leaves no image either.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading
from collections import deque
from collections.abc import Callable, Iterator
from fnmatch import fnmatch
from pathlib import Path

import docker
from docker.utils.build import exclude_paths

from ..docker_engine import engine
from ..errors import DeployError
from ..generate.project import AppProject
from .containers import APP_LABEL

OnLine = Callable[[str], None]
REPOSITORY = "fal-notebook/"
_FROM = re.compile(r"^\s*FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?", re.IGNORECASE | re.MULTILINE)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
#: The builder's own bookkeeping: neither shown nor kept.
_BOOKKEEPING = re.compile(r"^( ---> |Removing intermediate container |Successfully (built|tagged) |\s*[━╸])")
#: Installer chatter: kept for a failure's report, not shown while building.
_CHATTER = re.compile(r"^\s*(Collecting |Downloading |Using cached |Requirement already satisfied|Obtaining )")
_COMMITTED = re.compile(r"^ ---> ([0-9a-f]{12,})$")
OUTPUT_SHOWN = 40


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
    paths = exclude_paths(str(context), patterns, dockerfile="Dockerfile")
    return sorted(path for path in paths if (context / path).is_file())


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

    return ["Dockerfile", *(p for p in context_files(context) if p != "Dockerfile" and copied(p))]


def image_tag(name: str, context: Path, base_ids: list[str]) -> str:
    """``fal-notebook/<name>:<hash of the base images and the files the image copies>``."""
    digest = hashlib.sha256("\n".join(base_ids).encode())
    for relative in image_files(context):
        digest.update(b"\0" + relative.encode() + b"\0" + (context / relative).read_bytes())
    return f"{repository(name)}:{digest.hexdigest()[:16]}"


def ensure_base_images(client: docker.DockerClient, dockerfile: str, where: Path, on_line: OnLine) -> list[str]:
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
                f"({exc.explanation or exc}). Pull or build it (`docker pull {base}`), or capture the app "
                "again with a base image this machine has: `--base-image IMAGE` in the %%fal_app line, or "
                "FAL_NOTEBOOK_BASE_IMAGE=IMAGE."
            ) from None
    return ids


def build_lines(client: docker.DockerClient, context: Path, tag: str, app: str, stop: threading.Event) -> Iterator[str]:
    """Build the image, yielding the lines worth showing (its steps, the installers' summaries);
    a DeployError with the failing step and its output when it fails."""
    step, last_image = "", None
    output: deque[str] = deque(maxlen=OUTPUT_SHOWN)
    chunks = client.api.build(path=str(context), tag=tag, rm=True, forcerm=True, decode=True, labels={APP_LABEL: app})
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
                if _CHATTER.match(line):
                    continue
            yield line.strip()


def _remove_untagged(client: docker.DockerClient, image_id: str | None) -> None:
    """Remove what a failed build committed (the legacy builder leaves it as an untagged image)."""
    if image_id is None:
        return
    try:
        if not client.images.get(image_id).tags:
            client.images.remove(image_id)
    except docker.errors.APIError:  # gone, or the parent of something else: leave it
        pass


async def ensure_image(project: AppProject, dockerfile_shown: Path, on_line: OnLine) -> str:
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


def remove_image(tag: str) -> None:
    """Remove an image no revision uses any more (kept while a container uses it)."""
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
