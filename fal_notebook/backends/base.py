"""The one Backend interface (files → Deployment) and the Deployment record every target returns.

A Deployment is data: where the app runs, how to reach it, and what its target recorded (a typed
``detail`` per target). Its operations go to its target's backend; how it shows in a notebook (its
card, its Playground) is the widget layer's, which depends on this module and never the reverse:
``fal_notebook/__init__.py`` installs the widgets' views (``Deployment.views``).
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from ..config import short_repr
from ..errors import ConfigError
from ..state import home, read_json, write_json_atomic
from ..statuses import AppStatus

if TYPE_CHECKING:  # pragma: no cover
    from ..client import EndpointClient
    from ..generate.project import AppProject
    from ..protocol import Address

Target = Literal["local", "docker", "fal"]
#: Receives progress lines; backends send ProgressEvents (str with a step, see progress.py).
Progress = Callable[[str], None]


def _records_dir() -> Path:
    return home() / "deployments"


@dataclass
class LocalDetail:
    """What a deployment behind the local gateway records (targets ``local`` and ``docker``)."""

    revision: int | None = None  # the gateway's revision of the app that serves
    env: str | None = None  # where runners run: isolated | kernel | docker
    auth: str | None = None
    runners: int = 0
    queued: int = 0  # requests waiting for a runner
    image: str | None = None  # docker: the image the runners run
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    gateway: str | None = None  # why the gateway does not answer, when it does not
    next_attempt: float | None = None  # crash-looping: when the gateway starts a runner again (epoch seconds)
    last_exit: str | None = None  # crash-looping: why the last runner failed
    #: The GPUs its runners hold, one entry per runner and GPU: runner, index, uuid, name, memory_mib,
    #: memory_used_mib (MiB; None where NVML does not say).
    gpus: list[dict[str, Any]] = field(default_factory=list)
    waiting: str | None = None  # why a runner waits to start (a GPU none has free)
    openapi: bool | None = None  # whether the serving revision serves an OpenAPI schema (the Playground's form)


@dataclass
class FalDetail:
    """What a deployment on fal records: fal's answer, and what the next deploy compares against."""

    revision: str | None = None
    app_name: str | None = None  # fal's name of the app (for `fal apps ...`)
    fal_status: str | None = None
    auth_mode: str | None = None
    playground_urls: dict[str, str] = field(default_factory=dict)
    log_url: str | None = None
    environment: str | None = None
    team: str | None = None
    deployed_at: str | None = None
    module_source: str | None = field(default=None, repr=False)  # the module deployed last
    message: str | None = None
    scaling: dict[str, Any] = field(default_factory=dict)  # the scaling values deployed last
    last_error: str | None = None
    rolled_back_at: str | None = None


Detail = LocalDetail | FalDetail


def crash_loop_summary(deployment: Deployment) -> str:
    """For a crash-looping app: when the gateway tries again, and why its last runner failed (one line)."""
    detail = deployment.detail
    if deployment.status != AppStatus.CRASH_LOOPING or not isinstance(detail, LocalDetail):
        return ""
    when = time.strftime("%H:%M:%S", time.localtime(detail.next_attempt)) if detail.next_attempt else "soon"
    return f"next attempt at {when}; last exit: {detail.last_exit or 'unknown'}"


def gpu_line(gpu: dict[str, Any]) -> str:
    """``GPU 0 NVIDIA H200 (GPU-5b1f0c2e), 3.1 of 140.4 GiB used`` (name and memory where known)."""
    name = f" {gpu['name']}" if gpu.get("name") else ""
    uuid = f" ({gpu['uuid'][:12]})" if gpu.get("uuid") != str(gpu.get("index")) else ""
    used, total = gpu.get("memory_used_mib"), gpu.get("memory_mib")
    memory = f", {used / 1024:.1f} of {total / 1024:.1f} GiB used" if used is not None and total else ""
    return f"GPU {gpu.get('index')}{name}{uuid}{memory}"


