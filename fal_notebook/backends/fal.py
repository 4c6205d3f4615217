"""The fal target: ``fal deploy`` run inside the generated project folder, and the operations on
deployed apps (revisions, rollback, scale, logs, stop) through the ``fal`` CLI.

What was deployed last (revision, URLs from fal's answer, scaling values, the module's source) is
kept in the Deployment record's ``detail``: the next deploy describes the code change in
``--message`` and re-applies scaling values that changed.
"""

from __future__ import annotations

import ast
import difflib
import json
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from ..config import AppConfig
from ..credentials import user_credentials
from ..errors import ConfigError, DeployCancelled, DeployError, FalNotebookError
from ..fal_sdk import check_version
from ..generate.project import AppProject
from ..secrets import redact
from ..statuses import AppStatus
from . import fal_checks
from .base import Backend, Deployment, FalDetail, Progress
from .fal_cli import (
    SCALE_FLAGS,
    FalRun,
    command_line,
    deploy_args,
    iter_fal,
    list_rev_args,
    parse_deploy_json,
    parse_json_output,
    parse_table,
    run_fal,
    runner_logs_args,
    runner_stop_args,
    runners_args,
    scale_args,
    set_rev_args,
)
from .fal_errors import explain
from .progress import Kind, ProgressEvent

READY_STATES = {"RUNNING", "IDLE"}
RUNNERS_SINCE = "1h"


