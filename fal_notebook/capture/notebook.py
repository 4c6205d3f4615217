"""``export_notebook``: every ``%%fal_app`` cell of a saved notebook, captured without a kernel."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat

from ..errors import CaptureError, ConfigError, FalNotebookError, NotFoundError
from .options import parse_magic_line, split_magic_cell


def export_notebook(path: str | os.PathLike, out_dir: str | os.PathLike | None = None) -> list:
    """Write ``<out_dir>/<name>/`` (default ``./fal_apps``) for each ``%%fal_app`` cell of the
    notebook at ``path``. Names a cell uses are resolved statically from the cells above it.
    Apps that capture cleanly are written even if another cell fails; the failures are then
    raised together, each naming its cell."""
    from . import capture

    path = Path(path)
    try:
        notebook = nbformat.read(path, as_version=4)
    except (OSError, ValueError) as exc:
        raise FalNotebookError(f"Cannot read notebook {path}: {exc}") from None
    base = Path(out_dir) if out_dir is not None else Path("fal_apps")
    earlier: list[tuple[str, str]] = []
    projects, failures = [], []
    for index, cell in enumerate(notebook.cells, start=1):
        if cell.cell_type != "code":
            continue
        label = f"cell {index} of {path.name}"
        magic = split_magic_cell(cell.source)
        if magic is None:
            earlier.append((label, cell.source))
            continue
        line, body = magic
        try:
            parsed = parse_magic_line(line)
            project = capture(
                body,
                parsed.name,
                notebook_cells=list(earlier),
                search_dir=path.parent,
                dir=parsed.dir,
                out_dir=base,
                force=parsed.force,
                where=label,
                **parsed.options,
            )
            projects.append(project)
        except FalNotebookError as exc:
            failures.append(str(exc))
        earlier.append((label, body))
    if failures:
        written = f" Written: {', '.join(p.name for p in projects)}." if projects else ""
        raise CaptureError(" ".join(failures) + written)
    if not projects:
        raise CaptureError(f"{path} has no %%fal_app cell to export.")
    return projects


def notebook_in(root: str | os.PathLike, relative: str) -> Path:
    """The notebook at ``relative`` inside ``root`` (a server's root folder), or an error saying why not."""
    if not isinstance(relative, str) or not relative or "\x00" in relative or len(relative) > 1024:
        raise ConfigError("\"path\" must be a notebook's path relative to the server's root (at most 1024 characters).")
    root = Path(root).expanduser().resolve()
    try:
        notebook = (root / relative).resolve()
        found = notebook.is_file()
    except OSError as exc:
        raise ConfigError(f"{relative!r} is not a usable path: {exc.strerror}.") from None
    if not notebook.is_relative_to(root):
        raise ConfigError(f"{relative!r} is outside the server's root directory.")
    if not found:
        raise NotFoundError(f"No notebook at {relative!r} (relative to the server's root directory).")
    return notebook
