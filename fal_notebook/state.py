"""Where fal-notebook keeps its state (``FAL_NOTEBOOK_HOME``), which projects it knows, and where its
gateway listens (``FAL_NOTEBOOK_GATEWAY_PORT``) with which key: the kernel, the CLI and the gateway
process read these the same way."""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from . import wire
from .errors import ConfigError, NotFoundError

#: The file that marks a folder as a project fal-notebook generated (generate/project.py writes it).
MANIFEST = ".fal-notebook.json"


#: The longest path fal-notebook takes from a caller, and the longest name in it (Linux's NAME_MAX, bytes).
MAX_PATH, MAX_NAME = 1024, 255


def checked_path(path: str | os.PathLike, what: str) -> str:
    """``path`` as text, or ConfigError naming ``what`` when no file system takes it: a NUL byte, a
    lone surrogate, a name in it over 255 bytes, or over 1024 characters in all."""
    text = os.fsdecode(path)
    try:
        names = [len(os.fsencode(name)) for name in text.split(os.sep)]
    except UnicodeEncodeError:
        names = []
    if "\x00" in text or not names or len(text) > MAX_PATH or max(names) > MAX_NAME:
        raise ConfigError(
            f"{what} is not a usable path: it has a NUL byte or a lone surrogate, a name over {MAX_NAME} bytes, "
            f"or over {MAX_PATH} characters.",
            fields=[what],
        )
    return text


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


def process_start(pid: int) -> str:
    """When process ``pid`` started (Linux: its start time from /proc; "" where unknown), recorded
    beside a pid so that a pid the system has since given to another process is not taken for it."""
    fields = _proc_stat(pid)
    return fields[19] if len(fields) > 19 else ""


def process_alive(pid: Any, started: str = "") -> bool:
    """Whether process ``pid`` (from a pid file) runs: not a zombie, and, given when it ``started``
    (:func:`process_start`), the same process."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's: it exists
    fields = _proc_stat(pid)
    if fields and fields[0] == "Z":  # our own child, exited and not yet reaped
        return False
    return not started or len(fields) <= 19 or fields[19] == started


def _proc_stat(pid: int) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the command's name (which may hold spaces), state
    first; [] where there is none to read."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return []


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
    """The JSON in ``path``, ``default`` when there is no such file; ConfigError naming the file when
    it is not JSON (not UTF-8, malformed, nested too deeply, a number over 4,300 digits)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        return default
    except RecursionError:
        raise ConfigError(f"{path} is not JSON fal-notebook can read (nested too deeply); fix or remove it.") from None
    except ValueError as exc:
        raise ConfigError(f"{path} is not valid JSON ({str(exc)[:120]}); fix or remove it.") from None


@dataclass(frozen=True)
class Manifest:
    """What the generator recorded in a project folder (:data:`MANIFEST`): the cell's configuration,
    the pinned requirements, each file it wrote (name → SHA-256), each file the app reads that it
    copied (``data``, the same) and the TOML keys it wrote."""

    config: dict[str, Any]
    requirements: list[str]
    files: dict[str, str]
    toml: dict[str, Any]
    data: dict[str, str]
    #: What the cell set at the last capture (the next capture compares against it); None before.
    cell: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.config["name"]


def read_manifest(folder: Path) -> Manifest | None:
    """The manifest of a project folder, None when it has none; ConfigError naming the file and the
    part that is wrong when it was edited into something else."""
    path = folder / MANIFEST
    data = read_json(path, None)
    if data is None and not path.is_file():
        return None
    problem = _manifest_problem(data)
    if problem:
        raise ConfigError(
            f"{path} is not a manifest fal-notebook wrote: {problem}. Restore it, or capture the cell again "
            "with --force to write the folder anew."
        )
    cell = data.get("cell") if isinstance(data.get("cell"), dict) else None
    return Manifest(
        data["config"], data["requirements"], data["files"], data.get("toml") or {}, data.get("data") or {}, cell
    )


def _manifest_problem(data: Any) -> str | None:
    if not isinstance(data, dict):
        return "it is not a JSON object"
    config = data.get("config")
    if (
        not isinstance(config, dict)
        or not isinstance(config.get("name"), str)
        or not isinstance(config.get("mode"), str)
    ):
        return '"config" is not an object with a "name" and a "mode"'
    if not _strings(data.get("requirements"), list):
        return '"requirements" is not a list of strings'
    if not _strings(data.get("files"), dict):
        return '"files" is not an object of file names and digests'
    if not _strings(data.get("data", {}), dict):
        return '"data" is not an object of file names and digests'
    if not isinstance(data.get("toml", {}), dict):
        return '"toml" is not an object'
    return None


def _strings(value: Any, kind: type[list] | type[dict]) -> bool:
    """Whether ``value`` is a ``kind`` (list or dict) of strings (a dict: keys and values)."""
    if not isinstance(value, kind):
        return False
    items = [*value.keys(), *value.values()] if isinstance(value, dict) else list(value)
    return all(isinstance(item, str) for item in items)


def _projects_file() -> Path:
    return home() / "projects.json"


def _projects() -> dict[str, str]:
    """``projects.json``: app name → project folder (entries edited into something else are left out)."""
    projects = read_json(_projects_file(), {})
    if not isinstance(projects, dict):
        return {}
    return {name: folder for name, folder in projects.items() if isinstance(folder, str) and "\x00" not in folder}


def register_project(name: str, path: Path) -> None:
    """Remember that app ``name`` lives in ``path`` (the last capture wins)."""
    projects = _projects()
    projects[name] = str(Path(path).resolve())
    write_json_atomic(_projects_file(), projects)


def registered_projects() -> dict[str, Path]:
    """Captured apps whose folder still exists, by name."""
    return {name: Path(p) for name, p in sorted(_projects().items()) if (Path(p) / "pyproject.toml").is_file()}


def project_folders(folders: Iterable[str | os.PathLike]) -> dict[str, Path]:
    """Project folders (``<folder>/<name>/`` with fal-notebook's manifest) in ``folders``, by name."""
    found: dict[str, Path] = {}
    for folder in folders:
        for path in sorted(Path(folder).glob(f"*/{MANIFEST}")):
            try:
                manifest = read_manifest(path.parent)
            except ConfigError:  # not fal-notebook's manifest: not a project
                continue
            if manifest is not None and (path.parent / "pyproject.toml").is_file():
                found.setdefault(manifest.name, path.parent.resolve())
    return found


def resolve_project(name_or_path: str | os.PathLike, folders: Iterable[str | os.PathLike] = ()) -> Path:
    """The project folder for an app name or a folder path; a name is looked up among the captured
    apps, then in ``folders`` (see ``project_folders``), then in ``./fal_apps``."""
    candidate = Path(checked_path(name_or_path, "the app's name or folder")).expanduser()
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