class FalBackend(Backend):
    """Deploys to fal's runners. ``environment`` is fal's ``--env`` (default ``FAL_ENV``);
    ``timeout`` bounds each ``fal`` command in seconds (default: none; builds can take long)."""

    target = "fal"

    def __init__(self, *, environment: str | None = None, timeout: float | None = None) -> None:
        self.environment = environment or os.environ.get("FAL_ENV") or None
        self.timeout = timeout

    def deploy(
        self,
        project: AppProject,
        *,
        wait: bool = True,
        progress: Progress = print,
        cancel: threading.Event | None = None,
        env: str | None = None,
    ) -> Deployment:
        if env is not None:
            raise ConfigError(
                f"env={env!r} chooses where local runners run (--target local); fal builds the app's environment "
                "from its requirements."
            )
        config = project.config
        step = "checks"

        def say(message: str, kind: Kind = "log") -> None:
            progress(ProgressEvent(redact(message), step, kind))

        say(f"Checking {config.name} before deploying it to fal...", "step")
        check_version()
        credentials = fal_checks.check_credentials()
        fal_checks.check_pyproject(project)
        fal_checks.check_python_versions(project)
        fal_checks.check_requirements(project, progress=say)
        fal_checks.check_module_imports(project)

        previous = _previous(config.name)
        last = fal_detail(previous) if previous else FalDetail()
        module = (project.path / project.module_file).read_text()
        scaling = scaling_values(config)
        scaling_changed = previous is not None and scaling != last.scaling
        message = describe_change(last.module_source, module, project.module_file)
        args = deploy_args(
            config.name,
            message=message,
            reset_scale=scaling_changed,
            detach=not wait and config.deployment_strategy in (None, "rolling"),
            env=self.environment,
            team=config.team,
        )
        step = "deploy"
        say(f"$ cd {project.path} && {command_line(args)}", "step")
        key = credentials.key if credentials else None
        run = run_fal(args, cwd=project.path, key=key, progress=say, timeout=self.timeout, cancel=cancel)
        if run.cancelled:
            raise DeployCancelled(
                f"The deploy of {config.name} to fal was cancelled (`fal deploy` was stopped); the revision "
                "deployed before, if any, keeps serving."
            )
        if not run.ok or run.report is None:
            error = _failure(run, project)
            _record_failure(previous, project, str(error))
            raise error

        deployment = deployment_from_report(run, project, environment=self.environment)
        detail = fal_detail(deployment)
        detail.module_source, detail.message, detail.scaling = module, message, scaling
        if scaling_changed and not config.app_scale_settings:
            # fal 1.83 takes scaling from pyproject.toml for `fal deploy <name>` and ignores
            # --reset-scale there, so a redeploy would keep the old values: set the new ones.
            applied = self._apply_scaling(deployment, scaling, last.scaling, key, say)
            detail.scaling = scaling if applied else last.scaling
        deployment.save()
        done = "Deployed" if deployment.status == AppStatus.READY else "Rolling out"
        step = "ready"
        say(f"{done} {deployment.endpoint_id} (revision {detail.revision}): {deployment.url}", "step")
        return deployment

    def _apply_scaling(self, deployment: Deployment, new: dict, old: dict, key: str | None, say: Progress) -> bool:
        for removed in sorted(set(old) - set(new)):
            say(f"`{removed}` is no longer set in the cell; fal keeps the deployed value ({old[removed]}).")
        changed = {k: v for k, v in new.items() if old.get(k) != v}
        if not changed:
            return True
        detail = fal_detail(deployment)
        args = scale_args(_app_name(deployment), changed, env=detail.environment, team=detail.team)
        say(f"Scaling values changed since the last deploy: $ {command_line(args)}")
        run = run_fal(args, key=key, progress=say, timeout=self.timeout)
        if not run.ok:
            error = explain(run, app=deployment.name, folder=deployment.path, deploying=False)
            say(f"The app is deployed, but its new scaling values were not applied: {error}")
        return run.ok

    def logs(
        self, deployment: Deployment, *, follow: bool = False, stop: threading.Event | None = None
    ) -> Iterator[str]:
        detail, key = fal_detail(deployment), _key()
        runners = _runners(deployment, key)
        if not runners:
            return iter(())
        if follow:
            newest = min(runners, key=lambda r: r.get("uptime_seconds", 0))
            args = runner_logs_args(newest["runner_id"], follow=True, team=detail.team)
            return (format_log(entry) for entry in _json_lines(iter_fal(args, key=key, stop=stop)))
        entries = []
        for runner in runners:
            run = _checked(runner_logs_args(runner["runner_id"], team=detail.team), deployment, key)
            entries += (parse_json_output(run.lines) or {}).get("logs", [])
        return iter([format_log(e) for e in sorted(entries, key=lambda e: e.get("timestamp", ""))])

    def stop(self, deployment: Deployment) -> None:
        """Scale the app to zero and stop its runners; it stays deployed (a request starts it again,
        ``fal apps delete`` removes it)."""
        detail, key = fal_detail(deployment), _key()
        _checked(
            scale_args(_app_name(deployment), {"min_concurrency": 0}, env=detail.environment, team=detail.team),
            deployment,
            key,
        )
        for runner in _runners(deployment, key):
            if runner.get("state") not in ("TERMINATED", "DEAD", "TERMINATING"):
                _checked(runner_stop_args(runner["runner_id"], team=detail.team), deployment, key)

    def refresh(self, deployment: Deployment) -> Deployment:
        """A detached rollout (``deploying``) is ``ready`` once a runner of its revision is up, and
        ``failed`` if they crash at start. Other states stay as recorded: fal scales apps from
        zero, so an app without runners is no news (and listing apps stays fast)."""
        if deployment.status != AppStatus.DEPLOYING:
            return deployment
        try:
            runners = _runners(deployment, _key())
        except FalNotebookError:
            return deployment
        states = {r.get("state") for r in runners if r.get("revision") == fal_detail(deployment).revision}
        if states & READY_STATES:
            deployment.status = AppStatus.READY
        elif "CRASH_BACKOFF" in states:
            deployment.status = AppStatus.FAILED
        deployment.save()
        return deployment


# -- the Deployment record -------------------------------------------------------------------------
def fal_detail(deployment: Deployment) -> FalDetail:
    """The detail of a deployment on fal (what this backend records)."""
    if not isinstance(deployment.detail, FalDetail):
        raise DeployError(f"{deployment.name} is deployed on {deployment.target}, not on fal.")
    return deployment.detail


