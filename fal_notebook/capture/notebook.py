"""``export_notebook``: every ``%%fal_app`` cell of a saved notebook, captured without a kernel;
``export_cells`` and ``describe_app_cells`` do the same for a notebook's current content (the
JupyterLab panel sends its cells, saved or not)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import nbformat

from ..config import is_text
from ..errors import CaptureError, ConfigConflictError, ConfigError, FalNotebookError, NotFoundError
from ..state import checked_path
from .options import parse_magic_line, split_magic_cell

#: A notebook cell as ``(cell_type, source)``.
Cell = tuple[str, str]


def export_notebook(path: str | os.PathLike, out_dir: str | os.PathLike | None = None) -> list:
    """Write ``<out_dir>/<name>/`` (default ``./fal_apps``) for each ``%%fal_app`` cell of the
    notebook at ``path``. Names a cell uses are resolved statically from the cells above it.
    Apps that capture cleanly are written even if another cell fails; the failures are then
    raised together, each naming its cell."""
    path = Path(checked_path(path, "the notebook's path"))
    return export_cells(read_cells(path), path, out_dir)


def read_cells(path: Path) -> list[Cell]:
    """The cells of the notebook file at ``path``, read with nbformat (older formats converted to
    version 4, as JupyterLab does); FalNotebookError saying what is wrong with a file that is not one."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FalNotebookError(f"Cannot read notebook {path}: {exc.strerror or exc}.") from None
    except ValueError as exc:  # not UTF-8
        raise FalNotebookError(f"{path} is not a notebook: it is not UTF-8 text ({str(exc)[:120]}).") from None
    try:
        with warnings.catch_warnings():  # nbformat's schema warnings (a cell without an id): cells_of checks cells
            warnings.simplefilter("ignore")
            notebook = nbformat.reads(text, as_version=4)
    except RecursionError:
        raise FalNotebookError(f"{path} is not a notebook: its JSON is nested too deeply.") from None
    except Exception as exc:  # nbformat's reader raises many kinds on files that are not notebooks
        raise FalNotebookError(
            f"{path} is not a notebook nbformat can read ({type(exc).__name__}: {str(exc)[:160]}): open it in "
            "JupyterLab and save it."
        ) from None
    return cells_of(notebook.get("cells") if isinstance(notebook, dict) else None, where=str(path))


def cells_of(cells: Any, *, where: str) -> list[Cell]:
    """A notebook's ``cells`` (as JSON gives them: objects with a ``cell_type`` and a ``source``, a
    string or a list of strings) as ``(cell_type, source)``; FalNotebookError naming the first cell
    that is not one. Every notebook enters capture here, from a file or from the panel."""
    if not isinstance(cells, list):
        raise FalNotebookError(f"The cells of {where} are not a list.")
    checked = []
    for index, cell in enumerate(cells, start=1):
        source = cell.get("source") if isinstance(cell, dict) else None
        if isinstance(source, list) and all(isinstance(line, str) for line in source):
            source = "".join(source)
        cell_type = cell.get("cell_type", "code") if isinstance(cell, dict) else None
        if not isinstance(source, str) or not isinstance(cell_type, str):
            raise FalNotebookError(
                f"Cell {index} of {where} is not a notebook cell (an object with a string cell_type and a source "
                "that is a string or a list of strings)."
            )
        if not is_text(source):
            raise FalNotebookError(
                f"Cell {index} of {where} holds text that is not valid Unicode (a lone surrogate such as \\ud800); "
                "remove it and save the notebook again."
            )
        checked.append((cell_type, source))
    return checked


def export_cells(
    cells: Iterable[Cell], path: str | os.PathLike, out_dir: str | os.PathLike | None = None, *, only: str | None = None
) -> list:
    """``export_notebook`` over cells given as ``(cell_type, source)``; ``path`` is the notebook's
    (error messages name its cells; modules beside it count as local). ``only``: capture just the
    app of that name (NotFoundError if no cell defines it); other cells' errors are theirs, not its."""
    from . import capture, identify

    path = Path(path)
    base = Path(out_dir) if out_dir is not None else Path("fal_apps")
    earlier: list[tuple[str, str]] = []
    projects, failures = [], []
    unknown = []  # failures of cells whose app's name cannot be told (``only`` may be one of them)
    for index, (cell_type, source) in enumerate(cells, start=1):
        if cell_type != "code":
            continue
        label = f"cell {index} of {path.name}"
        magic = split_magic_cell(source)
        if magic is None:
            earlier.append((label, source))
            continue
        line, body = magic
        named: str | None = None
        try:
            parsed = parse_magic_line(line)
            named = parsed.name
            where = f"{label} (app {named})" if named else label
            name = identify(body, named, where=where, **parsed.options).name
            where = f"{label} (app {name})"
            if only is not None and name != only:
                earlier.append((label, body))
                continue
            project = capture(
                body,
                parsed.name,
                notebook_cells=list(earlier),
                search_dir=path.parent,
                dir=parsed.dir,
                out_dir=base,
                force=parsed.force,
                where=where,
                **parsed.options,
            )
            projects.append(project)
        except FalNotebookError as exc:
            if only is None or named == only:
                failures.append(str(exc))
            elif named is None:
                unknown.append(str(exc))
        earlier.append((label, body))
    if only is not None and not projects:
        if failures:
            raise CaptureError(" ".join(failures))
        found = f" Cells that could not be read: {' '.join(unknown)}" if unknown else ""
        raise NotFoundError(f"No %%fal_app cell of {path.name} defines an app named {only!r}.{found}")
    if failures:
        raise CaptureErrors(failures, projects)
    if not projects:
        raise CaptureError(f"{path} has no %%fal_app cell to export.")
    return projects


