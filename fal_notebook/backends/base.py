"""The one Backend interface (files → Deployment) and the Deployment record every target returns."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ..state import home, read_json, write_json_atomic

if TYPE_CHECKING:  # pragma: no cover
    from ..generate.project import AppProject

Target = Literal["local", "docker", "fal"]
Status = Literal["deploying", "ready", "failed", "crash-looping", "stopped"]
#: Receives progress lines; backends send ProgressEvents (str with a step, see progress.py).
Progress = Callable[[str], None]


def _records_dir():
    return home() / "deployments"


@dataclass
class Deployment:
    """A deployed app: where it runs and how to reach it. Returned by every backend."""

    name: str
    target: Target
    endpoint_id: str
    url: str
    queue_url: str
    status: Status
    path: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    # -- persistence: one JSON record per app name, so every front end sees the same state ----
    def save(self) -> None:
        write_json_atomic(_records_dir() / f"{self.name}.json", asdict(self))

    @classmethod
    def load(cls, name: str) -> Deployment | None:
        data = read_json(_records_dir() / f"{name}.json", None)
        return cls(**data) if data else None

    @classmethod
    def all(cls) -> list[Deployment]:
        folder = _records_dir()
        if not folder.is_dir():
            return []
        return [cls(**read_json(p, {})) for p in sorted(folder.glob("*.json"))]

    # -- operations, delegated to the target's backend -----------------------------------------
    @property
    def backend(self) -> Backend:
        from . import get_backend

        return get_backend(self.target)

    def logs(self, follow: bool = False, stop: threading.Event | None = None) -> Iterator[str] | list[str]:
        lines = self.backend.logs(self, follow=follow, stop=stop)
        return lines if follow else list(lines)

    def stop(self) -> None:
        self.backend.stop(self)
        self.status = "stopped"
        self.save()

    def client(self, key: str | None = None):
        """A client of the app: on fal through fal's hosts with FAL_KEY, else through the gateway."""
        from ..client import connect
        from ..protocol import fal_address

        return connect(fal_address(self.endpoint_id) if self.target == "fal" else self.url, key=key)

    def playground(self, endpoint: str = "/"):
        from ..widgets.playground import Playground

        return Playground(self, endpoint=endpoint)

    def _repr_mimebundle_(self, **kwargs: Any) -> dict:
        from ..widgets.deployment import deployment_view

        bundle = deployment_view(self)._repr_mimebundle_(**kwargs)
        return {**bundle, "text/plain": repr(self)}

    def __repr__(self) -> str:
        return (
            f"Deployment(name={self.name!r}, target={self.target!r}, status={self.status!r}, "
            f"endpoint_id={self.endpoint_id!r}, url={self.url!r})"
        )


class Backend(ABC):
    """Puts a generated project on runners. One subclass per target."""

    target: Target

    @abstractmethod
    def deploy(
        self,
        project: AppProject,
        *,
        wait: bool = True,
        progress: Progress = print,
        cancel: threading.Event | None = None,
    ) -> Deployment:
        """Deploy (or redeploy: same name replaces, never duplicates) and record the Deployment.
        Setting ``cancel`` stops the deploy where it is (DeployCancelled)."""

    @abstractmethod
    def logs(
        self, deployment: Deployment, *, follow: bool = False, stop: threading.Event | None = None
    ) -> Iterator[str]:
        """The app's log lines; with ``follow``, keep yielding new ones until interrupted or ``stop``
        is set."""

    @abstractmethod
    def stop(self, deployment: Deployment) -> None:
        """Stop the app's runners; the record stays, with status ``stopped``."""

    def refresh(self, deployment: Deployment) -> Deployment:
        """The deployment with its current status (default: as recorded)."""
        return deployment

    def refresh_many(self, deployments: list[Deployment]) -> list[Deployment]:
        """Several deployments of this target refreshed (a backend may ask once for all)."""
        return [self.refresh(d) for d in deployments]
