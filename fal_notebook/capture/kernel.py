"""How ``%%fal_app`` runs a cell in the kernel before capturing it: as the module it becomes, not as a script.

In a notebook ``__name__`` is ``"__main__"`` and there is no ``__file__``. A cell copied from a script
would start its server in ``if __name__ == "__main__":`` and block the kernel, and fal's SDK
(``@fal.function`` and ``fal.App`` call ``include_modules_from``) reads ``__main__.__file__``. So the
kernel runs the cell with each such block's test reading ``False``, and with ``__file__`` naming the
module file beside the notebook, as a script run from there has it. What the cell imports meanwhile
is recorded: packages it needs at run time that it never imports by name (``joblib.load`` imports
the model's package, FastAPI's forms import python-multipart). Only imports made by running code
count, not those a module makes while it is itself being imported: a package's optional imports of
whatever happens to be installed are not the app's needs.
"""

from __future__ import annotations

import ast
import builtins
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .classify import find_app_classes, kernel_source


@dataclass
class KernelRun:
    """The source the kernel runs for a cell, and the modules imported while it ran."""

    source: str
    imported: list[str] = field(default_factory=list)


@contextmanager
def running_cell(cell: str, namespace: dict[str, Any], folder: str | Path) -> Iterator[KernelRun]:
    """Run ``cell`` (its ``.source``) inside this block; ``namespace`` is the kernel's, ``folder`` the
    notebook's. ``__file__`` is set only while the cell runs, and only where the notebook has none."""
    run = KernelRun(kernel_source(cell))
    try:
        module_file = "app.py" if find_app_classes(ast.parse(cell)) else "server.py"
    except SyntaxError:
        module_file = "server.py"
    had_file = "__file__" in namespace
    if not had_file:
        namespace["__file__"] = str(Path(folder).resolve() / module_file)
    imported: set[str] = set()
    original = builtins.__import__
    thread = threading.current_thread()
    nested = threading.local()

    def recording(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
        __tracebackhide__ = True  # IPython leaves this frame out of the cell's tracebacks
        depth = getattr(nested, "depth", 0)
        if depth == 0 and level == 0 and threading.current_thread() is thread:
            imported.add(name.partition(".")[0])
        nested.depth = depth + 1
        try:
            return original(name, globals, locals, fromlist, level)
        finally:
            nested.depth = depth

    builtins.__import__ = recording
    try:
        yield run
    finally:
        builtins.__import__ = original
        if not had_file:
            namespace.pop("__file__", None)
        run.imported = sorted(imported)