class CaptureErrors(CaptureError):
    """Some app cells of a notebook could not be captured (``failures``, each naming its cell and
    app); the others were (``captured``: their AppProjects)."""

    def __init__(self, failures: list[str], captured: list):
        self.failures, self.captured = failures, captured
        count = f"{len(failures)} %%fal_app cell{'s' if len(failures) > 1 else ''}"
        others = f" The other apps were captured: {', '.join(p.name for p in captured)}." if captured else ""
        super().__init__(f"{count} could not be captured: {' '.join(failures)}{others}")


def describe_app_cells(
    sources: Iterable[str], notebook: str | os.PathLike | None = None
) -> list[dict[str, Any] | None]:
    """For each cell source: ``None`` if it is not a ``%%fal_app`` cell, else the app it defines
    (``name``, ``mode``, the line's ``options``), or the ``error`` a capture would raise. With the
    ``notebook``'s path, an app captured before also has ``settings``: the keys its line sets and
    those its project's ``pyproject.toml`` changed since, with the values a capture would deploy
    (``from_file`` names the latter; ``conflict`` says when both changed a key). Static: nothing runs
    and nothing is written."""
    from ..generate.project import project_path, settle_config
    from . import OPTION_ALIASES, identify

    folder = Path(notebook).parent if notebook is not None else None
    described: list[dict[str, Any] | None] = []
    for source in sources:
        magic = split_magic_cell(source)
        if magic is None:
            described.append(None)
            continue
        line, body = magic
        row: dict[str, Any] = {"name": None, "mode": None, "options": {}, "error": None}
        try:
            parsed = parse_magic_line(line)
            row.update(name=parsed.name, options=parsed.options)
            row.update(suggest(body, Path(notebook) if notebook is not None else None))
            config = identify(body, parsed.name, where="this cell", **parsed.options)
            row.update(name=config.name, mode=config.mode)
            if folder is not None:
                where = project_path(config.name, root=folder, dir=parsed.dir, out_dir=folder / "fal_apps")
                try:
                    settled, from_file = settle_config(config, where, where="this cell")
                except ConfigConflictError as conflict:
                    row["conflict"] = str(conflict)
                else:
                    values = settled.model_dump(mode="json", exclude_none=True)
                    keys = dict.fromkeys([*(OPTION_ALIASES.get(k, k) for k in parsed.options), *from_file])
                    row.update(settings={k: values.get(k) for k in keys}, from_file=from_file)
        except FalNotebookError as exc:
            row["error"] = str(exc)
        described.append(row)
    return described


def suggest(body: str, notebook: Path | None) -> dict[str, Any]:
    """For a cell that may become a server app: its server objects (``entries``) and a name for the
    app (``suggested``): fal's name of its fal.App class, else the title of its server object, else
    the notebook's name with the object's."""
    from .classify import fal_app_name, find_app_classes, kebab, parse_cell, server_objects

    try:
        tree = parse_cell(body)
    except FalNotebookError:
        return {"entries": [], "suggested": None}
    classes = find_app_classes(tree, None)
    objects = server_objects(tree)
    if classes:
        return {"entries": list(objects), "suggested": fal_app_name(classes[0].name)}
    entry = "app" if "app" in objects or not objects else next(iter(objects))
    stem = kebab(notebook.stem) if notebook is not None else ""
    title = objects.get(entry)
    suggested = kebab(title) if title else "-".join(filter(None, [stem, entry if entry != "app" else ""]))
    return {"entries": list(objects), "suggested": suggested or None}


def path_in(root: str | os.PathLike, relative: str, *, field: str = "path") -> Path:
    """``relative`` (a path sent to a server, relative to its root folder ``root``) as a path inside
    it, or a ConfigError naming ``field`` and saying why not."""
    if not isinstance(relative, str) or not relative:
        raise ConfigError(f'"{field}" must be a path relative to the server\'s root.', fields=[field])
    checked_path(relative, field)
    root = Path(root).expanduser().resolve()
    try:
        path = (root / relative).resolve()
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{field} {relative!r} is not a usable path: {exc}.", fields=[field]) from None
    if not path.is_relative_to(root):
        raise ConfigError(f"{field} {relative!r} is outside the server's root directory.", fields=[field])
    return path


def notebook_in(root: str | os.PathLike, relative: str) -> Path:
    """The notebook at ``relative`` inside ``root`` (a server's root folder), or an error saying why not."""
    notebook = path_in(root, relative)
    try:
        found = notebook.is_file()
    except OSError as exc:
        raise ConfigError(f"path {relative!r} is not a usable path: {exc.strerror}.", fields=["path"]) from None
    if not found:
        raise NotFoundError(f"No notebook at {relative!r} (relative to the server's root directory).")
    return notebook
