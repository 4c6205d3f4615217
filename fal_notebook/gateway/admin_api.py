"""The gateway's admin API, stated once: its paths and its bodies, for the gateway that serves it
(``admin.py``) and the kernel that calls it (``control.py``, ``backends/local.py``).

This and ``control.py`` and ``paths.py`` are the kernel's whole view of the gateway
(tests/test_architecture.py holds it so): nothing here imports the gateway's process side, so a
kernel that deploys to the local target never loads runners, stores or Docker's SDK.

::

    GET    <PREFIX>/identity                   which state directory this gateway serves
    GET    <PREFIX>/apps                       every app's state (AppInfo, without events)
    PUT    <PREFIX>/apps/<name>                deploy/redeploy (a DeploySpec); an AppInfo with ``requested``
    GET    <PREFIX>/apps/<name>[?since=<seq>][&wait=<s>]
                                               an AppInfo with the events after <seq> (with wait: once
                                               there are some, or after <s> seconds)
    DELETE <PREFIX>/apps/<name>                stop the app's runners
    POST   <PREFIX>/apps/<name>/cancel         drop the rollout {"revision": N}; 409 if none
    GET    <PREFIX>/gpus                       the GPUs it hands out and who holds each (gpus.py)
    POST   <PREFIX>/shutdown                   stop the gateway
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..statuses import AppStatus, RevisionStatus, RunnerState

#: What the gateway's identity endpoint calls itself, so that other programs on the port are told apart.
SERVICE = "fal-notebook-gateway"
PREFIX = "/_fal_notebook"
IDENTITY_PATH = f"{PREFIX}/identity"
APPS_PATH = f"{PREFIX}/apps"
SHUTDOWN_PATH = f"{PREFIX}/shutdown"
GPUS_PATH = f"{PREFIX}/gpus"


def app_path(name: str) -> str:
    return f"{APPS_PATH}/{name}"


def cancel_path(name: str) -> str:
    """Where a rollout of app ``name`` is cancelled."""
    return f"{app_path(name)}/cancel"


#: Where runners run: a cached virtualenv, the kernel's own environment, or a Docker container.
ENV_KINDS = ("isolated", "kernel", "docker")


@dataclass
class DeploySpec:
    """What a deploy asks for: the project folder, the runners' environment, the kernel's Python
    (not used by docker runners), and the values of the app's secrets (kept in memory only)."""

    path: str
    env: str = "isolated"  # one of ENV_KINDS
    python: str = ""
    secrets: dict[str, str] = field(default_factory=dict, repr=False)
    python_path: str = ""  # the kernel's PYTHONPATH, for runners in its environment

    def public(self) -> dict[str, str]:
        """The spec without the secrets' values (what the gateway records)."""
        return {"path": self.path, "env": self.env, "python": self.python, "python_path": self.python_path}

    def body(self) -> dict[str, Any]:
        """The deploy's body, the secrets' values included (sent to the gateway with its key, over loopback)."""
        return {**self.public(), "secrets": dict(self.secrets)}

    @classmethod
    def from_body(cls, data: Any) -> DeploySpec:
        """The spec in a deploy's body; ValueError saying what is wrong."""
        if not isinstance(data, dict) or not isinstance(data.get("path"), str):
            raise ValueError("Expected a JSON object with 'path', 'env', 'python', 'secrets'.")
        env = data.get("env", "isolated")
        if env not in ENV_KINDS:
            raise ValueError(f"env must be one of {', '.join(ENV_KINDS)}, got {env!r}.")
        secrets = data.get("secrets") or {}
        if not isinstance(secrets, dict):
            raise ValueError(f"secrets must be an object of names and values, got {type(secrets).__name__}.")
        python = str(data.get("python") or "")
        if not python and env != "docker":
            raise ValueError("'python' (the interpreter runners use or build their environment from) is required.")
        python_path = str(data.get("python_path") or "")
        return cls(data["path"], env, python, {str(k): str(v) for k, v in secrets.items()}, python_path)


@dataclass(frozen=True)
class Event:
    """A deploy or runtime event of an app, numbered (``seq``) so that a follower asks for what came after."""

    seq: int
    time: float
    message: str


@dataclass(frozen=True)
class RevisionInfo:
    number: int
    status: RevisionStatus
    error: str | None = None


@dataclass(frozen=True)
class RunnerInfo:
    id: str
    revision: int
    state: RunnerState
    port: int | None = None
    pid: int | None = None
    in_flight: int = 0
    #: The GPUs it holds: index, uuid, name, memory_mib, memory_used_mib (None where NVML does not say).
    gpus: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class AppInfo:
    """An app's state in the gateway."""

    name: str
    status: AppStatus
    error: str | None = None
    failures: int = 0  # runner failures in a row
    last_exit: str | None = None  # the last failure, in one line
    next_attempt: float | None = None  # crash-looping: when a runner starts again (epoch seconds)
    revision: int | None = None  # the serving revision
    deploying: int | None = None  # the revision rolling out
    latest: RevisionInfo | None = None
    mode: str | None = None
    auth: str | None = None
    env: str | None = None
    image: str | None = None
    path: str | None = None
    notes: list[str] = field(default_factory=list)
    openapi: bool | None = None  # whether the serving revision serves an OpenAPI schema
    queued: int = 0  # requests waiting for a runner
    runners: list[RunnerInfo] = field(default_factory=list)
    waiting: str | None = None  # why a runner waits to start (a GPU none has free)
    events: list[Event] = field(default_factory=list)
    #: The answer to a deploy only: the revision it rolls out.
    requested: int | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AppInfo:
        """An app's state as a gateway gave it (keys it lacks take their defaults; a status this
        version does not know is ``deploying``)."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        status = data.get("status")
        values["status"] = AppStatus(status) if status in set(AppStatus) else AppStatus.DEPLOYING
        latest = data.get("latest")
        values["latest"] = _typed(RevisionInfo, latest) if isinstance(latest, Mapping) else None
        values["runners"] = [_typed(RunnerInfo, r) for r in data.get("runners") or ()]
        values["events"] = [_typed(Event, e) for e in data.get("events") or ()]
        values["notes"] = list(data.get("notes") or ())
        return cls(**values)


def _typed(kind: type[Any], data: Mapping[str, Any]) -> Any:
    return kind(**{f.name: data[f.name] for f in dataclasses.fields(kind) if f.name in data})
