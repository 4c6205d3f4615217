"""Cell → AppProject: classify the cell, merge its configuration, make it self-contained."""

from __future__ import annotations

import ast
import itertools
import os
import types
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal, cast

from ..config import DEFAULT_SERVER_PORT, AppConfig, flag_for, kernel_python_version, reads_port_variable, short_repr
from ..errors import CaptureError, ConfigError
from ..generate.project import (
    AppProject,
    existing_state,
    project_path,
    render_files,
    settle_config,
    write_project,
)
from ..generate.source import function_start, module_source, requirements_block, serve_block
from ..packages import merge, without_fal
from ..secrets import secrets_in
from .classify import (
    FunctionServer,
    fal_app_name,
    find_app_classes,
    find_function_servers,
    find_server_interface,
    main_blocks,
    parse_cell,
    port_of,
    read_class_config,
    server_objects,
    without_main_blocks,
)
from .closure import KernelResolver, NotebookResolver, closure, user_code
from .requirements import LARGE_FILE, Found

#: How a server-mode module starts its server: an ASGI or WSGI object served by uvicorn, or a
#: ``@fal.function`` called as fal calls it; None: a ``--cmd`` of the user's own.
Start = Literal["asgi", "wsgi", "function"] | None
OPTION_ALIASES = {"port": "exposed_port", "class": "class_name", "secret": "secrets"}

__all__ = ["capture", "identify"]


def capture(
    source: str,
    name: str | None = None,
    *,
    namespace: dict[str, Any] | None = None,
    notebook_cells: Iterable[tuple[str, str]] = (),
    search_dir: str | os.PathLike | None = None,
    dir: str | os.PathLike | None = None,
    out_dir: str | os.PathLike = "fal_apps",
    force: bool = False,
    where: str = "the cell",
    imported: Iterable[str] = (),
    **options: Any,
) -> AppProject:
    """Turn a cell's source into a deployable project folder and return its ``AppProject``.

    ``namespace`` is the kernel's namespace the cell ran in (names the cell uses but does not
    define are resolved there); without it they are resolved from ``notebook_cells``, the
    ``(label, source)`` of the notebook's other cells. ``imported`` names the modules the cell
    imported while it ran (the magic records them): their packages are requirements too. ``options``
    are AppConfig fields (the magic's flags): they win over the App class's own attributes.
    ``search_dir`` is the notebook's folder (default: the working directory): local modules and the
    files the app reads are found there, and the project goes to ``dir`` (``--dir``), a subfolder of
    it, default ``<out_dir>/<name>``. Nothing is written on error.
    """
    options = {OPTION_ALIASES.get(k, k): v for k, v in options.items() if v not in (None, [], ())}
    tree = parse_cell(source, where=where)
    notes: list[str] = []
    with user_code(f"the objects {where} defines"):
        values, start = _classify(tree, namespace, options, notes, where)
    if name is not None:
        values["name"] = name
    cell_config = AppConfig.build(values, where=where)
    search = Path(search_dir or os.getcwd())
    project_dir = project_path(cell_config.name, root=search, dir=dir, out_dir=out_dir)
    config, from_file = settle_config(cell_config, project_dir, force=force, where=where)

    body = source
    if start is not None or config.mode == "app":  # the runner starts it: a script's own start never runs
        body, blocks = without_main_blocks(source)
        notes += [
            f'The cell\'s `if __name__ == "__main__":` block (line {b.lineno}) is left out of '
            f"{'app.py' if config.mode == 'app' else 'server.py'}: the runner starts the app itself."
            for b in blocks
        ]
    with user_code("the kernel's input history"):
        resolver = KernelResolver(namespace) if namespace is not None else NotebookResolver(notebook_cells)
    definitions = closure(body, resolver, where=where)
    module = module_source(config, body, definitions, _start_block(config, start))

    found = Found(search)
    found.module(module)
    if config.cmd is not None:
        found.command(config.cmd, where)
    found.at_run(imported, _value_modules(tree, namespace))
    found.declared(config.app_files or ())
    notes += found.notes
    if found.data_files:
        config = config.updated(app_files=sorted(found.data_files))
        notes.append(_data_note(found.data_files))
    requirements = merge(config.requirements, found.requirements)
    if config.mode == "app" and config.class_name is not None:  # app mode always names its class
        module += requirements_block(config.class_name, without_fal(requirements))
        if found.local_modules:
            module += f"{config.class_name}.local_python_modules = {sorted(found.local_modules)!r}\n"
    _check_module(module, config, where)

    existing, previous = existing_state(project_dir, force=force)
    files = render_files(
        config,
        module,
        requirements,
        _local_module_files(found.local_modules),
        existing_pyproject=existing,
        previous_toml=previous,
        data_files=list(found.data_files),
    )
    leaked = sorted({n for text in files.values() for n in secrets_in(text)})
    if leaked:
        raise CaptureError(
            f"The generated project would contain the value of {', '.join(leaked)}. Credentials "
            "must not be written into files: read them at run time instead (e.g. "
            "`os.environ[...]`, or fal `secrets`). Nothing was written."
        )
    notes += config.warnings
    if from_file:
        shown = ", ".join(f"{key} = {short_repr(getattr(config, key))}" for key in from_file)
        notes.append(
            f"Kept from pyproject.toml (changed there since the last capture; the cell did not change them): {shown}."
        )
    project = AppProject(
        config=config,
        path=project_dir.resolve(),
        files=files,
        requirements=requirements,
        notes=notes,
        data_files=found.data_files,
        cell=cell_config.model_dump(mode="json", exclude_none=True),
    )
    project.inferred = found.shown
    project.changed = write_project(project, force=force)
    return project


