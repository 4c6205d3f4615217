"""Read a cell with ``ast``: its mode (fal.App or server), its App class and the class's own config."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import CaptureError

# fal.App class attributes (and class keyword arguments) that map onto AppConfig fields.
CLASS_CONFIG_KEYS = {
    "requirements": "requirements",
    "machine_type": "machine_type",
    "num_gpus": "num_gpus",
    "regions": "regions",
    "keep_alive": "keep_alive",
    "app_name": "name",
    "name": "name",
    "app_auth": "auth",
    "min_concurrency": "min_concurrency",
    "max_concurrency": "max_concurrency",
    "concurrency_buffer": "concurrency_buffer",
    "concurrency_buffer_perc": "concurrency_buffer_perc",
    "scaling_delay": "scaling_delay",
    "max_multiplexing": "max_multiplexing",
    "request_timeout": "request_timeout",
    "startup_timeout": "startup_timeout",
    "secrets": "secrets",
    "data_mounts": "data_mounts",
    "app_files": "app_files",
    "app_files_ignore": "app_files_ignore",
    "skip_retry_conditions": "skip_retry_conditions",
    "retry_config": "retry_config",
    "termination_grace_period_seconds": "termination_grace_period_seconds",
    "metrics_port": "metrics_port",
    "exposed_port": "exposed_port",
}
WSGI_FRAMEWORKS = {"flask", "django", "bottle", "falcon", "pyramid"}
_MAGIC_LINE = re.compile(r"^\s*(%%?|!)")
_CAMEL_PART = re.compile(r"[A-Z][a-z]*")


def fal_app_name(class_name: str) -> str:
    """fal's default app name for a class: ``MyGoodApp`` → ``my-good-app``."""
    parts = _CAMEL_PART.findall(class_name)
    if parts:
        return "-".join(p.lower() for p in parts)
    if "_" in class_name:
        return "-".join(p.lower() for p in class_name.split("_") if p)
    return class_name.lower()


def parse_cell(source: str, *, where: str = "the cell") -> ast.Module:
    """Parse cell source, turning syntax errors (and IPython-only syntax) into CaptureError."""
    try:
        return ast.parse(source)
    except SyntaxError as exc:
        lineno = exc.lineno or 0
        lines = source.splitlines()
        line = lines[lineno - 1] if 0 < lineno <= len(lines) else ""
        if _MAGIC_LINE.match(line):
            raise CaptureError(
                f"Line {lineno} of {where} is IPython syntax ({line.strip()!r}), which cannot run "
                "in a deployed app. Move it to another cell; for packages use --requirements."
            ) from None
        raise CaptureError(
            f"Syntax error in {where}, line {lineno}: {exc.msg}.\n    {line.strip()}\n"
            "Fix the line and run the cell again; nothing was written."
        ) from None


def literal_value(node: ast.expr) -> Any:
    """The value of a literal expression; ValueError for anything else, including literals that
    cannot be built (``{[1]: 2}``: an unhashable key) or are too deep or too large."""
    try:
        return ast.literal_eval(node)
    except (TypeError, MemoryError, RecursionError) as exc:
        raise ValueError(f"not a usable literal ({type(exc).__name__})") from None


def _base_is_fal_app(base: ast.expr, fal_aliases: set[str], app_aliases: set[str]) -> bool:
    if isinstance(base, ast.Attribute) and base.attr == "App":
        return isinstance(base.value, ast.Name) and base.value.id in fal_aliases
    return isinstance(base, ast.Name) and base.id in app_aliases


def find_app_classes(tree: ast.Module, namespace: dict[str, Any] | None = None) -> list[ast.ClassDef]:
    """Top-level classes deriving from ``fal.App`` (by import alias, or by the live object)."""
    fal_aliases, app_aliases = {"fal"}, set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            fal_aliases |= {a.asname or a.name for a in node.names if a.name == "fal"}
        elif isinstance(node, ast.ImportFrom) and node.module == "fal":
            app_aliases |= {a.asname or a.name for a in node.names if a.name == "App"}
    found = []
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        if any(_base_is_fal_app(b, fal_aliases, app_aliases) for b in node.bases):
            found.append(node)
        elif namespace is not None and _is_live_app_subclass(namespace.get(node.name)):
            found.append(node)
    return found


