"""A stand-in for fal's cloud, which cannot be reached from the test machines.

On the PYTHONPATH of a ``fal`` subprocess with ``FAKE_FAL_CLOUD=<scenario>`` set, it replaces what
lies past fal's network boundary: the deploy execution (build + register, fed through fal's real
CLI log handlers), the gRPC connection's app calls, and the REST log calls. Everything else is the
real fal CLI. Every call is appended as a JSON line to ``FAKE_FAL_CLOUD_LOG`` (also the fake's
memory of deployed revisions). Scenarios: ``ok``, ``build_failure``, ``start_failure``,
``key_rejected``.
"""

from __future__ import annotations

import json
import os
from datetime import UTC

OWNER = "test-user"


def _calls() -> list[dict]:
    try:
        with open(os.environ["FAKE_FAL_CLOUD_LOG"]) as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def _record(call: str, **data) -> None:
    with open(os.environ["FAKE_FAL_CLOUD_LOG"], "a") as f:
        f.write(json.dumps({"call": call, **data}, default=str) + "\n")


def _revisions(app: str) -> list[str]:
    return [c["revision"] for c in _calls() if c["call"] in ("deploy", "set_rev") and c.get("app_name") == app]


def _install(scenario: str) -> None:
    from datetime import datetime, timedelta
    from types import SimpleNamespace

    import fal.api.deploy as deploy_api
    import fal.cli.runners as cli_runners
    from fal.api import FalServerlessError
    from fal.sdk import (
        AliasInfo,
        ApplicationInfo,
        FalServerlessConnection,
        HostedRunState,
        HostedRunStatus,
        RunnerInfo,
        RunnerState,
    )
    from isolate.logs import Log, LogLevel, LogSource

    def alias(app: str, revision: str) -> AliasInfo:
        return AliasInfo(app, revision, "private", 60, 2, 1, 1, 0, 0, 0, 0, ["S"], 3600, 600, [])

    def execute(prepared, *, result_handler=None, build_result_handler=None, prepare_options_handler=None):
        app = prepared.loaded.app_name
        data = prepared.app_data
        _record(
            "deploy_started",
            app_name=app,
            message=data.message,
            reset_scale=data.reset_scale,
            strategy=data.deployment_strategy,
            attach=data.attach_to_deployment,
            environment=prepared.environment_name,
            auth=prepared.loaded.app_auth,
        )
        if scenario == "key_rejected":
            raise FalServerlessError("No user found for Key ID and Secret")
        build = [
            Log("Step 1/3 : FROM python:3.11-slim", LogSource.BUILDER),
            Log("Step 2/3 : RUN pip install -r requirements.txt", LogSource.BUILDER),
        ]
        if scenario == "build_failure":
            build += [Log("ERROR: No matching distribution found for torch==0.0.1", LogSource.BUILDER, LogLevel.ERROR)]
            build_result_handler(SimpleNamespace(logs=build, status=None))
            raise FalServerlessError("An internal failure occurred while building the environment.")
        build_result_handler(SimpleNamespace(logs=build, status=None))
        build_result_handler(SimpleNamespace(logs=[], status=HostedRunStatus(HostedRunState.SUCCESS)))
        user = [
            Log("setup(): loading the model", LogSource.USER, LogLevel.STDOUT),
            Log(f"debug: FAL_KEY={os.environ.get('FAL_KEY')}", LogSource.USER, LogLevel.STDOUT),
        ]
        if scenario == "start_failure":
            user += [Log("RuntimeError: weights not found in /data", LogSource.USER, LogLevel.STDERR)]
            result_handler(SimpleNamespace(logs=user))
            raise FalServerlessError("Deployment failed: the new revision's runners did not become healthy.")
        result_handler(SimpleNamespace(logs=user))
        revision = f"rev-{len(_revisions(app)) + 1}"
        _record("deploy", app_name=app, revision=revision)
        run, queue = f"https://fal.run/{OWNER}/{app}", f"https://queue.fal.run/{OWNER}/{app}"
        endpoints = ["/"]
        return deploy_api.DeploymentResult(
            revision=revision,
            app_name=app,
            urls={
                "playground": {e: f"https://fal.ai/models/{OWNER}/{app}{e}" for e in endpoints},
                "sync": {e: f"{run}{e}" for e in endpoints},
                "async": {e: f"{queue}{e}" for e in endpoints},
            },
            log_url=f"https://fal.ai/dashboard/logs?app={app}",
            auth_mode=prepared.loaded.app_auth or "private",
        )

    def list_aliases(self, *, environment_name=None):
        apps = {c["app_name"] for c in _calls() if c["call"] == "deploy"}
        return [alias(app, _revisions(app)[-1]) for app in sorted(apps)]

    def list_applications(self, application_name=None, *, environment_name=None):
        created = datetime(2026, 11, 28, tzinfo=UTC)
        return [
            ApplicationInfo(rev, 60, 2, 1, 0, 0, 0, 0, 0, ["S"], 3600, 600, [], created, environment_name)
            for rev in dict.fromkeys(_revisions(application_name))
        ]

    def create_alias(self, alias_name, revision, auth_mode, *, environment_name=None, deployment_strategy=None):
        _record("set_rev", app_name=alias_name, revision=revision, environment=environment_name)
        return alias(alias_name, revision)

    def update_application(self, application_name, **values):
        _record("scale", app_name=application_name, **{k: v for k, v in values.items() if v is not None})
        return alias(application_name, _revisions(application_name)[-1])

    def list_alias_runners(self, alias, start_time=None, environment_name=None):
        revisions = _revisions(alias)
        return [
            RunnerInfo("runner-1", 0, None, timedelta(seconds=30), {}, revisions[-1], alias, RunnerState.RUNNING, "S")
        ]

    def stop_runner(self, runner_id, replace_first=False):
        _record("stop_runner", runner_id=runner_id)

    def logs(*args, **kwargs):
        _record("logs")
        yield {"timestamp": "2026-11-28T12:00:01", "level": "info", "message": "setup(): model loaded"}
        yield {
            "timestamp": "2026-11-28T12:00:00",
            "level": "info",
            "message": f"debug: FAL_KEY={os.environ.get('FAL_KEY')}",
        }

    deploy_api.execute_prepared_deployment = execute
    FalServerlessConnection.list_aliases = list_aliases
    FalServerlessConnection.list_applications = list_applications
    FalServerlessConnection.create_alias = create_alias
    FalServerlessConnection.update_application = update_application
    FalServerlessConnection.list_alias_runners = list_alias_runners
    FalServerlessConnection.stop_runner = stop_runner
    cli_runners._get_runner_info = lambda client, runner_id: cli_runners.RestRunnerInfo(None, None)
    cli_runners._get_logs = logs
    cli_runners._stream_logs = logs


if os.environ.get("FAKE_FAL_CLOUD"):
    _install(os.environ["FAKE_FAL_CLOUD"])