def identify(source: str, name: str | None = None, *, where: str = "the cell", **options: Any) -> AppConfig:
    """The configuration a capture of ``source`` would give (name, mode, options), read statically:
    nothing runs and nothing is written. Raises what the capture would raise on the cell's shape."""
    options = {OPTION_ALIASES.get(k, k): v for k, v in options.items() if v not in (None, [], ())}
    values, _ = _classify(parse_cell(source, where=where), None, options, [], where)
    if name is not None:
        values["name"] = name
    return AppConfig.build(values, where=where)


def _classify(
    tree: ast.Module, namespace: dict[str, Any] | None, options: dict[str, Any], notes: list[str], where: str
) -> tuple[dict[str, Any], Start]:
    """AppConfig values for the cell (class config merged with options) and how its server starts."""
    mode = options.get("mode")
    classes = [] if mode == "server" else find_app_classes(tree, namespace)
    wanted = options.get("class_name")
    if wanted is not None:
        matching = [c for c in classes if c.name == wanted]
        if not matching:
            listed = ", ".join(c.name for c in classes) or "none"
            raise CaptureError(f"--class {wanted}: no fal.App subclass of that name in {where} (found: {listed}).")
        classes = matching
    if len(classes) > 1:
        names = ", ".join(f"{c.name} (line {c.lineno})" for c in classes)
        raise CaptureError(
            f"{where} defines {len(classes)} fal.App classes: {names}. Pick the one to deploy with "
            f"--class, e.g. --class {classes[0].name}."
        )
    if classes:
        return _app_values(classes[0], namespace, options, notes), None
    if mode == "app":
        raise CaptureError(f"--mode app, but {where} defines no subclass of fal.App.")
    functions = [] if "cmd" in options else find_function_servers(tree, namespace)
    if len(functions) > 1:
        names = ", ".join(f"{f.node.name} (line {f.node.lineno})" for f in functions)
        raise CaptureError(f"{where} defines {len(functions)} @fal.function servers: {names}. Keep one per cell.")
    if functions:
        return _function_values(functions[0], options, notes), "function"
    return _server_values(tree, namespace, options, notes, where)


def _app_values(
    node: ast.ClassDef, namespace: dict[str, Any] | None, options: dict[str, Any], notes: list[str]
) -> dict[str, Any]:
    live = namespace.get(node.name) if namespace is not None else None
    declared = read_class_config(node, live)
    values = dict(declared.values)
    if "exposed_port" in values:
        raise ConfigError(
            f"`exposed_port` is set on the fal.App class {node.name} (line {node.lineno}); it breaks a "
            "fal.App, which always listens on 8080. Remove it, or write a server and use Direct "
            "Server Mode (--mode server --port N)."
        )
    for attr in declared.unreadable:
        notes.append(
            f"{node.name}.{attr} is not a literal value, so it was not checked here; fal reads it "
            "from the class at deploy time."
        )
    for key, value in options.items():
        if key == "requirements":
            values["requirements"] = [*values.get("requirements", []), *value]
            continue
        if key in values and values[key] != value and key != "mode":
            notes.append(
                f"{flag_for(key)} {short_repr(value)} overrides the class's {key} = {short_repr(values[key])}."
            )
        values[key] = value
    values.setdefault("name", fal_app_name(node.name))
    values.update(mode="app", class_name=node.name)
    values.setdefault("python_version", kernel_python_version())
    return values