def held_gpu_line(gpu: dict[str, Any]) -> str:
    """A GPU and the runner holding it: ``app-r1-1: GPU 0 NVIDIA H200 (GPU-5b1f0c2e), 3.1 of 140.4 GiB used``."""
    return f"{gpu.get('runner')}: {gpu_line(gpu)}"


def detail_type(target: str) -> type[LocalDetail] | type[FalDetail]:
    return FalDetail if target == "fal" else LocalDetail


class DeploymentViews(Protocol):
    """How a notebook shows a deployment; the widget layer provides them."""

    def card(self, deployment: Deployment) -> Any:
        """A displayable summary (an object with ``_repr_mimebundle_``)."""

    def playground(self, deployment: Deployment, endpoint: str) -> Any:
        """The Playground of the deployment's app."""


@dataclass
class Deployment:
    """A deployed app: where it runs and how to reach it. Returned by every backend."""

    name: str
    target: Target
    endpoint_id: str
    url: str
    queue_url: str
    status: AppStatus
    path: str = ""
    detail: Detail = field(default_factory=LocalDetail)  # the target's own type (see __post_init__)
    #: The widget layer's views, installed when ``fal_notebook`` is imported.
    views: ClassVar[DeploymentViews | None] = None

    def __post_init__(self) -> None:
        self.status = AppStatus(self.status)  # a record's string (from JSON)
        kind = detail_type(self.target)
        if not isinstance(self.detail, kind):  # a record's dict (from JSON), or the default of another target
            given: dict[str, Any] = self.detail if isinstance(self.detail, dict) else {}
            self.detail = kind(**{f.name: given[f.name] for f in fields(kind) if f.name in given})

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
        return get_backend(self.target)

    def logs(self, follow: bool = False, stop: threading.Event | None = None) -> Iterator[str] | list[str]:
        lines = self.backend.logs(self, follow=follow, stop=stop)
        return lines if follow else list(lines)

    def stop(self) -> None:
        self.backend.stop(self)
        self.status = AppStatus.STOPPED
        self.save()

    @property
    def address(self) -> Address:
        """Where the app is called: on fal through fal's hosts, else through the gateway's URL."""
        from ..protocol import fal_address, resolve_address

        return fal_address(self.endpoint_id) if self.target == "fal" else resolve_address(self.url)

    def client(self, key: str | None = None) -> EndpointClient:
        """A client of the app: on fal with FAL_KEY, on the gateway with its key."""
        from ..client import connect

        return connect(self.address, key=key)

    # -- views, from the widget layer ---------------------------------------------------------
    def playground(self, endpoint: str = "/") -> Any:
        """The app's Playground widget (``fal_notebook.Playground(deployment, endpoint)``)."""
        return self._views().playground(self, endpoint)

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = self._views().card(self)._repr_mimebundle_(**kwargs)
        return {**bundle, "text/plain": repr(self)}

    def _views(self) -> DeploymentViews:
        if Deployment.views is None:  # pragma: no cover - fal_notebook/__init__.py installs them
            raise RuntimeError("No views of deployments are installed; import fal_notebook first.")
        return Deployment.views

    def __repr__(self) -> str:
        return (
            f"Deployment(name={self.name!r}, target={self.target!r}, status={self.status.value!r}, "
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


#: The backend of each target, imported when first used (docker and fal need their SDKs).
BACKENDS = {
    "local": "fal_notebook.backends.local:LocalBackend",
    "docker": "fal_notebook.backends.docker:DockerBackend",
    "fal": "fal_notebook.backends.fal:FalBackend",
}


def get_backend(target: str) -> Backend:
    if not isinstance(target, str) or target not in BACKENDS:
        raise ConfigError(f"Unknown target {short_repr(target)} (--target): use one of {', '.join(BACKENDS)}.")
    module, _, cls = BACKENDS[target].partition(":")
    backend: Backend = getattr(import_module(module), cls)()
    return backend
