"""fal's own failure texts become one-paragraph explanations with the next step."""

from __future__ import annotations

import pytest
from fal.api.api import _check_python_version_match
from fal.exceptions.auth import UnauthenticatedException

from fal_notebook.backends.fal_cli import FalRun
from fal_notebook.backends.fal_errors import explain, failing_step, fal_error

pytestmark = pytest.mark.fal_sdk


def failed(*lines: str, args=("deploy", "text-stats")) -> FalRun:
    return FalRun(args=list(args), returncode=1, lines=list(lines))


def printed(exc: Exception) -> str:
    """How fal's CLI prints an error (``fal.cli.main._print_error``)."""
    return f"✘ {exc}"


def test_fal_error_is_the_last_crossed_line_with_its_continuation():
    run = failed("Deploying", "✘ first", "✘ Could not reach fal host.", "  Check the logs: https://x")
    assert fal_error(run.lines) == "Could not reach fal host.\nCheck the logs: https://x"


def test_not_authenticated():
    error = explain(failed("Deploying 'A' as app 'a'", printed(UnauthenticatedException())), app="a", folder="/p")
    assert str(error).startswith("You are not logged in to fal, so nothing was deployed.")


def test_python_version_mismatch_from_fals_own_check():
    with pytest.raises(Exception) as exc:
        _check_python_version_match([lambda: None], "3.9")
    error = str(explain(failed("Deploying", printed(exc.value)), app="a", folder="/p"))
    assert error.startswith("fal refused the Python version")
    assert "python_version=3.9" in error and "Capture the cell again" in error


def test_confirmation_required_by_the_team():
    run = failed("Deploy confirmation for 'a' requires interactive input. Re-run with --yes to bypass the prompt.")
    assert "fal deploy a --check" in str(explain(run, app="a", folder="/p"))


def test_words_in_a_build_log_do_not_pass_for_a_rejected_key():
    run = failed(
        "Building environment...",
        "[error] pip: 403 Forbidden from the index for private-pkg",
        "[error] ERROR: Could not find a version that satisfies private-pkg",
        printed("An internal failure occurred while building the environment."),
    )
    assert str(explain(run, app="a", folder="/p")).startswith("fal could not build the app's environment")


def test_operation_failures_never_talk_about_builds():
    run = failed("✘ Could not reach fal host. Cause: Connection refused.", args=("apps", "list-rev", "a"))
    error = str(explain(run, app="a", folder="", deploying=False))
    assert error.startswith("fal could not be reached from this machine, so `fal apps list-rev` stopped.")


def test_unknown_failures_show_fals_output():
    error = str(explain(failed("something odd", "✘ Boom"), app="a", folder="/p"))
    assert "failed (exit code 1)" in error and "✘ Boom" in error


def test_failing_step_is_the_step_before_the_first_error():
    build = [
        "2026-11-28 12:00:00.000 [info     ] #5 [2/4] COPY requirements.txt .",
        "2026-11-28 12:00:01.000 [info     ] #6 [3/4] RUN python -m pip install -r requirements.txt",
        "2026-11-28 12:00:09.000 [error    ] ERROR: No matching distribution found for nope==1",
        "#7 [4/4] COPY app.py ./",
    ]
    assert failing_step(build) == "#6 [3/4] RUN python -m pip install -r requirements.txt"


def test_a_rejected_key_during_an_operation_changed_nothing():
    run = failed("✘ No user found for Key ID and Secret", args=("apps", "scale", "a"))
    error = str(explain(run, app="a", folder="", deploying=False))
    assert error.startswith("fal rejected the key") and "Nothing was changed on fal." in error
    assert "Nothing was deployed" not in error
