"""The ``%%fal_app`` line: one parser for the magic and for ``export_notebook``.

Its flags are views of AppConfig (config.py): one per field of a plain type, spelled as
``config.flag_for`` names it, typed as the field is; structured keys (``health_check``, ``image``,
``retry_config``) are set in the class or in pyproject.toml.
"""

from __future__ import annotations

import argparse
import shlex
import types
import typing
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, NoReturn

from ..config import AppConfig, flag_for
from ..errors import ConfigError

MAGIC = "%%fal_app"
#: Fields that are not flags: the NAME argument, the structured keys, and a Dockerfile's text.
NOT_FLAGS = ("name", "health_check", "image", "retry_config", "base_dockerfile")


class ArgumentParser(argparse.ArgumentParser):
    """argparse that raises ConfigError instead of exiting (which would end the kernel)."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{self.prog}: {message}. Usage: {self.format_usage().strip()}")


def parse_words(parser: argparse.ArgumentParser, line: str) -> argparse.Namespace:
    """Split a magic's line like a shell would and parse it."""
    try:
        return parser.parse_args(shlex.split(line))
    except ValueError as exc:
        raise ConfigError(f"{parser.prog} {line}: {exc} (check the quotes).") from None


def _requirements(value: str) -> list[str]:
    return [r for r in value.replace(",", " ").split() if r]


def _plain(annotation: Any) -> Any:
    """The type under ``X | None`` and ``Annotated[X, ...]``; a Literal's values are strings."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    if typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    return str if typing.get_origin(annotation) is Literal else annotation


def config_flags() -> dict[str, dict[str, Any]]:
    """argparse's options for each AppConfig field that is a flag, by field name."""
    flags = {}
    for name, info in AppConfig.model_fields.items():
        kind = _plain(info.annotation)
        if name in NOT_FLAGS:
            continue
        if name == "requirements":  # "pkg==1 other": several in one value, and repeatable
            flags[name] = {"action": "extend", "type": _requirements}
        elif typing.get_origin(kind) is list:
            flags[name] = {"action": "append", "type": _plain(typing.get_args(kind)[0])}
        elif kind is bool:
            flags[name] = {"action": "store_const", "const": True}
        elif kind in (int, float, str):
            flags[name] = {"type": kind}
        else:  # pragma: no cover - a new structured key: add it to NOT_FLAGS or give it a flag here
            raise TypeError(f"AppConfig.{name} ({info.annotation}) has no flag")
    return flags


def _parser() -> ArgumentParser:
    p = ArgumentParser(prog=MAGIC, add_help=False)
    p.add_argument("name", nargs="?")
    for name, options in config_flags().items():
        flag = flag_for(name)
        metavar = None if options.get("action") == "store_const" else flag.lstrip("-").upper().replace("-", "_")
        p.add_argument(flag, dest=name, metavar=metavar, **options)
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
