"""Where fal-notebook keeps its state (``FAL_NOTEBOOK_HOME``), which projects it knows, and where its
gateway listens (``FAL_NOTEBOOK_GATEWAY_PORT``) with which key: the kernel, the CLI and the gateway
process read these the same way."""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import platformdirs

from . import wire
from .errors import ConfigError, NotFoundError

#: The file that marks a folder as a project fal-notebook generated (generate/project.py writes it).
MANIFEST = ".fal-notebook.json"


def home_path() -> Path:
    """``FAL_NOTEBOOK_HOME``, default the user's data directory (not created: see ``home``)."""
    return Path(os.environ.get("FAL_NOTEBOOK_HOME") or platformdirs.user_data_dir("fal-notebook"))


def home() -> Path:
    """``home_path()``, created private to the user; an existing one readable by others is made
    private (its keys, queue and logs are the user's alone)."""
    path = home_path()
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = path.stat()
    if info.st_mode & 0o077:
        if info.st_uid != os.getuid() or info.st_mode & stat.S_ISVTX:
            raise ConfigError(
                f"FAL_NOTEBOOK_HOME={path} is a folder shared with other users; fal-notebook keeps keys there. "
                "Point FAL_NOTEBOOK_HOME at a folder of your own (or unset it for the default)."
            )
        path.chmod(stat.S_IMODE(info.st_mode) & 0o700)
    return path


def gateway_port() -> int:
    """The local gateway's port: ``FAL_NOTEBOOK_GATEWAY_PORT``, default 8765."""
    return _port(wire.GATEWAY_PORT_VARIABLE, wire.DEFAULT_GATEWAY_PORT)


def gateway_tls_port() -> int:
    """The port of the gateway's HTTPS listener: ``FAL_NOTEBOOK_GATEWAY_TLS_PORT``, default 8766."""
    return _port(wire.GATEWAY_TLS_PORT_VARIABLE, wire.DEFAULT_GATEWAY_TLS_PORT)


def _port(variable: str, default: int) -> int:
    raw = os.environ.get(variable, "").strip()
    if not raw:
        return default
    port = wire.parse_port(raw)
    if port is None:
        raise ConfigError(f"{variable}={raw!r} is not a port number; use an integer from 1 to 65535.")
    return port


def gateway_key_file() -> Path:
    """The local gateway's key, ``<FAL_NOTEBOOK_HOME>/gateway/key``, content ``<id>:<secret>``."""
    return home() / wire.GATEWAY_KEY_FILE


def read_gateway_key() -> str | None:
    """The gateway's key, None before a gateway of this state directory first started (nothing is
    created here)."""
    try:
        return (home_path() / wire.GATEWAY_KEY_FILE).read_text().strip() or None
    except (FileNotFoundError, NotADirectoryError):
        return None


def write_json_atomic(path: Path, data: Any, *, mode: int = 0o600) -> None:
    """Write JSON so that readers see the old or the new file, never a half-written one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return default


def _projects_file() -> Path:
    return home() / "projects.json"


def register_project(name: str, path: Path) -> None:
    """Remember that app ``name`` lives in ``path`` (the last capture wins)."""
    projects = read_json(_projects_file(), {})
    projects[name] = str(Path(path).resolve())
    write_json_atomic(_projects_file(), projects)


def registered_projects() -> dict[str, Path]:
    """Captured apps whose folder still exists, by name."""
    projects = read_json(_projects_file(), {})
    return {name: Path(p) for name, p in sorted(projects.items()) if (Path(p) / "pyproject.toml").is_file()}


def project_folders(folders: Iterable[str | os.PathLike]) -> dict[str, Path]:
    """Project folders (``<folder>/<name>/`` with fal-notebook's manifest) in ``folders``, by name."""
    found: dict[str, Path] = {}
    for folder in folders:
        for manifest in sorted(Path(folder).glob(f"*/{MANIFEST}")):
            try:
                name = read_json(manifest, {}).get("config", {}).get("name")
            except (ValueError, AttributeError):  # not fal-notebook's JSON: not a project
                continue
            if name and (manifest.parent / "pyproject.toml").is_file():
                found.setdefault(name, manifest.parent.resolve())
    return found


def resolve_project(name_or_path: str | os.PathLike, folders: Iterable[str | os.PathLike] = ()) -> Path:
    """The project folder for an app name or a folder path; a name is looked up among the captured
    apps, then in ``folders`` (see ``project_folders``), then in ``./fal_apps``."""
    candidate = Path(name_or_path).expanduser()
    if (candidate / "pyproject.toml").is_file():
        return candidate.resolve()
    name = str(name_or_path)
    known = {**project_folders(folders), **registered_projects()}
    if name in known:
        return known[name]
    local = Path("fal_apps") / name
    if (local / "pyproject.toml").is_file():
        return local.resolve()
    hint = f" Known apps: {', '.join(known)}." if known else ""
    raise NotFoundError(
        f"No captured app or project folder named {name!r}. Run its `%%fal_app {name}` cell "
        f"(or `fal-notebook export NOTEBOOK.ipynb`) first, or pass the project folder's path.{hint}"
    )
