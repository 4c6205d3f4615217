"""Runner environments as both the gateway (which builds them) and the kernel (whose fal checks
reuse them) name them: the requirements a runner of a project gets, and where the cached virtualenv
with them is. No process, no gateway: ``gateway/envs.py`` builds what this names."""

from __future__ import annotations

import hashlib
import json
import sys
from importlib import metadata
from pathlib import Path

from .generate.project import AppProject
from .packages import requirement_name, split_fal_runtime

#: Written into an environment's folder once it is built (an interrupted build has none).
READY_MARKER = ".fal-notebook-ready"


def runner_requirements(project: AppProject) -> list[str]:
    """A runner's requirements: requirements.txt as on disk, then fal's runtime packages (app mode)."""
    text = (project.path / "requirements.txt").read_text() if (project.path / "requirements.txt").is_file() else ""
    reqs = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if project.mode == "app":
        _, runtime = split_fal_runtime(project.requirements)
        reqs += runtime
        if "fal" not in {requirement_name(r) for r in reqs}:
            reqs.append(f"fal=={metadata.version('fal')}")
    return reqs


def environment_key(python: str, requirements: list[str]) -> str:
    """The folder name of the environment with ``requirements`` built from interpreter ``python``."""
    data = json.dumps({"python": python, "requirements": sorted(requirements)})
    return hashlib.sha256(data.encode()).hexdigest()[:16]


def env_python(folder: Path) -> Path:
    """The interpreter of the environment in ``folder``."""
    return folder / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
