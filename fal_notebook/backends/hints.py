"""What to change, for the failures of a runner whose cause a user can fix in the cell or its flags.

A runner's last output names the failure in the words of the server or of Python; these add the
fal-notebook side of it: how the cell became the project, and the flag that fixes it.
"""

from __future__ import annotations

import re

from ..capture.requirements import distribution_of, pinned

_NO_MODULE = re.compile(r"No module named '([\w.]+)'")
_CANNOT_IMPORT = re.compile(
    r'Could not import module "([\w.]+)"|Error loading ASGI app\. Could not import module "([\w.]+)"'
)
_NEEDS_PACKAGE = re.compile(r'requires "([\w.-]+)" to be installed|The `([\w.-]+)` library must be installed')
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def plain(text: str) -> str:
    """``text`` without terminal colour codes (a runner's output may have them)."""
    return _ANSI.sub("", text)


def failure_hint(output: str) -> str:
    """A sentence (with a leading space) saying what to change for a failure in ``output``, or ""."""
    output = plain(output)
    if match := _CANNOT_IMPORT.search(output):
        module = match.group(1) or match.group(2)
        return (
            f" The cell is written to server.py, so its module is `server`: a --cmd that imports `{module}` "
            f"needs {module}.py beside the notebook (it is then copied into the project), or name `server` "
            "instead (e.g. `uvicorn server:app`)."
        )
    if match := _NEEDS_PACKAGE.search(output):
        return f" {_requirement_hint(match.group(1) or match.group(2))}"
    if match := _NO_MODULE.search(output):
        module = match.group(1).split(".")[0]
        dists = distribution_of(module, match.group(1))
        return f" {_requirement_hint(pinned(dists[0]) if dists else module, module)}"
    return ""


def _requirement_hint(requirement: str, module: str = "") -> str:
    what = f"`{module}` ({requirement})" if module and module != requirement else f"`{requirement}`"
    return (
        f"{what} is not installed where the app runs. Requirements are inferred from what the kernel has and "
        f"sees the cell use: install it in the kernel and run the cell again, or add it to the %%fal_app line "
        f"with --requirements {requirement.split(';')[0]}."
    )
