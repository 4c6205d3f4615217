"""The ``%%fal_app`` line: one parser for the magic and for ``export_notebook``."""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError

MAGIC = "%%fal_app"


class ArgumentParser(argparse.ArgumentParser):
    """argparse that raises ConfigError instead of exiting (which would end the kernel)."""

    def error(self, message: str) -> None:
        raise ConfigError(f"{self.prog}: {message}. Usage: {self.format_usage().strip()}")


def parse_words(parser: argparse.ArgumentParser, line: str) -> argparse.Namespace:
    """Split a magic's line like a shell would and parse it."""
    try:
        return parser.parse_args(shlex.split(line))
    except ValueError as exc:
        raise ConfigError(f"{parser.prog} {line}: {exc} (check the quotes).") from None


def _requirements(value: str) -> list[str]:
    return [r for r in value.replace(",", " ").split() if r]


def _parser() -> ArgumentParser:
    p = ArgumentParser(prog=MAGIC, add_help=False)
    p.add_argument("name", nargs="?")
    p.add_argument("--mode")
    p.add_argument("--class", dest="class_name")
    p.add_argument("--entry")
    p.add_argument("--cmd")
    p.add_argument("--port", dest="exposed_port", type=int)
    p.add_argument("--machine-type", dest="machine_type", action="append")
    p.add_argument("--secret", dest="secrets", action="append")
    p.add_argument("--requirements", type=_requirements)
    for flag in (
        "num-gpus",
        "keep-alive",
        "min-concurrency",
        "max-concurrency",
        "concurrency-buffer",
        "max-multiplexing",
        "request-timeout",
        "startup-timeout",
    ):
        p.add_argument(f"--{flag}", type=int)
    for flag in ("auth", "python-version", "base-image"):
        p.add_argument(f"--{flag}")
    p.add_argument("--dir")
    p.add_argument("--no-run", action="store_true")
    p.add_argument("--force", action="store_true")
    return p


@dataclass
class MagicLine:
    """A parsed ``%%fal_app`` line: the app name, AppConfig options, and what to do."""

    name: str | None
    options: dict[str, Any] = field(default_factory=dict)
    dir: str | None = None
    run: bool = True
    force: bool = False


def parse_magic_line(line: str) -> MagicLine:
    """Parse the arguments after ``%%fal_app`` (the line may include the magic itself)."""
    line = line.strip()
    if line.startswith(MAGIC):
        line = line[len(MAGIC) :]
    args = vars(parse_words(_parser(), line))
    name, dir_, no_run, force = (args.pop(k) for k in ("name", "dir", "no_run", "force"))
    options = {k: v for k, v in args.items() if v is not None}
    return MagicLine(name=name, options=options, dir=dir_, run=not no_run, force=force)


def split_magic_cell(source: str) -> tuple[str, str] | None:
    """``(magic line, body)`` when ``source`` is a ``%%fal_app`` cell, else None."""
    stripped = source.lstrip()
    if not stripped.startswith(MAGIC) or stripped[len(MAGIC) : len(MAGIC) + 1] not in ("", " ", "\t", "\n"):
        return None
    line, _, body = stripped.partition("\n")
    return line, body
