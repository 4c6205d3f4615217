"""Read a cell with ``ast``: its mode (fal.App or server), its App class and the class's own config."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Any

from ..config import is_text
from ..errors import CaptureError
from ..fal_sdk import function_options
from ..generate.source import source_lines

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
    if not is_text(source):
        number = next(n for n, text in enumerate(source_lines(source), start=1) if not is_text(text))
        raise CaptureError(
            f"Line {number} of {where} holds text that is not valid Unicode (a lone surrogate such as \\ud800); "
            "remove it and run the cell again; nothing was written."
        )
    try:
        return ast.parse(source)
    except (RecursionError, MemoryError):
        raise CaptureError(f"{where} is nested too deeply for Python's parser; nothing was written.") from None
    except SyntaxError as exc:
        lineno = exc.lineno or 0
        lines = source_lines(source)
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


def fal_aliases(tree: ast.Module, name: str) -> tuple[set[str], set[str]]:
    """The names the cell gives the ``fal`` module (``import fal as f``) and ``fal.<name>``
    (``from fal import App as A``)."""
    modules, names = {"fal"}, set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {a.asname or a.name for a in node.names if a.name == "fal"}
        elif isinstance(node, ast.ImportFrom) and node.module == "fal":
            names |= {a.asname or a.name for a in node.names if a.name == name}
    return modules, names


def find_app_classes(tree: ast.Module, namespace: dict[str, Any] | None = None) -> list[ast.ClassDef]:
    """Top-level classes deriving from ``fal.App`` (by import alias, or by the live object)."""
    fal_modules, app_aliases = fal_aliases(tree, "App")
    found = []
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        if any(_base_is_fal_app(b, fal_modules, app_aliases) for b in node.bases):
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


# -- `if __name__ == "__main__":` blocks ------------------------------------------------------------
def main_blocks(tree: ast.Module) -> list[ast.If]:
    """The cell's top-level ``if __name__ == "__main__":`` statements (a script's start, e.g. ``app.run()``)."""
    return [node for node in tree.body if isinstance(node, ast.If) and _is_main_test(node.test)]


def _is_main_test(test: ast.expr) -> bool:
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = [test.left, test.comparators[0]]
    names = [s for s in sides if isinstance(s, ast.Name) and s.id == "__name__"]
    texts = [s for s in sides if isinstance(s, ast.Constant) and s.value == "__main__"]
    return len(names) == 1 and len(texts) == 1


def kernel_source(source: str) -> str:
    """The cell as the kernel runs it under ``%%fal_app``: each ``if __name__ == "__main__":`` test reads
    ``False`` (in a notebook ``__name__`` is ``"__main__"``, and ``app.run()`` would block the kernel);
    every line keeps its number, so tracebacks point at the cell's own lines."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source  # the kernel reports it as usual
    lines = source.splitlines(keepends=True)
    for node in reversed(main_blocks(tree)):
        test = node.test
        first, last = test.lineno - 1, (test.end_lineno or test.lineno) - 1
        start = _char_offset(lines[first], test.col_offset)
        end = _char_offset(lines[last], test.end_col_offset or 0)
        padding = "\n" * (last - first)  # a test over several lines keeps them
        lines[first : last + 1] = [lines[first][:start] + "False" + lines[last][end:] + padding]
    return "".join(lines)


def _char_offset(line: str, byte_offset: int) -> int:
    """ast's column offsets count UTF-8 bytes."""
    return len(line.encode()[:byte_offset].decode(errors="ignore"))


def without_main_blocks(source: str) -> tuple[str, list[ast.If]]:
    """The cell without its ``if __name__ == "__main__":`` blocks (each left as a comment line), and
    the blocks taken out."""
    blocks = main_blocks(ast.parse(source))
    lines = source_lines(source)
    for node in reversed(blocks):
        lines[node.lineno - 1 : node.end_lineno] = [
            f'# (the cell\'s `if __name__ == "__main__":` block, line {node.lineno}, is left out: the runner starts '
            "the server)"
        ]
    return "\n".join(lines), blocks


def port_of(blocks: list[ast.If]) -> int | None:
    """The literal ``port=`` a block's call passes (``app.run(port=5000)``, ``uvicorn.run(app, port=8080)``)."""
    for block in blocks:
        for node in ast.walk(block):
            if isinstance(node, ast.Call):
                for kw in node.keywords:
                    if kw.arg == "port" and isinstance(kw.value, ast.Constant) and type(kw.value.value) is int:
                        return kw.value.value
    return None


# -- @fal.function servers (fal's Direct Server Mode with a function) --------------------------------
@dataclass
class FunctionServer:
    """A top-level ``@fal.function(..., exposed_port=N)`` function: fal runs it, and it starts the server
    (fal's "migrate an existing server" guide). ``values`` are AppConfig values from the decorator's
    keywords; ``dockerfile`` the text of its ``image=ContainerImage.from_dockerfile_str(...)``."""

    node: ast.FunctionDef
    values: dict[str, Any]
    dockerfile: str | None = None
    unreadable: list[str] = field(default_factory=list)


def find_function_servers(tree: ast.Module, namespace: dict[str, Any] | None = None) -> list[FunctionServer]:
    """The cell's ``@fal.function`` functions that expose a port."""
    fal_modules, function_aliases = fal_aliases(tree, "function")
    strings = _string_constants(tree)
    found = []
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            if not (
                isinstance(decorator, ast.Call) and _is_fal_function(decorator.func, fal_modules, function_aliases)
            ):
                continue
            live = function_options(namespace.get(node.name)) if namespace is not None else {}
            server = _function_server(node, decorator, live, strings)
            if "exposed_port" in server.values:
                found.append(server)
    return found


def _is_fal_function(func: ast.expr, fal_aliases: set[str], function_aliases: set[str]) -> bool:
    if isinstance(func, ast.Attribute) and func.attr == "function":
        return isinstance(func.value, ast.Name) and func.value.id in fal_aliases
    return isinstance(func, ast.Name) and func.id in function_aliases


def _function_server(
    node: ast.FunctionDef, decorator: ast.Call, live: dict[str, Any], strings: dict[str, str]
) -> FunctionServer:
    server = FunctionServer(node, {}, live.get("dockerfile"))
    for kw in decorator.keywords:
        if kw.arg == "image":
            server.dockerfile = server.dockerfile or _dockerfile_text(kw.value, strings)
            continue
        key = CLASS_CONFIG_KEYS.get(kw.arg or "")
        if key is None:
            continue
        try:
            server.values[key] = literal_value(kw.value)
        except ValueError:
            if kw.arg in live:
                server.values[key] = live[kw.arg]
            else:
                server.unreadable.append(kw.arg or "")
    return server


def _string_constants(tree: ast.Module) -> dict[str, str]:
    """Top-level ``NAME = "literal text"`` of the cell."""
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found[target.id] = node.value.value
    return found


def _dockerfile_text(value: ast.expr, strings: dict[str, str]) -> str | None:
    """The text of ``ContainerImage.from_dockerfile_str(TEXT)`` (a literal, or a name bound to one)."""
    if not (isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and value.args):
        return None
    if value.func.attr != "from_dockerfile_str":
        return None
    arg = value.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    return strings.get(arg.id) if isinstance(arg, ast.Name) else None