def _function_values(server: FunctionServer, options: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """A ``@fal.function(exposed_port=N)``: Direct Server Mode whose module calls the function, which
    starts the server on its own port N (so the command does not read $PORT)."""
    node = server.node
    values = {"name": fal_app_name(node.name), **server.values}
    values.update(options)
    values.update(mode="server", entry=node.name, cmd="python server.py")
    if server.dockerfile and "base_image" not in options:
        values["base_dockerfile"] = server.dockerfile
    notes.append(
        f"@fal.function `{node.name}` (line {node.lineno}) serves on port {values['exposed_port']}: captured in "
        f"Direct Server Mode; server.py calls {node.name}() to start the server, as fal's runners do."
    )
    notes += [
        f"{node.name}'s `{attr}` is not a literal value, so it is not in pyproject.toml; set it with a flag."
        for attr in server.unreadable
    ]
    return values


def _server_values(
    tree: ast.Module, namespace: dict[str, Any] | None, options: dict[str, Any], notes: list[str], where: str
) -> tuple[dict[str, Any], Start]:
    values = {"name": "server", **options, "mode": "server"}
    cmd = values.get("cmd")
    interface: Start = None
    if cmd is None:
        entry = values.get("entry", "app")
        interface = cast(Start, find_server_interface(tree, entry, namespace))
        if interface is None:
            others = [name for name in server_objects(tree) if name != entry]
            hint = (
                f" It defines the server object `{others[0]}`: add --entry {others[0]}."
                if others
                else " Define a fal.App class, an ASGI/WSGI application (e.g. `app = FastAPI()`; pick another "
                "name with --entry), or give the command that starts the server with --cmd."
            )
            raise CaptureError(f"{where} defines no fal.App subclass and no server object named `{entry}`.{hint}")
        port = port_of(main_blocks(tree))
        if port is not None and "exposed_port" not in values:
            notes.append(f"Port {port}, as the cell's own start passes it (--port changes it).")
        values.setdefault("exposed_port", port or DEFAULT_SERVER_PORT)
    elif "exposed_port" not in values:
        if not reads_port_variable(cmd):
            raise ConfigError(
                f"--cmd {cmd!r}: which port does the server listen on? Pass it with --port N, or "
                'let the command read $PORT (e.g. `--cmd "python -m http.server $PORT"`).'
            )
        values["exposed_port"] = DEFAULT_SERVER_PORT
    return values, interface


def _data_note(files: dict[str, Path]) -> str:
    sizes = {name: path.stat().st_size for name, path in files.items()}
    listed = ", ".join(f"{name} ({_size(size)})" for name, size in sizes.items())
    note = f"Files the app reads, carried into the project and its image (app_files): {listed}."
    if any(size > LARGE_FILE for size in sizes.values()):
        note += " Large weights are better fetched at start-up onto fal's persistent /data than built into an image."
    return note


def _size(n: int) -> str:
    return next(
        f"{n / 1024**i:.3g} {unit}"
        for i, unit in enumerate(("B", "KB", "MB", "GB"))
        if n < 1024 ** (i + 1) or unit == "GB"
    )


def _start_block(config: AppConfig, start: Start) -> str | None:
    if start == "function":
        return function_start(config.entry)
    return serve_block(config, start) if start is not None else None


def _value_modules(tree: ast.Module, namespace: dict[str, Any] | None) -> list[str]:
    """The modules of the values the cell's top-level statements bind (and of what they contain, a
    level down): a model loaded with ``joblib.load`` is an object of scikit-learn, which the cell never
    imports by name."""
    if namespace is None:
        return []
    statements = [n for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    bound = {n.id for s in statements for n in ast.walk(s) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    bound |= {a.asname or a.name for n in statements if isinstance(n, ast.ImportFrom) for a in n.names}
    modules = []
    for name in sorted(bound):
        value = namespace.get(name)
        items = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else ()
        for item in (value, *itertools.islice(items, 20)):
            if not isinstance(item, (type, types.ModuleType, types.FunctionType)):
                modules.append(type(item).__module__)
    return modules


def _check_module(module: str, config: AppConfig, where: str) -> None:
    try:
        compile(module, f"{config.name}/module", "exec")
    except SyntaxError as exc:  # pragma: no cover - the parts were each parsed already
        raise CaptureError(f"The generated module for {where} does not compile: {exc}") from None


def _local_module_files(local_modules: dict[str, Path]) -> dict[str, str]:
    """Copies of modules that live beside the notebook, so the project folder is self-contained."""
    files = {}
    for name, path in local_modules.items():
        if path.is_file():
            files[path.name] = path.read_text()
        else:
            for py in sorted(path.rglob("*.py")):
                if "__pycache__" not in py.parts:
                    files[str(Path(name) / py.relative_to(path))] = py.read_text()
    return files
