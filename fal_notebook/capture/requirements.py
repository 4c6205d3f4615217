"""Requirements from imports: module → distribution → the version installed in the kernel."""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import importlib.util
import re
import shlex
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ..errors import CaptureError
from ..packages import requirement_name


@dataclass
class Inferred:
    requirements: list[str] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)
    local_modules: dict[str, Path] = field(default_factory=dict)


def imported_modules(source: str) -> list[tuple[str, str]]:
    """(top-level module, dotted name) of every absolute import, at any depth, in source order."""
    found: dict[str, str] = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.setdefault(alias.name.split(".")[0], alias.name)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.setdefault(node.module.split(".")[0], node.module)
    return list(found.items())


@lru_cache(maxsize=1)
def _packages_distributions() -> Mapping[str, list[str]]:
    return metadata.packages_distributions()


def distribution_of(module: str, dotted: str) -> list[str]:
    """Distributions providing ``module`` (narrowed by the dotted path for namespace packages)."""
    candidates = sorted(set(_packages_distributions().get(module, [])))
    if len(candidates) > 1 and "." in dotted:
        prefix = dotted.replace(".", "/") + "/"
        narrowed = [d for d in candidates if any(str(f).startswith(prefix) for f in (metadata.files(d) or ()))]
        candidates = narrowed or candidates
    return candidates


def pinned(dist: str) -> str:
    meta = metadata.metadata(dist)
    return f"{meta['Name']}=={metadata.version(dist)}"


def local_module_path(module: str, search_dir: Path) -> Path | None:
    """A module or package that lives beside the notebook rather than in an installed distribution."""
    for candidate in (search_dir / f"{module}.py", search_dir / module / "__init__.py"):
        if candidate.is_file():
            return candidate if candidate.name != "__init__.py" else candidate.parent
    return None


def infer(source: str, *, search_dir: Path) -> Inferred:
    """Pinned requirements for the imports of ``source``; stdlib and local modules excluded."""
    out = Inferred()
    for module, dotted in imported_modules(source):
        if module in sys.stdlib_module_names or module == "__future__":
            continue
        local = local_module_path(module, search_dir)
        if local is not None:
            out.local_modules[module] = local
            continue
        dists = distribution_of(module, dotted)
        if not dists:
            if importlib.util.find_spec(module) is None:
                out.unresolved.append(module)
            continue
        for dist in dists:
            req = pinned(dist)
            if req not in out.requirements:
                out.requirements.append(req)
    return out


# -- what a --cmd runs ---------------------------------------------------------------------------
_PYTHON = re.compile(r"^python(\d(\.\d+)?)?$")
_APP_REFERENCE = re.compile(r"^([A-Za-z_][\w.]*):[A-Za-z_][\w.]*(\(\))?$")
_OPERATORS = {"&&", "||", ";", "|", "&"}
_WRAPPERS = {"exec", "env", "nohup", "time"}


@dataclass
class Command:
    """What a server's shell command runs: its programs (``uvicorn``), the Python modules it runs or
    names (``python -m http.server``, ``main`` of ``main:app``) and the Python files it runs."""

    programs: list[str] = field(default_factory=list)
    modules: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


def read_command(cmd: str) -> Command:
    """The programs, modules and files of ``cmd`` (each simple command of a compound one)."""
    try:
        words = shlex.split(cmd, comments=True)
    except ValueError:
        return Command()
    found = Command()
    simple: list[str] = []
    for word in [*words, ";"]:
        if word not in _OPERATORS:
            simple.append(word)
            continue
        while simple and ("=" in simple[0] and not simple[0].startswith("=") or simple[0] in _WRAPPERS):
            simple.pop(0)  # VAR=value, exec, env...
        if simple:
            _read_simple(simple, found)
        simple = []
    return found


