"""What a failed ``fal`` command means for the user: one paragraph each, with the next step.

The texts matched are fal's own (``fal_sdk``: fal's messages, fenced with its other internals).
Output arrives already redacted.
"""

from __future__ import annotations

import re

from ..credentials import KEYS_PAGE, not_logged_in_message
from ..errors import DeployError
from ..fal_sdk import (
    BUILD_DONE,
    BUILD_HEADER,
    CONFIRMATION,
    ERROR_PREFIXES,
    KEY_REJECTED,
    LOG_PREFIX,
    NOT_AUTHENTICATED,
    PYTHON_MISMATCH,
    RUNTIME_HEADERS,
    UNREACHABLE,
    missing_internal,
    missing_internal_error,
)
from .fal_cli import FalRun

TAIL = 15
_STEP = re.compile(r"Step \d+/\d+ :|#\d+ \[|\[\d+/\d+\] |\bRUN |Collecting |Building wheel|Installing collected")
_ERROR = re.compile(r"error|failed|failure|no matching distribution|could not find|not found", re.IGNORECASE)


def fal_error(lines: list[str]) -> str:
    """The error fal printed last (``✘ message`` plus its indented continuation lines)."""
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].startswith(ERROR_PREFIXES):
            rest = [line for line in lines[i + 1 :] if line.startswith("  ")]
            return "\n".join([lines[i][2:], *(line.strip() for line in rest)])
    return ""


def _tail(lines: list[str], n: int = TAIL) -> str:
    kept = [line for line in lines if line.strip().strip("─━")][-n:]  # no blank lines, no rules
    return "\n".join("    " + line for line in kept)


def _after(lines: list[str], marker: str) -> list[str]:
    for i in range(len(lines) - 1, -1, -1):
        if marker in lines[i]:
            return lines[i + 1 :]
    return []


def failing_step(build_lines: list[str]) -> str | None:
    """The build step that failed: the last step line before the first error line (or the last)."""
    step = None
    for line in build_lines:
        if _STEP.search(line):
            step = LOG_PREFIX.sub("", line).strip()
        elif _ERROR.search(line) and step:
            return step
    return step


def explain(run: FalRun, *, app: str, folder: str, deploying: bool = True) -> DeployError:
    """The DeployError for a ``fal`` command that failed."""
    lines, text, verdict = run.lines, run.output, fal_error(run.lines)
    command = f"`fal {run.args[0]} {run.args[1]}`" if len(run.args) > 1 else "`fal`"
    built = BUILD_DONE in text
    nothing = "Nothing was deployed." if deploying else "Nothing was changed on fal."
    if internal := missing_internal(text):
        return DeployError(str(missing_internal_error(internal)))
    if CONFIRMATION in text:
        return DeployError(
            f"Your fal team requires confirming each deployment after reviewing a summary, which a "
            f"notebook cannot prompt for; nothing was deployed. Run `fal deploy {app} --check` in a "
            f"terminal inside {folder} and type 'confirm'."
        )
    if NOT_AUTHENTICATED in verdict:
        return DeployError(not_logged_in_message())
    if PYTHON_MISMATCH.search(text):
        return DeployError(
            "fal refused the Python version: the app's code is pickled by this kernel's Python and "
            "must be unpickled by the same minor version on fal, and the app's `python_version` "
            f"differs. {nothing} fal said: {verdict or _tail(lines, 4)}\nCapture the cell again in this "
            "kernel (its python_version follows the kernel), or deploy from a kernel with the app's "
            "Python version."
        )
    if run.timed_out or UNREACHABLE.search(verdict):
        cause = "did not answer in time" if run.timed_out else "could not be reached"
        outcome = (
            "The build had finished, so the rollout may be incomplete: check `fal apps list`."
            if built and deploying
            else nothing
        )
        return DeployError(
            f"fal {cause} from this machine, so {command} stopped. {outcome} Check the network "
            f"connection (and any proxy or firewall), then try again. fal said: {verdict or _tail(lines, 3)}"
        )
    if KEY_REJECTED.search(verdict):
        return DeployError(
            "fal rejected the key: it may have been revoked or mistyped, or lack the permission for "
            f"this (deploying and managing apps needs a key with the ADMIN scope). {nothing} Create a "
            f"key at {KEYS_PAGE} and log in again with `%fal_login`. fal said: {verdict}"
        )
    if deploying and BUILD_HEADER in text and not built:
        build = _after(lines, BUILD_HEADER)
        step = failing_step(build)
        where = f" at this step:\n    {step}\n" if step else ". "
        return DeployError(
            f"fal could not build the app's environment{where}Nothing was deployed; the previous "
            f"revision, if any, keeps serving. The end of the build log:\n{_tail(build)}\nFix the "
            "requirement it names (in the cell's imports or with --requirements), check that the image "
            f"builds locally with `%fal_deploy {app} --target docker`, and deploy again."
        )
    if deploying and built:
        header = next((h for h in reversed(RUNTIME_HEADERS) if h in text), BUILD_DONE)
        runtime = _after(lines, header)
        return DeployError(
            "The app was built but failed to start on fal (setup() or the server crashed, or it never "
            f"answered its health check). The previous revision, if any, keeps serving. Its log:\n"
            f"{_tail(runtime)}\nRun it locally first (`%fal_deploy {app}`) to reproduce and fix it."
        )
    return DeployError(f"{command} failed (exit code {run.returncode}) for {app}. fal said:\n{_tail(lines)}")
