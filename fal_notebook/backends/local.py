"""The embedded default target: runner processes behind the local gateway (``local/<name>``).
The docker target (docker.py) is the same with containers for runners.

The kernel only asks the gateway to deploy and polls its progress; environment builds, runner
start-up and health checks happen in the gateway and its subprocesses.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx

from .. import wire
from ..config import is_public
from ..credentials import user_credentials
from ..errors import ConfigError, DeployCancelled, DeployError, GatewayError
from ..gateway.admin_api import APPS_PATH, AppInfo, DeploySpec, app_path, cancel_path
from ..gateway.control import admin, gateway_running, start_gateway
from ..gateway.paths import app_log_path, base_url, log_path
from ..statuses import SERVING, AppStatus, RevisionStatus
from .base import Backend, Deployment, LocalDetail, Progress, Target, crash_loop_summary
from .hints import failure_hint
from .progress import GatewayProgress, ProgressEvent

if TYPE_CHECKING:  # pragma: no cover
    from ..generate.project import AppProject

#: Default runner environment: "isolated" (a virtualenv from requirements.txt) or "kernel".
ENV_VARIABLE = "FAL_NOTEBOOK_LOCAL_ENV"
LOCAL_ENVS = ("isolated", "kernel")
POLL_INTERVAL = 0.1
#: What a deployment records of each GPU its runners hold.
GPU_KEYS = ("index", "uuid", "name", "memory_mib", "memory_used_mib")
#: A deploy follows the gateway's events with long polls of this many seconds.
WAIT = 1


def choose_env(env: str | None) -> tuple[str, str]:
    """Where local runners run, and why: ``env`` as asked (--env), else FAL_NOTEBOOK_LOCAL_ENV, else
    ``isolated``; ConfigError for another value."""
    if env:
        why = f"--env {env}"
    elif os.environ.get(ENV_VARIABLE, "").strip():
        env = os.environ[ENV_VARIABLE].strip()
        why = f"{ENV_VARIABLE}={env}"
    else:
        env = "isolated"
        why = (
            f"the default; --env kernel (or {ENV_VARIABLE}=kernel) uses this Python environment as it is, "
            "with nothing to install: the way without network"
        )
    if env not in LOCAL_ENVS:
        raise ConfigError(f"env={env!r} ({why}): use one of {', '.join(LOCAL_ENVS)}.")
    return env, why


def default_env() -> str:
    """Where local runners run when a deploy does not say (FAL_NOTEBOOK_LOCAL_ENV, else isolated;
    a bad value is reported by the deploy)."""
    try:
        return choose_env(None)[0]
    except ConfigError:
        return "isolated"


class LocalBackend(Backend):
    """Deploys to local runners. ``env="kernel"`` runs them in the kernel's own Python environment
    (fast, nothing installed); the default ``"isolated"`` builds a cached virtualenv from the
    project's requirements, so a missing requirement fails here rather than after a cloud build."""

    target: Target = "local"

    def __init__(self, env: str | None = None):
        self.env = env

    def deploy(
        self,
        project: AppProject,
        *,
        wait: bool = True,
        progress: Progress = print,
        cancel: threading.Event | None = None,
        env: str | None = None,
    ) -> Deployment:
        env, why = choose_env(env or self.env)
        where = (
            f"the kernel's Python environment as it is ({sys.executable}; nothing installed)"
            if env == "kernel"
            else "an isolated virtualenv built from requirements.txt (cached)"
        )
        progress(ProgressEvent(f"Runners use {where}: {why}.", "environment"))  # the gateway starts the step
        return self._deploy(project, env, sys.executable, wait=wait, progress=progress, cancel=cancel)

    def _deploy(
        self,
        project: AppProject,
        env: str,
        python: str,
        *,
        wait: bool,
        progress: Progress,
        cancel: threading.Event | None,
    ) -> Deployment:
        """Ask the gateway to run the project's runners in ``env``, and follow its progress."""
        start_gateway()
        secrets, missing = {}, []
        for name in project.config.secrets or ():
            if name in os.environ:
                secrets[name] = os.environ[name]
            else:
                missing.append(name)
        if missing:
            progress(f"Note: secret {', '.join(missing)} is not set in this environment; the runners will not have it.")
        credentials = _fal_credentials()
        if credentials is not None:  # what fal's runners have: fal's toolkit uploads outputs with it
            secrets.setdefault("FAL_KEY", credentials.key)
        # packages the kernel imports through its PYTHONPATH, runners in its environment import too
        python_path = os.environ.get("PYTHONPATH", "") if env == "kernel" else ""
        spec = DeploySpec(str(project.path), env, python, secrets, python_path)
        with admin() as client:
            response = client.put(app_path(project.name), json=spec.body())
        if response.status_code != 202:
            raise DeployError(f"The gateway refused to deploy {project.name}: {_detail(response)}")
        info = AppInfo.from_json(response.json())
        deployment = _deployment(self.target, project.name, str(project.path), info, env=env)
        deployment.save()
        if not wait:
            progress(f"Deploying {project.name} in the background; `refresh()` or `%fal_apps` shows when it is ready.")
            return deployment
        earlier = max((event.seq for event in info.events), default=0)
        return self.wait(deployment, info.requested or 0, progress=progress, since=earlier, cancel=cancel)

    def wait(
        self,
        deployment: Deployment,
        revision: int,
        *,
        progress: Progress = print,
        since: int = 0,
        cancel: threading.Event | None = None,
    ) -> Deployment:
        """Show the gateway's progress (events after ``since``) until ``revision`` serves, or fails:
        DeployError. Setting ``cancel`` stops the rollout (DeployCancelled); a revision that
        served before keeps serving."""
        steps = GatewayProgress(deployment.target)
        asked_to_cancel = False
        while True:
            if cancel is not None and cancel.is_set() and not asked_to_cancel:
                asked_to_cancel = True
                self._cancel(deployment, revision)
            info = _app_info(deployment.name, since, wait=WAIT)
            for event in info.events:
                progress(steps(event.message))
                since = event.seq
            latest = info.latest
            if info.status in SERVING and (info.revision or 0) >= revision:
                break
            if latest is not None and latest.number == revision and latest.status == RevisionStatus.FAILED:
                failed = _deployment(
                    self.target, deployment.name, deployment.path, info, env=local_detail(deployment).env
                )
                failed.status = AppStatus.FAILED if info.revision is None else failed.status
                local_detail(failed).error = latest.error
                failed.save()  # what serves now: an earlier revision (on its own target), or nothing
                kept = "" if info.revision is None else f" Revision {info.revision} ({failed.target}) keeps serving."
                error = str(latest.error)
                raise DeployError(f"Deploying {deployment.name} failed: {error}{failure_hint(error)}{kept}")
            if latest is not None and latest.number > revision:
                progress(f"A newer deploy of {deployment.name} (revision {latest.number}) replaced this one.")
                break
            if not info.events:  # the long poll timed out (or a gateway of an older version answered at once)
                time.sleep(POLL_INTERVAL)
        updated = _deployment(self.target, deployment.name, deployment.path, info, env=local_detail(deployment).env)
        updated.save()
        if updated.status == AppStatus.CRASH_LOOPING:
            progress(ProgressEvent(f"{updated.endpoint_id} is crash-looping: {crash_loop_summary(updated)}", "ready"))
        else:
            progress(
                ProgressEvent(f"{updated.endpoint_id} is ready: {updated.url} (queue: {updated.queue_url})", "ready")
            )
        auth = local_detail(updated).auth
        if not is_public(auth):
            progress(
                ProgressEvent(
                    f"{updated.endpoint_id} is {auth}: callers send `{wire.AUTHORIZATION}: "
                    f"{wire.key_header('<key>')}` with the gateway's key (fal_notebook.gateway.gateway_key()).",
                    "ready",
                )
            )
        return updated

    def _cancel(self, deployment: Deployment, revision: int) -> None:
        """Ask the gateway to drop the rollout of ``revision`` and raise DeployCancelled; when the
        rollout already ended (409), return and let the caller see how it ended."""
        with admin() as client:
            response = client.post(cancel_path(deployment.name), json={"revision": revision})
        if response.status_code == 409:
            return
        if response.status_code != 200:
            raise DeployError(f"Cancelling the deploy of {deployment.name} failed: {_detail(response)}")
        self.refresh(deployment)
        serving = response.json().get("revision")
        kept = f" Revision {serving} keeps serving." if serving else ""
        raise DeployCancelled(f"The deploy of {deployment.name} (revision {revision}) was cancelled.{kept}")

    def logs(
        self, deployment: Deployment, *, follow: bool = False, stop: threading.Event | None = None
    ) -> Iterator[str]:
        """The app's log: runner output, deploy and scaling events (with ``follow``, until interrupted
        or ``stop`` is set)."""
        path = app_log_path(deployment.name)
        if not path.exists():
            return
        f = path.open(errors="replace")
        partial = ""
        try:
            while True:
                chunk = f.readline()
                if chunk.endswith("\n"):
                    yield (partial + chunk).rstrip("\n")
                    partial = ""
                    continue
                partial += chunk
                if not follow:
                    if partial:
                        yield partial
                    return
                if path.exists() and os.stat(path).st_ino != os.fstat(f.fileno()).st_ino:  # rotated
                    f.close()
                    f = path.open(errors="replace")
                if stop is not None and stop.wait(POLL_INTERVAL):
                    return
                if stop is None:
                    time.sleep(POLL_INTERVAL)
        finally:
            f.close()

    def stop(self, deployment: Deployment) -> None:
        if not gateway_running():
            return
        with admin() as client:
            response = client.delete(app_path(deployment.name))
        if response.status_code not in (200, 404):
            raise DeployError(f"Stopping {deployment.name} failed: {_detail(response)}")

    def refresh(self, deployment: Deployment) -> Deployment:
        if not gateway_running():
            return _gateway_down(deployment)
        try:
            info = _app_info(deployment.name, since=1 << 62)
        except DeployError:
            deployment.status = AppStatus.STOPPED
            return deployment
        return _updated(deployment, info)

    def refresh_many(self, deployments: list[Deployment]) -> list[Deployment]:
        """Every deployment's current state from one question to the gateway."""
        if not deployments:
            return []
        if not gateway_running():
            return [_gateway_down(d) for d in deployments]
        with admin() as client:
            infos = {info.name: info for info in map(AppInfo.from_json, client.get(APPS_PATH).json())}
        refreshed = []
        for deployment in deployments:
            if deployment.name in infos:
                refreshed.append(_updated(deployment, infos[deployment.name]))
            else:
                deployment.status = AppStatus.STOPPED
                refreshed.append(deployment)
        return refreshed