def _app_name(deployment: Deployment) -> str:
    """fal's name of the app (a record made before fal answered has the deployment's name)."""
    return fal_detail(deployment).app_name or deployment.name


def scaling_values(config: AppConfig) -> dict[str, Any]:
    """The configured scaling values a fal redeploy would otherwise inherit from the last one."""
    return {k: getattr(config, k) for k in SCALE_FLAGS if getattr(config, k) is not None}


def base_url(urls: dict[str, str]) -> str:
    """The app's base URL from fal's per-endpoint URLs (``{"/": ".../owner/app/", "/x": ...}``)."""
    if "/" in urls:
        return urls["/"].rstrip("/")
    endpoint, url = next(iter(urls.items()))
    return url.removesuffix(endpoint).rstrip("/")


def deployment_from_report(run: FalRun, project: AppProject, *, environment: str | None) -> Deployment:
    """The Deployment fal reported: URLs exactly as fal gave them, endpoint id from the run URL."""
    report = run.report or {}
    result = parse_deploy_json(run.lines) or {}
    urls = report.get("urls", {})
    if not urls.get("sync") or not urls.get("async"):
        raise DeployError(f"fal deployed revision {report.get('revision')} but reported no URLs; see `fal apps list`.")
    url, queue_url = base_url(urls["sync"]), base_url(urls["async"])
    return Deployment(
        name=project.name,
        target="fal",
        endpoint_id=urlsplit(url).path.strip("/"),
        url=url,
        queue_url=queue_url,
        status=AppStatus.DEPLOYING if result.get("status") == "rolling_out" else AppStatus.READY,
        path=str(project.path),
        detail=FalDetail(
            revision=report["revision"],
            app_name=report["app_name"],
            fal_status=result.get("status", "deployed"),
            auth_mode=report.get("auth_mode"),
            playground_urls=urls.get("playground", {}),
            log_url=report.get("log_url"),
            environment=environment,
            team=project.config.team,
            deployed_at=_now(),
        ),
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _previous(name: str) -> Deployment | None:
    previous = Deployment.load(name)
    return previous if previous and isinstance(previous.detail, FalDetail) and previous.detail.revision else None


def _failure(run: FalRun, project: AppProject) -> DeployError:
    if run.ok:  # fal exited cleanly but never reached the end of a deployment
        return DeployError(f"`fal deploy {project.name}` ended without deploying; see `fal apps list`.")
    return explain(run, app=project.name, folder=str(project.path))


def _record_failure(previous: Deployment | None, project: AppProject, error: str) -> None:
    """Keep the live revision's record (fal keeps serving it); otherwise record the failure."""
    summary = redact(error).splitlines()[0]
    if previous is not None:
        fal_detail(previous).last_error = summary
        previous.save()
        return
    Deployment(
        project.name, "fal", "", "", "", AppStatus.FAILED, str(project.path), FalDetail(last_error=summary)
    ).save()


def describe_change(old: str | None, new: str, filename: str) -> str:
    """A short ``--message`` for fal: how the module changed since the last deploy."""
    if old is None:
        return f"fal-notebook: {filename} from a notebook cell"
    if old == new:
        return f"fal-notebook: {filename} unchanged (configuration only)"
    diff = list(difflib.unified_diff(old.splitlines(), new.splitlines(), n=0, lineterm=""))
    added = sum(1 for d in diff if d.startswith("+") and not d.startswith("+++"))
    removed = sum(1 for d in diff if d.startswith("-") and not d.startswith("---"))
    names = changed_definitions(old, new)
    shown = f"; changed {', '.join(names[:4])}{' and more' if len(names) > 4 else ''}" if names else ""
    return f"fal-notebook: {filename} +{added} -{removed} lines{shown}"


def changed_definitions(old: str, new: str) -> list[str]:
    """Top-level functions and classes (and their methods) added, removed or changed."""

    def definitions(source: str) -> dict[str, str]:
        found = {}
        for node in ast.parse(source).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                found[node.name] = ast.dump(node)
                if isinstance(node, ast.ClassDef):
                    for item in node.body:
                        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                            found[f"{node.name}.{item.name}"] = ast.dump(item)
        return found

    try:
        before, after = definitions(old), definitions(new)
    except SyntaxError:
        return []
    changed = sorted(n for n in before.keys() | after.keys() if before.get(n) != after.get(n))
    # A changed method also changes its class; name the method only.
    return [n for n in changed if not any(m.startswith(n + ".") for m in changed)]


# -- operations on deployed apps (the CLI and magics call these) ---------------------------------
def _key() -> str | None:
    credentials = user_credentials()
    return credentials.key if credentials else None


def _scope(name: str) -> tuple[Deployment | None, str, str | None, str | None]:
    """The record, fal's app name, environment and team for an app fal-notebook deployed (or any
    fal app name)."""
    record = Deployment.load(name)
    detail = record.detail if record is not None else None
    if isinstance(detail, FalDetail) and detail.app_name:
        return record, detail.app_name, detail.environment, detail.team
    return None, name, os.environ.get("FAL_ENV") or None, None


def _checked(args: list[str], deployment: Deployment | str, key: str | None) -> FalRun:
    run = run_fal(args, key=key)
    if not run.ok:
        name = deployment if isinstance(deployment, str) else deployment.name
        folder = "" if isinstance(deployment, str) else deployment.path
        raise explain(run, app=name, folder=folder, deploying=False)
    return run


def _runners(deployment: Deployment, key: str | None) -> list[dict[str, Any]]:
    detail = fal_detail(deployment)
    args = runners_args(_app_name(deployment), env=detail.environment, team=detail.team)
    args += ["--since", RUNNERS_SINCE]
    return (parse_json_output(_checked(args, deployment, key).lines) or {}).get("runners", [])


def _json_lines(lines: Iterator[str]) -> Iterator[dict]:
    for line in lines:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict):
            yield entry


