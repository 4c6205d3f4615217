"""An app's revisions: each deploy is one, with its snapshot and how its runners start. Which one
serves (``current``) and which one rolls out (``rolling``) is read by every room of the runtime and
changed only by the rollouts (rollout.py)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ...config import DEFAULT_AUTH, AppConfig
from ...statuses import RevisionStatus
from ..admin_api import DeploySpec
from ..images import remove_image
from ..runners import Launch
from ..settings import Settings
from ..supervisor import Supervisor


@dataclass
class Build:
    """A revision made ready to run: its config, how its runners start, notes for the user."""

    config: AppConfig
    launch: Launch
    notes: list[str]


@dataclass
class Revision:
    number: int
    digest: str
    spec: DeploySpec
    snapshot: Path
    config: AppConfig | None = None  # known once it is built
    settings: Settings = field(default_factory=Settings)
    launch: Launch | None = None
    openapi: bytes | None = None
    status: RevisionStatus = RevisionStatus.DEPLOYING
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    def apply(self, build: Build) -> None:
        """It is built: its runners can start."""
        self.config, self.launch, self.notes = build.config, build.launch, build.notes
        self.settings = Settings.from_config(build.config, single_runner=build.launch.fixed_port is not None)


class Revisions:
    """Every revision of an app still in use, the serving one and the one rolling out."""

    def __init__(self, tasks: Supervisor, *, auth: str | None = None):
        self.tasks = tasks
        #: Who may call the app: the serving revision's auth mode (as last recorded, until one is built).
        self.auth = auth or DEFAULT_AUTH
        self.all: dict[int, Revision] = {}
        self.current: Revision | None = None
        self.rolling: Revision | None = None

    def add(self, revision: Revision) -> Revision:
        self.all[revision.number] = revision
        return revision

    def get(self, number: int) -> Revision | None:
        return self.all.get(number)

    @property
    def settings(self) -> Settings:
        """The serving revision's settings (fal's defaults while none serves)."""
        return self.current.settings if self.current is not None else Settings()

    @property
    def latest(self) -> Revision | None:
        return max(self.all.values(), key=lambda r: r.number, default=None)

    def wanted(self, revision: Revision) -> bool:
        """Whether the revision serves or rolls out (else its runners are leftovers)."""
        return revision is self.current or revision is self.rolling

    def forget_unused(self, running: Iterable[int]) -> None:
        """Forget revisions that neither serve nor roll out nor have ``running`` runners: their
        snapshots and images go, in the background."""
        keep = set(running) | {rev.number for rev in (self.current, self.rolling) if rev is not None}
        for number, rev in list(self.all.items()):
            if number in keep or rev.status == RevisionStatus.DEPLOYING:
                continue
            del self.all[number]
            if rev.snapshot.is_dir():
                self.tasks.spawn(asyncio.to_thread(_remove_tree, rev.snapshot), name=f"remove {rev.snapshot}")
            image = rev.launch.image if rev.launch else None
            if image and image not in {r.launch.image for r in self.all.values() if r.launch}:
                self.tasks.spawn(asyncio.to_thread(remove_image, image), name=f"remove image {image}")


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