def _is_live_app_subclass(obj: Any) -> bool:
    try:
        import fal

        return isinstance(obj, type) and issubclass(obj, fal.App) and obj is not fal.App
    except ImportError:  # pragma: no cover - fal is a dependency
        return False


@dataclass
class ClassConfig:
    """Configuration a fal.App class declares, keyed by AppConfig field."""

    values: dict[str, Any] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)


def read_class_config(node: ast.ClassDef, live_class: Any = None) -> ClassConfig:
    """Class keyword arguments and class attributes that fal reads, as literal values.

    A value that is not a literal is taken from the live class when the cell ran in a kernel;
    otherwise it is reported as unreadable (it stays in the source, where fal still reads it).
    """
    out = ClassConfig()

    def take(attr: str, value_node: ast.expr, live_value: Any) -> None:
        key = CLASS_CONFIG_KEYS.get(attr)
        if key is None:
            return
        try:
            out.values[key] = literal_value(value_node)
        except ValueError:
            if live_value is not None:
                out.values[key] = live_value
            else:
                out.unreadable.append(attr)

    live_kwargs = getattr(live_class, "host_kwargs", {}) if live_class is not None else {}
    for kw in node.keywords:
        if kw.arg and kw.arg != "metaclass":
            live = getattr(live_class, "app_name", None) if kw.arg == "name" else live_kwargs.get(kw.arg)
            take(kw.arg, kw.value, live)
    for stmt in node.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            attr, value = stmt.targets[0].id, stmt.value
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value:
            attr, value = stmt.target.id, stmt.value
        else:
            continue
        take(attr, value, getattr(live_class, attr, None) if live_class is not None else None)
    return out


def find_server_interface(tree: ast.Module, entry: str, namespace: dict[str, Any] | None) -> str | None:
    """``"asgi"`` or ``"wsgi"`` for the cell's server object ``entry``; None if the cell lacks it."""
    defined = any(
        isinstance(node, (ast.Assign, ast.AnnAssign, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        and entry in _bound_names(node)
        for node in tree.body
    )
    if not defined:
        return None
    if namespace is not None and entry in namespace:
        return interface_of(namespace[entry])
    imported = {
        (n.module or "").split(".")[0] if isinstance(n, ast.ImportFrom) else a.name.split(".")[0]
        for n in ast.walk(tree)
        if isinstance(n, (ast.Import, ast.ImportFrom))
        for a in n.names
    }
    return "wsgi" if imported & WSGI_FRAMEWORKS else "asgi"


#: Constructors of server applications, by their last name (``FastAPI()``, ``flask.Flask(__name__)``).
SERVER_CONSTRUCTORS = {"FastAPI", "Starlette", "Flask", "Quart", "Litestar", "Sanic", "Bottle", "App", "API"}
_NOT_A_NAME = re.compile(r"[^a-z0-9]+")


def server_objects(tree: ast.Module) -> dict[str, str | None]:
    """The cell's server applications, as it makes them (``api = FastAPI(title="Hello API")``):
    each object's name, with the ``title=`` it was given (or None)."""
    found: dict[str, str | None] = {}
    for node in tree.body:
        value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None
        if not isinstance(value, ast.Call):
            continue
        func = value.func
        called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if called not in SERVER_CONSTRUCTORS:
            continue
        title = next(
            (k.value.value for k in value.keywords if k.arg == "title" and isinstance(k.value, ast.Constant)), None
        )
        for name in sorted(_bound_names(node)):
            found[name] = title if isinstance(title, str) else None
    return found


def kebab(text: str) -> str:
    """``text`` as an app name: lower case words joined by dashes (``Hello API`` → ``hello-api``)."""
    return _NOT_A_NAME.sub("-", text.lower()).strip("-")[:63]


def interface_of(obj: Any) -> str:
    """Tell an ASGI application (async ``__call__``) from a WSGI one."""
    import inspect

    call = obj if inspect.isfunction(obj) else type(obj).__call__
    return "asgi" if inspect.iscoroutinefunction(call) else "wsgi"


def _bound_names(node: ast.stmt) -> set[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, ast.AnnAssign):
        targets = [node.target]
    else:
        return set()
    return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
