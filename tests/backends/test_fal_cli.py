"""The argument lists fal-notebook builds, checked by fal's own parser, and the parsing of what fal
prints, checked against fal's own renderers."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from fal.cli import apps as fal_apps, deploy as fal_deploy, runners as fal_runners
from fal.cli.main import parse_args
from fal.cli.parser import FalParserExit
from rich.console import Console

from fal_notebook.backends.fal_cli import (
    deploy_args,
    fal_command,
    list_rev_args,
    parse_deploy_json,
    parse_json_output,
    parse_table,
    runner_logs_args,
    runner_stop_args,
    runners_args,
    scale_args,
    set_rev_args,
)

pytestmark = pytest.mark.fal_sdk


def test_deploy_args_parse_as_fal_deploy_with_every_option():
    message = "-3 lines: fal-notebook changed TextStats.run"  # starts with '-' on purpose
    args = parse_args(
        deploy_args("text-stats", message=message, reset_scale=True, detach=True, env="staging", team="acme")
    )
    assert args.func is fal_deploy._deploy
    assert args.app_ref == ("text-stats", None)
    assert args.output == "json"
    assert args.message == message
    assert args.app_scale_settings is True
    assert args.attach_to_deployment is False
    assert (args.env, args.team) == ("staging", "acme")
    assert args.auth is None  # fal refuses --auth with an app name: auth comes from pyproject.toml


def test_minimal_deploy_args_keep_fal_defaults():
    args = parse_args(deploy_args("text-stats"))
    assert (args.app_scale_settings, args.attach_to_deployment, args.message, args.env) == (False, None, None, None)


def test_scale_args_map_config_keys_to_fal_apps_scale_options():
    values = {
        "keep_alive": 300,
        "min_concurrency": 1,
        "max_concurrency": 4,
        "concurrency_buffer": 1,
        "concurrency_buffer_perc": 20,
        "scaling_delay": 5,
        "request_timeout": 120,
        "regions": ["us-east", "eu-west"],
    }
    args = parse_args(scale_args("text-stats", values, env="staging", team="acme"))
    assert args.func is fal_apps._scale
    assert args.app_name == "text-stats"
    assert {k: getattr(args, k) for k in values} == values
    assert (args.env, args.team) == ("staging", "acme")


def test_scale_args_refuse_keys_fal_cannot_scale():
    with pytest.raises(ValueError, match="machine_type"):
        scale_args("text-stats", {"machine_type": ["S"]})


def test_revision_and_runner_args_parse():
    rev = parse_args(list_rev_args("text-stats", env="staging"))
    assert (rev.func, rev.app_name, rev.env) == (fal_apps._list_rev, "text-stats", "staging")
    set_rev = parse_args(set_rev_args("text-stats", "rev-1", team="acme"))
    assert (set_rev.func, set_rev.app_name, set_rev.app_rev, set_rev.team) == (
        fal_apps._set_rev,
        "text-stats",
        "rev-1",
        "acme",
    )
    runners = parse_args([*runners_args("text-stats"), "--since", "1h"])
    assert (runners.func, runners.output) == (fal_apps._runners, "json")
    assert runners.since is not None
    logs = parse_args(runner_logs_args("runner-1", follow=True, team="acme"))
    assert (logs.func, logs.id, logs.follow, logs.output, logs.team) == (
        fal_runners._logs,
        "runner-1",
        True,
        "json",
        "acme",
    )
    stop = parse_args(runner_stop_args("runner-1"))
    assert (stop.func, stop.id) == (fal_runners._stop, "runner-1")


def test_fal_parser_rejects_what_fal_does_not_know():
    with pytest.raises(FalParserExit):
        parse_args([*deploy_args("text-stats"), "--no-such-option"])


def test_fal_runs_in_the_kernels_interpreter():
    import sys

    assert fal_command(["apps", "list"])[:3] == [sys.executable, "-m", "fal"]
    assert fal_command(deploy_args("x"))[:2] == [sys.executable, "-c"]


def _render_deploy(detached: bool) -> list[str]:
    """What `fal deploy --output json` prints, by fal's own renderer."""
    out = io.StringIO()
    console = Console(file=out, width=80)
    args = SimpleNamespace(
        output="json",
        console=console,
        attach_to_deployment=False if detached else None,
        env=None,
        app_scale_settings=False,
    )
    result = SimpleNamespace(revision="0a1b-rev", app_name="text-stats", urls={}, log_url="", auth_mode="private")
    fal_deploy._render_deploy_result(args, result, is_first_deploy=False)
    return ["Deploying 'TextStats' as app 'text-stats'", "", *out.getvalue().splitlines()]


def test_deploy_json_parsed_from_fals_own_output():
    assert parse_deploy_json(_render_deploy(detached=False)) == {
        "revision": "0a1b-rev",
        "app_name": "text-stats",
        "status": "deployed",
    }
    assert parse_deploy_json(_render_deploy(detached=True))["status"] == "rolling_out"
    assert parse_deploy_json(["✘ You must be authenticated."]) is None


def test_json_output_ignores_log_lines_around_it():
    assert parse_json_output(["noise", '{"runners": []}', ""]) == {"runners": []}
    assert parse_json_output(["{not json", "nothing"]) is None


def test_revision_table_parsed_from_fals_own_table():
    from fal.sdk import ApplicationInfo

    created = datetime(2026, 11, 28, tzinfo=UTC)
    revs = [
        ApplicationInfo(f"rev-{i}", 60, 2, 1, 0, 0, 0, 0, 0, ["GPU-H100", "GPU-A100"], 3600, 600, ["us-east"], created)
        for i in (1, 2)
    ]
    out = io.StringIO()
    Console(file=out, width=4096).print(fal_apps._app_rev_table(revs))
    rows = parse_table(out.getvalue().splitlines())
    assert [r["Revision"] for r in rows] == ["rev-1", "rev-2"]
    assert rows[0]["Machine Type"] == "GPU-H100 GPU-A100"
    assert rows[0]["Keep Alive"] == "60"
