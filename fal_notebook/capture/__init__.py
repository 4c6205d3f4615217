"""Cell → AppProject: classify the cell, merge its configuration, make it self-contained."""

from __future__ import annotations

import ast
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

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
from ..generate.source import module_source, requirements_block
from ..packages import merge, without_fal
from ..secrets import secrets_in
from .classify import (
    fal_app_name,
    find_app_classes,
    find_server_interface,
    parse_cell,
    read_class_config,
    server_objects,
)
from .closure import KernelResolver, NotebookResolver, closure
from .requirements import infer

#: Packages the generated serving code imports, with the spec used when the kernel lacks them.
SERVING_PACKAGES = {"uvicorn": "uvicorn", "a2wsgi": "a2wsgi"}
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
    **options: Any,
) -> AppProject:
    """Turn a cell's source into a deployable project folder and return its ``AppProject``.

    ``namespace`` is the kernel's namespace the cell ran in (names the cell uses but does not
    define are resolved there); without it they are resolved from ``notebook_cells``, the
    ``(label, source)`` of the notebook's other cells. ``options`` are AppConfig fields (the
    magic's flags): they win over the App class's own attributes. ``search_dir`` is the notebook's
    folder (default: the working directory): local modules are found there, and the project goes
    to ``dir`` (``--dir``), a subfolder of it, default ``<out_dir>/<name>``. Nothing is written on error.
    """
    options = {OPTION_ALIASES.get(k, k): v for k, v in options.items() if v not in (None, [], ())}
    tree = parse_cell(source, where=where)
    notes: list[str] = []
    values, interface = _classify(tree, namespace, options, notes, where)
    if name is not None:
        values["name"] = name
    cell_config = AppConfig.build(values, where=where)
    search = Path(search_dir or os.getcwd())
    project_dir = project_path(cell_config.name, root=search, dir=dir, out_dir=out_dir)
    config, from_file = settle_config(cell_config, project_dir, force=force, where=where)

    resolver = KernelResolver(namespace) if namespace is not None else NotebookResolver(notebook_cells)
    definitions = closure(source, resolver, where=where)
    module = module_source(config, source, definitions, interface)

    inferred = infer(module, search_dir=search)
    found = list(inferred.requirements)
    for module_name in inferred.unresolved:
        if module_name in SERVING_PACKAGES:
            found.append(SERVING_PACKAGES[module_name])
        else:
            notes.append(
                f"`import {module_name}`: no installed distribution provides it, so it is not in "
                "requirements.txt. Install it in the kernel or add it with --requirements."
            )
    requirements = merge(config.requirements, found)
    if config.mode == "app" and config.class_name is not None:  # app mode always names its class
        module += requirements_block(config.class_name, without_fal(requirements))
        if inferred.local_modules:
            module += f"{config.class_name}.local_python_modules = {sorted(inferred.local_modules)!r}\n"
    _check_module(module, config, where)

    existing, previous = existing_state(project_dir)
    files = render_files(
        config,
        module,
        requirements,
        _local_module_files(inferred.local_modules),
        existing_pyproject=existing,
        previous_toml=previous,
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
        cell=cell_config.model_dump(mode="json", exclude_none=True),
    )
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
) -> tuple[dict[str, Any], str | None]:
    """AppConfig values for the cell (class config merged with options) and the server interface."""
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
    return _server_values(tree, namespace, options, where)


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


def _server_values(
    tree: ast.Module, namespace: dict[str, Any] | None, options: dict[str, Any], where: str
) -> tuple[dict[str, Any], str | None]:
    values = {"name": "server", **options, "mode": "server"}
    cmd = values.get("cmd")
    interface = None
    if cmd is None:
        entry = values.get("entry", "app")
        interface = find_server_interface(tree, entry, namespace)
        if interface is None:
            others = [name for name in server_objects(tree) if name != entry]
            hint = (
                f" It defines the server object `{others[0]}`: add --entry {others[0]}."
                if others
                else " Define a fal.App class, an ASGI/WSGI application (e.g. `app = FastAPI()`; pick another "
                "name with --entry), or give the command that starts the server with --cmd."
            )
            raise CaptureError(f"{where} defines no fal.App subclass and no server object named `{entry}`.{hint}")
        values.setdefault("exposed_port", DEFAULT_SERVER_PORT)
    elif "exposed_port" not in values:
        if not reads_port_variable(cmd):
            raise ConfigError(
                f"--cmd {cmd!r}: which port does the server listen on? Pass it with --port N, or "
                'let the command read $PORT (e.g. `--cmd "python -m http.server $PORT"`).'
            )
        values["exposed_port"] = DEFAULT_SERVER_PORT
    return values, interface


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
