"""Make a cell self-contained: find the names it uses but does not define, and bring them in.

A name is resolved by a *resolver*: the kernel's namespace when the cell ran in a kernel, or the
notebook's other cells read statically (``export_notebook``). Either way it becomes one of three
kinds of definition: an import statement, a simple constant, or the source of a function or class
(whose own free names are resolved in turn).
"""

from __future__ import annotations

import ast
import builtins
import inspect
import symtable
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from ..config import short_repr
from ..errors import CaptureError, FalNotebookError
from ..generate.source import source_lines
from .classify import _MAGIC_LINE, literal_value, parse_cell

MAX_CONSTANT_CHARS = 10_000
SUGGESTION = (
    "Create it inside the app instead (for a fal.App, in `setup()`: `self.x = ...`; for a server, "
    "at import time of the cell), or make it a simple constant."
)


@dataclass(frozen=True)
class Definition:
    """Code that binds ``name`` in the generated module."""

    name: str
    kind: Literal["import", "constant", "source"]
    code: str
    origin: str = ""

    @property
    def needs(self) -> set[str]:
        return free_names(self.code) if self.kind == "source" else set()


class Resolver(Protocol):
    def resolve(self, name: str) -> Definition | None:
        """The definition of ``name``, None if unknown; CaptureError if it cannot be written."""


def free_names(source: str) -> set[str]:
    """Global names that ``source`` reads but never binds (builtins excluded), including names
    in annotations, which pydantic and fal evaluate even under ``from __future__ import annotations``."""
    tree = ast.parse(source)
    table = symtable.symtable(_evaluated_annotations(source, tree), "<cell>", "exec")
    bound = {s.get_name() for s in table.get_symbols() if s.is_assigned() or s.is_imported()}
    used = _string_annotation_names(tree)

    def walk(t: symtable.SymbolTable, top: bool) -> None:
        for sym in t.get_symbols():
            if top:
                if sym.is_referenced():
                    used.add(sym.get_name())
            elif sym.is_global():
                (bound if sym.is_declared_global() and sym.is_assigned() else used).add(sym.get_name())
                if sym.is_referenced():
                    used.add(sym.get_name())
        for child in t.get_children():
            walk(child, False)

    walk(table, True)
    return {n for n in used - bound if not hasattr(builtins, n)}


def _evaluated_annotations(source: str, tree: ast.Module) -> str:
    """``source`` without ``from __future__ import annotations``, so symtable sees annotation names."""
    lines = source_lines(source)
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            for i in range(node.lineno - 1, node.end_lineno or node.lineno):
                lines[i] = ""
    return "\n".join(lines)


def _string_annotation_names(tree: ast.Module) -> set[str]:
    """Names inside string annotations such as ``x: "Input"``."""
    annotations = [n.annotation for n in ast.walk(tree) if isinstance(n, (ast.arg, ast.AnnAssign))]
    annotations += [n.returns for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    names = set()
    for ann in filter(None, annotations):
        for node in ast.walk(ann):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                try:
                    names |= {n.id for n in ast.walk(ast.parse(node.value, mode="eval")) if isinstance(n, ast.Name)}
                except SyntaxError:
                    pass
    return names


def first_use(source: str, name: str) -> int | None:
    """Line of the first read of ``name`` in ``source``."""
    lines = [n.lineno for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Name) and n.id == name]
    return min(lines) if lines else None


def closure(source: str, resolver: Resolver, *, where: str = "the cell") -> list[Definition]:
    """Definitions the cell needs, dependencies first, imports hoisted to the front."""
    ordered: list[Definition] = []
    seen: set[str] = set()

    def visit(name: str, used_by: str | None) -> None:
        if name in seen:
            return
        seen.add(name)
        definition = resolver.resolve(name)
        if definition is None:
            if used_by is None:
                line = first_use(source, name)
                place = f"line {line} of {where}" if line else where
            else:
                place = f"`{used_by}`"
            raise CaptureError(
                f"`{name}` is used in {place} but is not defined there or anywhere in the notebook. "
                "Define or import it in the cell (or run the cell that defines it first)."
            )
        for needed in sorted(definition.needs):
            visit(needed, name)
        ordered.append(definition)

    for name in sorted(free_names(source)):
        visit(name, None)
    return [d for d in ordered if d.kind == "import"] + [d for d in ordered if d.kind != "import"]