def _gateway_down(deployment: Deployment) -> Deployment:
    deployment.status = AppStatus.STOPPED
    local_detail(deployment).gateway = "not running (fal-notebook gateway start restores deployed apps)"
    return deployment


def _updated(deployment: Deployment, info: AppInfo) -> Deployment:
    """The deployment as the gateway's ``info`` describes it (its record rewritten if that changed)."""
    updated = _deployment(deployment.target, deployment.name, deployment.path, info, env=local_detail(deployment).env)
    if updated != deployment:
        updated.save()
    return updated


def local_detail(deployment: Deployment) -> LocalDetail:
    """The detail of a deployment behind the gateway (what this backend records)."""
    if not isinstance(deployment.detail, LocalDetail):
        raise DeployError(f"{deployment.name} is deployed on {deployment.target}, not behind the local gateway.")
    return deployment.detail


def _app_info(name: str, since: int, *, wait: int = 0) -> AppInfo:
    """The app's state with its events after ``since`` (``wait``: the gateway answers once there are
    some, at the latest after ``wait`` seconds)."""
    params = {"since": since, **({"wait": wait} if wait else {})}
    try:
        with admin() as client:
            response = client.get(app_path(name), params=params)
    except httpx.TransportError:
        raise GatewayError(
            f"The gateway stopped answering (its log: {log_path()}). `fal-notebook gateway start` restarts "
            "it with the deployed apps."
        ) from None
    if response.status_code != 200:
        raise DeployError(f"The gateway does not know {name}: {_detail(response)}")
    return AppInfo.from_json(response.json())


