"""Requirements from imports: module → distribution → the version installed in the kernel."""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import importlib.util
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path


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