def _read_simple(words: list[str], found: Command) -> None:
    program, args = Path(words[0]).name, words[1:]
    if _PYTHON.match(program):
        options = [a for a in args if a.startswith("-")]
        if "-m" in args and args.index("-m") + 1 < len(args):
            found.modules.append(args[args.index("-m") + 1].split(".")[0])
        elif args and args[0].endswith(".py") and not options[:1]:
            found.files.append(args[0])
        return
    if "$" not in program:
        found.programs.append(program)
    for arg in args:
        match = _APP_REFERENCE.match(arg)
        if match:
            found.modules.append(match.group(1).split(".")[0])


#: Names that are never data files of the app: its modules, notebooks, secrets; and the files a
#: project has of its own (generated), which a copy must not replace.
_NOT_DATA = (".py", ".ipynb", ".pyc", ".env")
_GENERATED = {"requirements.txt", "Dockerfile", "pyproject.toml", "README.md"}
#: Files larger than this are better put on /data than in an image (a note says so).
LARGE_FILE = 100 * 1024 * 1024


def data_file(text: str, search_dir: Path) -> str | None:
    """``text`` as a file beside the notebook (relative, inside the folder, not a module), or None."""
    if not text or len(text) > 255 or "\n" in text or "\x00" in text or "://" in text:
        return None
    path = Path(text)
    if path.is_absolute() or path.name.endswith(_NOT_DATA) or path.name.startswith("."):
        return None
    try:
        resolved = (search_dir / path).resolve()
        if not resolved.is_relative_to(search_dir.resolve()) or not resolved.is_file():
            return None
    except (OSError, ValueError):
        return None
    relative = resolved.relative_to(search_dir.resolve()).as_posix()
    return None if relative in _GENERATED else relative


def script_distribution(program: str) -> str | None:
    """The installed distribution whose console script ``program`` is (``uvicorn`` → uvicorn)."""
    for entry in metadata.entry_points(group="console_scripts"):
        if entry.name == program and entry.dist is not None:
            return entry.dist.name
    return None


# -- what the cell imported while it ran ------------------------------------------------------------
#: The kernel's own packages: what they import while a cell runs (display hooks...) is not the cell's.
KERNEL_DISTRIBUTIONS = ("ipython", "ipykernel", "jupyter-client", "ipywidgets", "comm")


def dependency_closure(dists: list[str]) -> set[str]:
    """``dists`` and everything they require (their extras left out), as canonical names."""
    seen: set[str] = set()
    todo = list(dists)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for spec in requires:
            try:
                req = Requirement(spec)
            except InvalidRequirement:
                continue
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen


def imported_at_run(modules: Iterable[str], covered: list[str], search_dir: Path) -> dict[str, str]:
    """Requirements for modules the cell imported while it ran (``joblib.load`` of a scikit-learn
    model imports sklearn; FastAPI's forms import python-multipart), by module: those whose
    distribution neither ``covered`` (pinned requirements) nor the kernel's own packages bring."""
    brought = dependency_closure([requirement_name(r) for r in covered]) | dependency_closure(
        list(KERNEL_DISTRIBUTIONS)
    )
    found: dict[str, str] = {}
    for module in sorted({m.split(".")[0] for m in modules}):
        if module in sys.stdlib_module_names or module.startswith("_") or local_module_path(module, search_dir):
            continue
        for dist in distribution_of(module, module):
            if canonicalize_name(dist) not in brought:
                found.setdefault(module, pinned(dist))
    return found


# -- everything a project needs, found -------------------------------------------------------------
#: Packages the generated serving code imports, with the spec used when the kernel lacks them.
SERVING_PACKAGES = {"uvicorn": "uvicorn", "a2wsgi": "a2wsgi"}


