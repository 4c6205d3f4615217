"""Notebooks and project files edited by hand into something else (issue 20, item 8): shared by the
tests of each entry point (API, CLI, the panel's routes, the gateway) and the fuzz targets."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

SERVER_CELL = "%%fal_app web --port 9000\nfrom fastapi import FastAPI\n\napp = FastAPI()\n"


def notebook(cells: object, **top: object) -> str:
    return json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5, **top})


def code(source: object, **fields: object) -> dict:
    return {"cell_type": "code", "source": source, "metadata": {}, "outputs": [], "execution_count": None, **fields}


#: Files named ``.ipynb`` that are not notebooks fal-notebook can read, and why.
MALFORMED_NOTEBOOKS = {
    "a JSON array": "[1, 2]",
    "null": "null",
    "not JSON": "{",
    "not UTF-8": "\udcff\udcfe{}",
    "cells: 5": notebook(5),
    "a cell that is a string": notebook(["x"]),
    "source as a dict": notebook([code({"a": 1})]),
    "source as a list of numbers": notebook([code([1, 2])]),
    "cell_type as a number": notebook([code("x = 1", cell_type=3)]),
    "nested deeper than the parser goes": "[" * 100_000 + "]" * 100_000,
    "deep nesting inside the notebook": notebook([], x="[" * 5000 + "]" * 5000),
    "a number of 5,000 digits": notebook([], x=0)[:-1].replace('"x": 0', '"x": ' + "1" * 5000) + "}",
    "a lone surrogate in a cell": notebook([code(SERVER_CELL + "# \ud800\n")]),
    "nbformat 3": json.dumps({"worksheets": 5, "metadata": {}, "nbformat": 3, "nbformat_minor": 0}),
    "nbformat as a string": notebook([], nbformat="4"),
}


def write_notebook_text(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8", errors="surrogateescape")  # "\udcff": the byte 0xff
    return path


def _edit_json(change: Callable[[dict], object]) -> Callable[[str], str]:
    def edit(text: str) -> str:
        data = json.loads(text)
        return json.dumps(change(data))

    return edit


def _set(key: str, value: object, *, under: str | None = None) -> Callable[[str], str]:
    def change(data: dict) -> dict:
        (data[under] if under else data)[key] = value
        return data

    return _edit_json(change)


def _drop(key: str) -> Callable[[str], str]:
    return _edit_json(lambda data: {k: v for k, v in data.items() if k != key})


#: Edits of a generated ``.fal-notebook.json`` (its text in, the edited text out).
MANIFEST_EDITS: dict[str, Callable[[str], str]] = {
    "not JSON": lambda text: "{",
    "a JSON array": lambda text: "[]",
    "null": lambda text: "null",
    "not UTF-8": lambda text: "\udcff",
    "config null": _set("config", None),
    "config a number": _set("config", 5),
    "config without a name": _edit_json(
        lambda d: {**d, "config": {k: v for k, v in d["config"].items() if k != "name"}}
    ),
    "name a number": _set("name", 5, under="config"),
    "name a list": _set("name", [1], under="config"),
    "files a list": _set("files", ["server.py"]),
    "files a string": _set("files", "server.py"),
    "a file's digest a number": _edit_json(lambda d: {**d, "files": {**d["files"], "server.py": 5}}),
    "requirements a string": _set("requirements", "fastapi"),
    "requirements numbers": _set("requirements", [1, 2]),
    "toml a number": _set("toml", 5),
    "no files": _drop("files"),
    "no requirements": _drop("requirements"),
    "nested too deeply": lambda text: text[:-2] + ', "x": ' + "[" * 10_000 + "]" * 10_000 + "}",
    "a number of 5,000 digits": lambda text: text[:-2] + ', "x": ' + "1" * 5000 + "}",
    "a lone surrogate in cmd": _set("cmd", "\ud800 $PORT", under="config"),
}

TABLE = "[tool.fal.apps.web]"


def _in_table(line: str) -> Callable[[str], str]:
    return lambda text: text.replace(TABLE, f"{TABLE}\n{line}")


#: Edits of a generated ``pyproject.toml``.
PYPROJECT_EDITS: dict[str, Callable[[str], str]] = {
    "not TOML": lambda text: "[[[",
    "tool a number": lambda text: "tool = 5\n",
    "tool.fal a number": lambda text: "[tool]\nfal = 5\n",
    "tool.fal.apps a number": lambda text: "[tool.fal]\napps = 5\n",
    "the app's table a number": lambda text: "[tool.fal.apps]\nweb = 5\n",
    "a key twice": _in_table("exposed_port = 1"),
    "nested more than TOML allows": _in_table("requirements = " + "[" * 2000 + "]" * 2000),
    "requirements a number": _in_table("requirements = 5"),
    "secrets a number": _in_table("secrets = 5"),
    "machine types of odd kinds": _in_table("machine_type = [1, {a = 1}]"),
    "health_check a number": _in_table("health_check = 5"),
    "keep_alive a date": _in_table("keep_alive = 1979-05-27"),
    "keep_alive huge": _in_table("keep_alive = 99999999999999999999999"),
    "ref a number": _in_table("ref = 5"),
    "a lone surrogate escape": _in_table('base_image = "\\uD800"'),
    "not UTF-8": lambda text: "\udcff[tool",
    "empty": lambda text: "",
}


def edit_file(path: Path, edit: Callable[[str], str]) -> None:
    path.write_text(edit(path.read_text()), encoding="utf-8", errors="surrogateescape")
