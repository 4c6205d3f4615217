"""The ``fal`` CLI as fal-notebook drives it: argument lists (pure), one subprocess runner, and the
parsing of what fal prints.

fal runs as ``<kernel python> -m fal``: the same interpreter as the kernel, so the Python minor
version fal checks and pickles with is the kernel's. ``fal deploy --output json`` prints only
``{"revision", "app_name", "status"}``; the URLs fal's answer carries (``DeploymentResult.urls``,
``log_url``) are printed on one extra line by a wrapper around fal's deploy (``fal_sdk.DEPLOY_PROGRAM``),
so they are taken from fal, never rebuilt here.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..fal_sdk import DEPLOY_PROGRAM, RESULT_MARKER, check_version
from ..secrets import redact
from ..state import read_gateway_key

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

#: Options of ``fal apps scale`` for the scaling keys a redeploy inherits from the previous one.
SCALE_FLAGS = {
    "keep_alive": "--keep-alive",
    "min_concurrency": "--min-concurrency",
    "max_concurrency": "--max-concurrency",
    "concurrency_buffer": "--concurrency-buffer",
    "concurrency_buffer_perc": "--concurrency-buffer-perc",
    "scaling_delay": "--scaling-delay",
    "request_timeout": "--request-timeout",
    "regions": "--regions",
}


# -- argument lists (what follows `fal`) ---------------------------------------------------------
def _scope(env: str | None, team: str | None, *, with_env: bool = True) -> list[str]:
    return [*(["--env", env] if env and with_env else []), *(["--team", team] if team else [])]


def deploy_args(
    app: str,
    *,
    message: str | None = None,
    reset_scale: bool = False,
    detach: bool = False,
    env: str | None = None,
    team: str | None = None,
) -> list[str]:
    """``fal deploy <app> --output json``. Auth and strategy are not options here: with an app
    name, fal reads them from pyproject.toml (``auth``, ``deployment_strategy``) and refuses
    ``--auth``."""
    args = ["deploy", app, "--output", "json"]
    if reset_scale:
        args.append("--reset-scale")
    if detach:
        args.append("--detach")
    if message:
        args.append(f"--message={message}")  # one token: a message may start with '-'
    return args + _scope(env, team)


def list_rev_args(app: str, *, env: str | None = None, team: str | None = None) -> list[str]:
    return ["apps", "list-rev", app, *_scope(env, team)]


def set_rev_args(app: str, revision: str, *, env: str | None = None, team: str | None = None) -> list[str]:
    return ["apps", "set-rev", app, revision, *_scope(env, team)]


def scale_args(app: str, values: dict[str, Any], *, env: str | None = None, team: str | None = None) -> list[str]:
    """``fal apps scale``; ``values`` are AppConfig scaling keys (see ``SCALE_FLAGS``)."""
    args = ["apps", "scale", app]
    for key, value in values.items():
        if key not in SCALE_FLAGS:
            raise ValueError(f"fal apps scale has no option for {key!r}")
        args += [SCALE_FLAGS[key], *map(str, value if isinstance(value, list) else [value])]
    return args + _scope(env, team)


def runners_args(app: str, *, env: str | None = None, team: str | None = None) -> list[str]:
    return ["apps", "runners", app, "--output", "json", *_scope(env, team)]


def runner_logs_args(runner_id: str, *, follow: bool = False, team: str | None = None) -> list[str]:
    follow_flag = ["--follow"] if follow else []
    return ["runners", "logs", runner_id, "--output", "json", *follow_flag, *_scope(None, team)]


def runner_stop_args(runner_id: str, *, team: str | None = None) -> list[str]:
    return ["runners", "stop", runner_id, *_scope(None, team)]


def command_line(args: list[str]) -> str:
    """How a user would type it."""
    return "fal " + " ".join(a if a and " " not in a else json.dumps(a) for a in args)


# -- running fal ----------------------------------------------------------------------------------
@dataclass
class FalRun:
    """A finished ``fal`` command: exit code, its output lines (redacted) and the deploy report."""

    args: list[str]
    returncode: int
    lines: list[str] = field(default_factory=list)
    report: dict[str, Any] | None = None
    timed_out: bool = False
    cancelled: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and not self.cancelled

    @property
    def output(self) -> str:
        return "\n".join(self.lines)


def fal_environment(args: list[str], key: str | None) -> dict[str, str]:
    """The subprocess environment: the kernel's, plus the key fal-notebook found (it may come from
    Colab or a session login that a subprocess would not see); tables wide enough to parse."""
    width = "4096" if args[:2] == ["apps", "list-rev"] else "100"
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8", COLUMNS=width, NO_COLOR="1")
    if env.get("FAL_KEY", "").strip() == read_gateway_key():  # %fal_env's: the local gateway's, not fal's
        del env["FAL_KEY"]
    if key:
        env["FAL_KEY"] = key
    return env


def fal_command(args: list[str]) -> list[str]:
    if args and args[0] == "deploy":
        return [sys.executable, "-c", DEPLOY_PROGRAM, *args]
    return [sys.executable, "-m", "fal", *args]


def iter_fal(
    args: list[str], *, cwd: Path | None = None, key: str | None = None, stop: threading.Event | None = None
) -> Iterator[str]:
    """Run ``fal`` and yield its redacted output lines as they come (for ``--follow``), until it
    ends or ``stop`` is set."""
    proc = _start(args, cwd, key)
    if stop is not None:
        _kill_when(stop, proc)
    try:
        for raw in _output(proc):
            yield clean(raw)
    finally:
        _end(proc)


def run_fal(
    args: list[str],
    *,
    cwd: Path | None = None,
    key: str | None = None,
    progress: Callable[[str], None] | None = None,
    timeout: float | None = None,
    cancel: threading.Event | None = None,
) -> FalRun:
    """Run ``fal <args>``; stream its output (stdout and stderr, redacted) to ``progress``.
    Setting ``cancel`` ends the command (``run.cancelled``)."""
    proc = _start(args, cwd, key)
    run = FalRun(args=args, returncode=-1)
    timer = None
    if timeout is not None:

        def time_out() -> None:
            run.timed_out = True
            _kill(proc)

        timer = threading.Timer(timeout, time_out)
        timer.start()
    if cancel is not None:
        _kill_when(cancel, proc, lambda: setattr(run, "cancelled", True))
    try:
        for raw in _output(proc):
            line = clean(raw)
            if line.startswith(RESULT_MARKER):
                run.report = json.loads(line[len(RESULT_MARKER) :])
                continue
            run.lines.append(line)
            if progress is not None:
                progress(line)
        run.returncode = proc.wait()
    finally:
        if timer is not None:
            timer.cancel()
        _end(proc)
    return run


def _kill_when(event: threading.Event, proc: subprocess.Popen, then: Callable[[], None] = lambda: None) -> None:
    """End ``proc`` as soon as ``event`` is set (a watcher thread, gone when ``proc`` ends)."""

    def watch() -> None:
        while proc.poll() is None:
            if event.wait(0.2):
                then()
                _kill(proc)
                return

    threading.Thread(target=watch, name="fal-kill-watch", daemon=True).start()


def _start(args: list[str], cwd: Path | None, key: str | None) -> subprocess.Popen[str]:
    check_version()  # fal-notebook reads fal's output and internals as the tested versions give them
    return subprocess.Popen(
        fal_command(args),
        cwd=cwd,
        env=fal_environment(args, key),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
        errors="replace",
        bufsize=1,
        start_new_session=True,  # its own process group: a timeout or interrupt ends all of it
    )


def _output(proc: subprocess.Popen[str]) -> IO[str]:
    assert proc.stdout is not None  # started with stdout=PIPE
    return proc.stdout


def clean(raw: str) -> str:
    """An output line as shown and parsed: no colour codes, no credentials."""
    return redact(_ANSI.sub("", raw.rstrip("\n")))


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _end(proc: subprocess.Popen) -> None:
    _kill(proc)
    proc.wait()
    if proc.stdout:
        proc.stdout.close()


# -- what fal prints -------------------------------------------------------------------------------
def parse_deploy_json(lines: list[str]) -> dict[str, Any] | None:
    """The ``{"revision", "app_name", "status"}`` object ``fal deploy --output json`` prints last."""
    for line in reversed(lines):
        text = line.strip()
        if text.startswith("{") and text.endswith("}"):
            try:
                data = json.loads(text)
            except json.JSONDecodeError:
                continue
            if isinstance(data, dict) and {"revision", "app_name", "status"} <= data.keys():
                return data
    return None


def parse_json_output(lines: list[str]) -> Any:
    """The JSON document a ``--output json`` command printed (its last JSON line)."""
    for line in reversed(lines):
        text = line.strip()
        if text[:1] in "{[" and text:
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                continue
    return None


def parse_table(lines: list[str]) -> list[dict[str, str]]:
    """Rows of a table fal prints with rich (``fal apps list-rev`` has no JSON output)."""
    rows = []
    for line in lines:
        text = line.strip().replace("┃", "│")  # rich draws the header row with heavy bars
        if len(text) > 1 and text[0] == text[-1] == "│":
            rows.append([cell.strip() for cell in text[1:-1].split("│")])
    if not rows:
        return []
    header, *body = rows
    return [dict(zip(header, row, strict=False)) for row in body]
