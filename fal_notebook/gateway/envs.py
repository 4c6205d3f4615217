"""Runner environments: an isolated virtualenv per set of requirements, cached by their hash.

Built with ``uv`` when it is available (much faster), else with ``venv`` + pip. A missing or
conflicting requirement fails here, locally, with the installer's log.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import IO

from ..environments import READY_MARKER, env_python, environment_key
from .paths import envs_dir

#: What uv and pip say when they cannot reach a package index.
_OFFLINE = re.compile(
    r"dns error|failed to lookup address|Temporary failure in name resolution|Network is unreachable|"
    r"NewConnectionError|Failed to establish a new connection|error sending request for url",
    re.IGNORECASE,
)
OnLine = Callable[[str], None]

_locks: dict[str, asyncio.Lock] = {}


class EnvBuildError(Exception):
    """The environment could not be built; the message ends with the installer's last lines."""


def uv_binary() -> str | None:
    found = shutil.which("uv")
    if found:
        return found
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        return None


async def ensure_environment(python: str, requirements: list[str], on_line: OnLine) -> Path:
    """The Python interpreter of an environment with ``requirements``, built on first use."""
    key = environment_key(python, requirements)
    folder = envs_dir() / key
    async with _locks.setdefault(key, asyncio.Lock()):
        if (folder / READY_MARKER).is_file():
            on_line(f"Using the cached environment {key} ({len(requirements)} requirements).")
            return env_python(folder)
        if folder.exists():
            shutil.rmtree(folder)  # an earlier build was interrupted
        log = envs_dir() / f"{key}.log"
        reqs = envs_dir() / f"{key}.requirements.txt"
        reqs.write_text("".join(r + "\n" for r in requirements))
        uv = uv_binary()
        tool = "uv" if uv else "pip"
        on_line(f"Building environment {key} with {tool}: {len(requirements)} requirements (log: {log}).")
        started = time.monotonic()
        if uv:
            steps = [
                [uv, "venv", "--python", python, str(folder)],
                [
                    uv,
                    "pip",
                    "install",
                    "--compile-bytecode",
                    "--python",
                    str(env_python(folder)),
                    "-r",
                    str(reqs),
                ],
            ]
        else:
            steps = [
                [python, "-m", "venv", str(folder)],
                [
                    str(env_python(folder)),
                    "-m",
                    "pip",
                    "install",
                    "--disable-pip-version-check",
                    "-r",
                    str(reqs),
                ],
            ]
        with log.open("w") as log_file:
            for argv in steps:
                tail = await _run(argv, log_file, on_line)
                if tail is not None:
                    shutil.rmtree(folder, ignore_errors=True)
                    what = (
                        "The package index cannot be reached (no network?): deploy with --env kernel to run the "
                        "runners in the kernel's Python environment as it is, with nothing to install."
                        if _OFFLINE.search(tail)
                        else "Check the requirements (requirements.txt, --requirements)."
                    )
                    raise EnvBuildError(
                        f"Building the environment failed ({' '.join(argv[:3])} ...). {what} Last lines of {log}:\n"
                        + tail
                    )
        (folder / READY_MARKER).write_text(json.dumps({"python": python, "requirements": requirements}))
        on_line(f"Environment {key} built in {time.monotonic() - started:.1f} s.")
        return env_python(folder)


# Installer chatter that the log keeps but the notebook does not need: one line per package,
# and hints about activating the environment.
_QUIET_PREFIXES = (
    "+ ",
    "- ",
    "~ ",
    "Activate with",
    "Using CPython",
    "Using Python",
    "Creating virtual environment",
    "Collecting ",
    "Downloading ",
    "Using cached ",
    "Requirement already satisfied",
    "Obtaining ",
)


def _worth_showing(line: str) -> bool:
    text = line.strip()
    return bool(text) and not text.startswith(_QUIET_PREFIXES)


async def _run(argv: list[str], log_file: IO[str], on_line: OnLine) -> str | None:
    """Run one build step, logging all its output and showing the summary lines; ``None`` on
    success, else the output's tail."""
    log_file.write(f"$ {' '.join(argv)}\n")
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        stdin=asyncio.subprocess.DEVNULL,
        env={**os.environ, "NO_COLOR": "1"},
    )
    tail: deque[str] = deque(maxlen=30)
    assert proc.stdout is not None
    async for raw in proc.stdout:
        line = raw.decode(errors="replace").rstrip()
        log_file.write(line + "\n")
        log_file.flush()
        tail.append(line)
        if _worth_showing(line):
            on_line("  " + line.strip())
    code = await proc.wait()
    return None if code == 0 else "\n".join(tail)