def _deployment(target: Target, name: str, path: str, info: AppInfo, *, env: str | None) -> Deployment:
    """The deployment as the gateway describes it. Its target is that of the revision serving, if
    one does (a failed Docker deploy leaves the local revision serving: the app is not on Docker)."""
    endpoint_id = wire.local_app(name)
    url, queue_url = wire.app_urls(base_url(), endpoint_id)
    if info.revision is not None:
        target = "docker" if info.image else "local"
    return Deployment(
        name=name,
        target=target,
        endpoint_id=endpoint_id,
        url=url,
        queue_url=queue_url,
        status=info.status,
        path=path,
        detail=LocalDetail(
            revision=info.revision,
            env=env,
            auth=info.auth,
            runners=len(info.runners),
            queued=info.queued,
            image=info.image or None,
            notes=info.notes,
            error=info.error or _failed_deploy(info),
            next_attempt=info.next_attempt,
            last_exit=info.last_exit if info.status == AppStatus.CRASH_LOOPING else None,
            openapi=info.openapi,
            gpus=[
                {**{k: gpu.get(k) for k in GPU_KEYS}, "runner": runner.id}
                for runner in info.runners
                for gpu in runner.gpus
            ],
            waiting=info.waiting,
        ),
    )


def _failed_deploy(info: AppInfo) -> str | None:
    """The error of the last deploy when it failed while an earlier revision serves on."""
    latest = info.latest
    if latest is not None and latest.status == RevisionStatus.FAILED and latest.number != info.revision:
        return f"the deploy of revision {latest.number} failed: {latest.error}"
    return None


def _detail(response: httpx.Response) -> str:
    """The gateway's error detail, as text."""
    try:
        detail, _ = wire.decode_error(response.json())
    except ValueError:
        return response.text
    return str(detail)


def _fal_credentials():
    """The user's fal key, if any (a malformed one is fal's to report, at a fal deploy)."""
    try:
        return user_credentials()
    except ConfigError:
        return None