# -- literal constants ---------------------------------------------------------------------------
def constant_code(name: str, value: Any) -> str | None:
    """``name = <literal>`` when ``value`` is a small literal that round-trips, else None."""
    if not _is_literal(value):
        return None
    try:
        text = _stable_repr(value)
    except ValueError:  # an integer over Python's 4,300-digit limit for conversion to text
        return None
    if len(text) > MAX_CONSTANT_CHARS:
        return None
    try:
        if ast.literal_eval(text) != value:
            return None
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    return f"{name} = {text}"


def _stable_repr(value: Any) -> str:
    """``repr`` with set elements sorted, so that regenerating gives the same file."""
    if type(value) in (set, frozenset) and value:
        try:
            items = ", ".join(_stable_repr(v) for v in sorted(value))
        except TypeError:
            return repr(value)
        return f"{{{items}}}" if type(value) is set else f"frozenset({{{items}}})"
    if type(value) in (list, tuple):
        parts = [_stable_repr(v) for v in value]
        if type(value) is tuple:
            return f"({', '.join(parts)}{',' if len(parts) == 1 else ''})"
        return f"[{', '.join(parts)}]"
    if type(value) is dict:
        return "{" + ", ".join(f"{_stable_repr(k)}: {_stable_repr(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _is_literal(value: Any, depth: int = 0) -> bool:
    if depth > 20:
        return False
    if value is None or type(value) in (bool, int, float, str, bytes, complex):
        return True
    if type(value) in (list, tuple, set, frozenset):
        return all(_is_literal(v, depth + 1) for v in value)
    if type(value) is dict:
        return all(_is_literal(k, depth + 1) and _is_literal(v, depth + 1) for k, v in value.items())
    return False


# -- resolving from the notebook's text ----------------------------------------------------------
def strip_magics(source: str) -> str:
    """Blank out IPython line magics and shell escapes, keeping line numbers."""
    return "\n".join("" if _MAGIC_LINE.match(line) else line for line in source_lines(source))


def statement_source(lines: list[str], node: ast.stmt) -> str:
    start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    return "\n".join(lines[start - 1 : node.end_lineno])


class NotebookResolver:
    """Resolves names from the top-level statements of notebook cells, read without running them."""

    def __init__(self, cells: Iterable[tuple[str, str]]):
        self._defs: dict[str, Definition | str] = {}
        for label, source in cells:
            self.add_cell(label, source)

    def add_cell(self, label: str, source: str) -> None:
        if source.lstrip().startswith("%%"):
            return
        text = strip_magics(source)
        try:
            tree = parse_cell(text, where=label)
        except CaptureError:  # a cell that does not parse defines nothing
            return
        lines = source_lines(text)
        for node in tree.body:
            for name, definition in _definitions_of(node, lines, label):
                self._defs[name] = definition

    def resolve(self, name: str) -> Definition | None:
        found = self._defs.get(name)
        if isinstance(found, str):
            raise CaptureError(
                f"`{name}` is computed in {found} and cannot be resolved without running the notebook. {SUGGESTION}"
            )
        return found


def _definitions_of(node: ast.stmt, lines: list[str], label: str) -> list[tuple[str, Definition | str]]:
    if isinstance(node, ast.Import):
        return [
            (
                (a.asname or a.name.split(".")[0]),
                Definition(a.asname or a.name.split(".")[0], "import", _import_code(a), label),
            )
            for a in node.names
        ]
    if isinstance(node, ast.ImportFrom):
        module = "." * node.level + (node.module or "")
        return [
            (a.asname or a.name, Definition(a.asname or a.name, "import", f"from {module} import {_alias(a)}", label))
            for a in node.names
            if a.name != "*"
        ]
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [(node.name, Definition(node.name, "source", statement_source(lines, node), label))]
    if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        if len(targets) == 1 and isinstance(targets[0], ast.Name):
            name = targets[0].id
            try:
                literal_value(node.value)
            except ValueError:
                return [(name, f"{label} (line {node.lineno}: `{lines[node.lineno - 1].strip()}`)")]
            return [(name, Definition(name, "constant", statement_source(lines, node), label))]
    bound = {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    return [(n, f"{label} (line {node.lineno})") for n in bound]


def _alias(a: ast.alias) -> str:
    return f"{a.name} as {a.asname}" if a.asname else a.name


def _import_code(a: ast.alias) -> str:
    return f"import {_alias(a)}"


# -- resolving from a live kernel ----------------------------------------------------------------
@contextmanager
def user_code(what: str) -> Iterator[None]:
    """Reading the kernel's objects runs their own code (a metaclass's ``__getattribute__``, a
    property): what that raises becomes a CaptureError naming ``what``."""
    try:
        yield
    except FalNotebookError:
        raise
    except Exception as exc:
        raise CaptureError(
            f"Reading {what} in the kernel raised {_described(exc)} from the object's own code; fal-notebook "
            "cannot capture it. Nothing was written."
        ) from None


def _described(exc: Exception) -> str:
    """An exception's class and text, even when its own ``__str__`` raises too."""
    try:
        return f"{type(exc).__name__} ({short_repr(str(exc))})"
    except Exception:
        return f"{type(exc).__name__} (its message cannot be shown)"


class KernelResolver:
    """Resolves names from the kernel's namespace; source text comes from the cells it ran."""

    def __init__(self, namespace: dict[str, Any]):
        self.namespace = namespace
        # IPython's input history; a user's own `In` (e.g. an input model) may shadow that name.
        history = next((h for h in (namespace.get("_ih"), namespace.get("In")) if isinstance(h, list)), [])
        self._history = NotebookResolver(
            (f"cell In[{i}]", cell) for i, cell in enumerate(history) if isinstance(cell, str)
        )

    def resolve(self, name: str) -> Definition | None:
        if name not in self.namespace:
            return None
        with user_code(f"`{name}`"):
            return self._resolve(name, self.namespace[name])

    def _resolve(self, name: str, value: Any) -> Definition | None:
        if inspect.ismodule(value):
            module = value.__name__
            if module == "__main__":
                raise CaptureError(f"`{name}` is the notebook's own module and cannot be imported.")
            code = f"import {module}" if module == name else f"import {module} as {name}"
            if "." in module and module.split(".")[0] == name:
                code = f"import {module}"
            return Definition(name, "import", code, "the kernel")
        constant = constant_code(name, value)
        if constant is not None:
            return Definition(name, "constant", constant, "the kernel")
        if _is_literal(value):
            raise CaptureError(
                f"The cell uses `{name}`, a constant (`{type(value).__name__}`) that cannot be written into the "
                f"app as a literal (longer than {MAX_CONSTANT_CHARS:,} characters, or a value such as nan with "
                f"no literal form). {SUGGESTION}"
            )
        imported = _import_of(name, value)
        if imported is not None:
            return Definition(name, "import", imported, "the kernel")
        if inspect.isfunction(value) or inspect.isclass(value):
            return self._source_of(name, value)
        kind = type(value).__qualname__
        article = "an" if kind[:1].lower() in "aeiou" else "a"
        raise CaptureError(
            f"The cell uses `{name}`, {article} {kind} object that exists only in the kernel's memory, so it "
            f"cannot be written into the deployed app. {SUGGESTION}"
        )

    def _source_of(self, name: str, value: Any) -> Definition:
        if getattr(value, "__name__", "") == "<lambda>":
            raise CaptureError(
                f"The cell uses `{name}`, a lambda defined in the notebook; fal-notebook cannot "
                "recover its source reliably. Turn it into a `def` function."
            )
        own_name = value.__name__
        text = self._history_source(own_name) or _getsource(value)
        if text is None:
            raise CaptureError(
                f"The cell uses `{name}` ({own_name}), but its source is not available in this "
                "kernel. Define it in a cell of this notebook (or import it from a module)."
            )
        if own_name != name:
            text += f"\n{name} = {own_name}"
        return Definition(name, "source", text, "the kernel")

    def _history_source(self, name: str) -> str | None:
        try:
            found = self._history.resolve(name)
        except CaptureError:
            return None
        return found.code if found is not None and found.kind == "source" else None


def _getsource(value: Any) -> str | None:
    try:
        return inspect.getsource(value)
    except (OSError, TypeError):
        return None


def _import_of(name: str, value: Any) -> str | None:
    """``from module import attr`` for an object that an importable module defines."""
    module_name = getattr(value, "__module__", None)
    if not isinstance(module_name, str) or module_name in ("__main__", "builtins") or module_name.startswith("__"):
        return None
    module = sys.modules.get(module_name)
    if module is None:
        return None
    attr = getattr(value, "__qualname__", None)
    if not (isinstance(attr, str) and "." not in attr and getattr(module, attr, None) is value):
        attr = next((k for k, v in vars(module).items() if v is value and not k.startswith("_")), None)
    if attr is None:
        return None
    public = _public_module(module_name, attr, value)
    return f"from {public} import {attr}" + (f" as {name}" if name != attr else "")


def _public_module(module_name: str, attr: str, value: Any) -> str:
    """Prefer the shortest parent package that re-exports ``attr`` (``pydantic`` over ``pydantic.main``)."""
    parts = module_name.split(".")
    for i in range(1, len(parts)):
        candidate = sys.modules.get(".".join(parts[:i]))
        if candidate is not None and getattr(candidate, attr, None) is value:
            return candidate.__name__
    return module_name