def format_log(entry: dict[str, Any]) -> str:
    level = str(entry.get("level", "")).lower()
    return redact(f"{entry.get('timestamp', '')} [{level}] {entry.get('message', '')}")


def revisions(name: str) -> list[dict[str, str]]:
    """The app's revisions on fal (``fal apps list-rev``), one dict per row of fal's table."""
    record, app, env, team = _scope(name)
    return parse_table(_checked(list_rev_args(app, env=env, team=team), name, _key()).lines)


def rollback(name: str, revision: str) -> Deployment | None:
    """Point the app at an earlier revision (``fal apps set-rev``); returns the updated record."""
    record, app, env, team = _scope(name)
    _checked(set_rev_args(app, revision, env=env, team=team), name, _key())
    if record is not None:
        detail = fal_detail(record)
        detail.module_source = None  # the live code is no longer the last deployed cell
        detail.revision, detail.rolled_back_at = revision, _now()
        record.save()
    return record


def scale(name: str, *, min: int | None = None, max: int | None = None, **values: Any) -> None:
    """Change the app's scaling now (``fal apps scale``): ``min``/``max`` concurrency and any other
    key of ``SCALE_FLAGS`` (``keep_alive=300``...)."""
    values = {"min_concurrency": min, "max_concurrency": max, **values}
    values = {k: v for k, v in values.items() if v is not None}
    if not values:
        raise DeployError(f"Nothing to change for {name}: give min=, max= or another scaling value.")
    record, app, env, team = _scope(name)
    _checked(scale_args(app, values, env=env, team=team), name, _key())
    if record is not None:
        detail = fal_detail(record)
        detail.scaling = {**detail.scaling, **values}
        record.save()


def logs(name: str, *, follow: bool = False) -> Iterator[str]:
    """The app's log lines from its recent runners (``fal runners logs``)."""
    record, app, env, team = _scope(name)
    if record is None:
        record = Deployment(
            name, "fal", "", "", "", AppStatus.READY, "", FalDetail(app_name=app, environment=env, team=team)
        )
    return FalBackend().logs(record, follow=follow)
