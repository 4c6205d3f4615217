"""The import graph of fal_notebook, read from the source: layers depend one way (ARCHITECTURE.md).

Every import counts, at any depth of a module (a function's lazy import and a type-only import are
dependencies too). A unit is a subpackage (``gateway``) or a top-level module (``client``); the
package's ``__init__`` is its top and may import any unit, and no unit imports it.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

import fal_notebook

ROOT = Path(fal_notebook.__file__).parent
TOP = "fal_notebook"


@cache
def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its ``__init__``)."""
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = [TOP, *path.relative_to(ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def resolve(module: str, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    """The dotted names an import statement of ``module`` reads."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    if node.level == 0:
        base = node.module or ""
    else:
        package = module if modules()[module].name == "__init__.py" else module.rpartition(".")[0]
        base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
        base = f"{base}.{node.module}" if node.module else base
    for alias in node.names:
        submodule = f"{base}.{alias.name}"
        yield submodule if submodule in modules() else base


@cache
def imports() -> dict[str, set[str]]:
    """Module → the package's modules it imports."""
    graph = {}
    for name, path in modules().items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                found |= {target for target in resolve(name, node) if target.split(".")[0] == TOP}
        graph[name] = found - {name}
    return graph


def unit(module: str) -> str:
    """``gateway`` for ``fal_notebook.gateway.apps``; the package's top is ``fal_notebook``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else TOP


def unit_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, targets in imports().items():
        graph.setdefault(unit(module), set()).update(unit(t) for t in targets if unit(t) != unit(module))
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def importers(target: str) -> dict[str, set[str]]:
    """Units that import ``target``, with the modules that do."""
    found: dict[str, set[str]] = {}
    for module, targets in imports().items():
        if unit(module) != target and any(unit(t) == target for t in targets):
            found.setdefault(unit(module), set()).add(module)
    return found


def test_the_graph_is_read_whole():
    graph = imports()
    assert len(graph) > 50
    assert "fal_notebook.wire" in graph["fal_notebook.client"]
    assert "fal_notebook.backends" in graph["fal_notebook.server.handlers"]  # `from .. import backends`
    assert "fal_notebook.client" in graph["fal_notebook.backends.base"]  # a function's lazy import


def describe(component: list[str], graph: dict[str, set[str]]) -> str:
    """The edges inside a cycle, one per line."""
    return "\n".join(f"{a} -> {b}" for a in component for b in sorted(graph[a]) if b in component)


def test_no_cycle_between_packages():
    graph = unit_graph()
    found = cycles(graph)
    assert not found, "import cycles between packages:\n" + "\n\n".join(describe(c, graph) for c in found)


def test_no_cycle_between_modules():
    graph = imports()
    found = cycles(graph)
    assert not found, "import cycles between modules:\n" + "\n\n".join(describe(c, graph) for c in found)


def test_nothing_imports_the_top():
    assert importers(TOP) == {}


@pytest.mark.parametrize(
    "lower, upper",
    [
        ("backends", "widgets"),  # a Deployment is data; the widgets show it (Deployment.views)
        ("gateway", "widgets"),
        ("gateway", "backends"),  # the gateway process knows nothing of deploy targets
        ("client", "gateway"),  # the client speaks the protocol, whoever serves it
        ("protocol", "gateway"),
        ("client", "backends"),
        ("capture", "backends"),
        ("generate", "capture"),  # a cell becomes a model, the model becomes files: never back
    ],
)
def test_layers(lower, upper):
    assert upper not in unit_graph()[lower], f"{lower} imports {upper}: {sorted(importers(upper).get(lower, []))}"


#: The kernel's view of the gateway: the only modules of it that the rest of the package imports (the
#: package's top with its start/stop/status functions, control.py, paths.py, the admin API's
#: contract, what the gateway takes from the environment it starts in), so a kernel never loads the
#: gateway's process side (runners, the store, Docker's SDK).
KERNEL_VIEW = {
    "fal_notebook.gateway",
    "fal_notebook.gateway.control",
    "fal_notebook.gateway.paths",
    "fal_notebook.gateway.admin_api",
    "fal_notebook.gateway.environment",
}


def gateway_modules_reached(start: set[str]) -> set[str]:
    """The gateway's modules that importing ``start`` loads (imports inside the gateway, followed)."""
    reached, todo = set(), list(start)
    while todo:
        module = todo.pop()
        if module not in reached:
            reached.add(module)
            todo += [t for t in imports()[module] if unit(t) == "gateway"]
    return reached


def test_outside_the_gateway_only_its_kernel_view_is_imported():
    seen = sorted(
        f"{module} -> {target}"
        for module, targets in imports().items()
        if unit(module) != "gateway"
        for target in targets
        if unit(target) == "gateway" and target not in KERNEL_VIEW
    )
    assert seen == [], "import the gateway's kernel view (KERNEL_VIEW), or move what is shared below the gateway"


def test_the_kernel_view_loads_nothing_of_the_gateway_process():
    """Besides its own modules, the kernel's view loads only tls.py (control.py gives fal_client the CA
    bundle that trusts the gateway's certificate)."""
    assert gateway_modules_reached(KERNEL_VIEW) == KERNEL_VIEW | {"fal_notebook.gateway.tls"}


#: ARCHITECTURE.md's layers, top first: a unit imports only units of lower rows (or of its own row).
LAYERS = [
    [TOP],
    ["magics", "cli", "server"],
    ["widgets", "jobs", "schema", "validation"],
    ["backends"],
    ["gateway"],
    ["client", "protocol", "uploads"],
    ["capture", "generate", "config", "packages", "environments"],
    ["state", "statuses", "wire", "fal_sdk", "docker_engine", "watch", "errors", "secrets", "credentials", "_version"],
]


def test_layers_of_architecture_md():
    row = {unit: depth for depth, units in enumerate(LAYERS) for unit in units}
    graph = unit_graph()
    assert set(graph) <= set(row), f"units missing from LAYERS: {sorted(set(graph) - set(row))}"
    upward = sorted(f"{a} -> {b}" for a, targets in graph.items() for b in targets if row[b] < row[a])
    assert upward == []


def test_the_wire_contract_is_pure():
    """``wire.py`` imports only the standard library: no I/O library, nothing of the package."""
    tree = ast.parse(modules()["fal_notebook.wire"].read_text())
    imported = {
        name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for name in ([a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or "."])
    }
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}
    assert not imported & {"os", "io", "socket", "subprocess", "shutil", "tempfile"}  # no I/O, no environment