class Found:
    """What a captured app needs, found step by step: pinned requirements (each with why it was
    inferred, shown for confirmation), modules beside the notebook (their imports followed), and
    notes on what could not be found."""

    def __init__(self, search_dir: Path):
        self.search_dir = search_dir
        self.requirements: list[str] = []
        self.local_modules: dict[str, Path] = {}
        self.data_files: dict[str, Path] = {}  # files the app reads, by their path beside the notebook
        self.notes: list[str] = []
        self.shown: list[tuple[str, str]] = []  # (requirement, why)

    def add(self, requirement: str, why: str) -> None:
        if requirement not in self.requirements:
            self.requirements.append(requirement)
            self.shown.append((requirement, why))

    def module(self, source: str, where: str = "") -> None:
        """The imports of ``source`` (the app's module, or a local module it imports), and the files
        beside the notebook it names."""
        self.files(source)
        inferred = infer(source, search_dir=self.search_dir)
        for req in inferred.requirements:
            self.add(req, f"imported{where}")
        for module in inferred.unresolved:
            if module in SERVING_PACKAGES:
                self.add(SERVING_PACKAGES[module], "the generated server imports it")
            else:
                self.notes.append(
                    f"`import {module}`{where}: no installed distribution provides it, so it is not in "
                    "requirements.txt. Install it in the kernel (it is then inferred), or add it with --requirements."
                )
        for module, path in inferred.local_modules.items():
            self.local(module, path)

    def local(self, module: str, path: Path) -> None:
        """A module beside the notebook: copied into the project, its own imports followed."""
        if module in self.local_modules:
            return
        self.local_modules[module] = path
        for file in [path] if path.is_file() else sorted(path.rglob("*.py")):
            try:
                self.module(file.read_text(), f" by {file.relative_to(self.search_dir)}")
            except (SyntaxError, UnicodeDecodeError, ValueError):
                continue  # a module that does not parse fails where it runs, with Python's own message

    def files(self, source: str) -> None:
        """Files beside the notebook that ``source`` names in a string (``joblib.load("model.pkl")``,
        ``Path(__file__).parent / "labels.txt"``): the app reads them where it runs."""
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                name = data_file(node.value, self.search_dir)
                if name is not None:
                    self.data_files.setdefault(name, self.search_dir / name)

    def declared(self, app_files: Iterable[str]) -> None:
        """The ``app_files`` the cell declares (files or folders beside the notebook)."""
        for entry in app_files:
            path = (self.search_dir / entry).resolve()
            if not path.is_relative_to(self.search_dir.resolve()) or not path.exists():
                raise CaptureError(
                    f"app_files {entry!r}: no such file or folder in the notebook's folder {self.search_dir}; "
                    "list paths relative to it. Nothing was written."
                )
            for file in [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()):
                self.data_files.setdefault(file.relative_to(self.search_dir.resolve()).as_posix(), file)

    def command(self, cmd: str, where: str) -> None:
        """What ``--cmd`` runs: its program's package (``uvicorn``), and the modules and files it names."""
        command = read_command(cmd)
        for program in command.programs:
            dist = script_distribution(program)
            if dist is not None:
                self.add(pinned(dist), f"the program of --cmd, `{program}`")
        for file in command.files:
            local = self.search_dir / file
            if file != "server.py" and local.is_file():
                self.local(local.stem, local)
        for module in command.modules:
            if module == "server":  # the cell itself
                continue
            local_path = local_module_path(module, self.search_dir)
            if local_path is not None:
                self.local(module, local_path)
                continue
            dists = distribution_of(module, module)
            if dists:
                for dist in dists:
                    self.add(pinned(dist), f"--cmd runs `{module}`")
            elif module not in sys.stdlib_module_names and importlib.util.find_spec(module) is None:
                raise CaptureError(
                    f"--cmd {cmd!r} names the module `{module}`, but no {module}.py is beside the notebook and no "
                    f"installed package provides it. {where.capitalize()} is written to server.py: name it "
                    f"`server` (e.g. `server:app`), or put {module}.py beside the notebook. Nothing was written."
                )

    def at_run(self, imported: Iterable[str], held: Iterable[str]) -> None:
        """Packages of what the cell imported while it ran, and of the values it holds (a model
        loaded from a file is an object of a package the cell never imports by name)."""
        for module, req in imported_at_run(held, self.requirements, self.search_dir).items():
            self.add(req, f"the cell holds a `{module}` object")
        for module, req in imported_at_run(imported, self.requirements, self.search_dir).items():
            self.add(req, f"`{module}` was imported while the cell ran")
