"""Local runners in a sandbox (bubblewrap), where the machine allows it.

A runner runs the app's own code as the user. In the sandbox it sees the machine's files as the user
does, except the folders it must not read (``FAL_NOTEBOOK_HOME``: the gateway's key, queue, logs and
other apps' snapshots; the Jupyter runtime folder: the kernels' connection keys; fal's own folder:
the user's fal login), which are empty there; the parts of them a runner needs (its revision's
snapshot, its virtualenv) are bound back. It sees only its own processes (a PID namespace with its
own ``/proc``), so not the gateway's or the kernel's environment or memory. GPU device nodes pass
through; ``binds`` add folders of the caller's choice (e.g. a private ``/data``). The network is the
machine's: the gateway reaches the runner on loopback, and the runner reaches what the user's
processes reach.

Without bubblewrap, or where it cannot make a sandbox (no user namespaces), runners run as before
and each deploy says so (``Sandbox.note``).
"""

from __future__ import annotations

import functools
import glob
import os
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

#: Device nodes of GPUs (NVIDIA's driver, and the kernel's DRM nodes): passed into the sandbox when present.
GPU_DEVICES = ("/dev/nvidia*", "/dev/dri")
#: The top-level entries of ``/`` that the sandbox makes itself rather than takes from the machine.
OWN_ENTRIES = ("proc", "dev")
INSTALL_HINT = "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap) to confine them"


@dataclass(frozen=True)
class Bind:
    """A folder (or file) of the machine at ``target`` in the sandbox."""

    source: Path
    target: str
    writable: bool = True


@dataclass(frozen=True)
class Sandbox:
    """How local runners are confined: ``bwrap`` (its path) when it can make a sandbox here, else
    ``None`` with the ``reason``."""

    bwrap: str | None
    reason: str = ""

    @property
    def note(self) -> str | None:
        """What a deploy says when runners are not sandboxed (None when they are)."""
        if self.bwrap is not None:
            return None
        return (
            f"Runners are not sandboxed on this machine ({self.reason}): they run as you, can read "
            f"FAL_NOTEBOOK_HOME (the gateway's key and state) and see your other processes; {INSTALL_HINT}."
        )

    def command(
        self,
        *,
        cwd: Path,
        hidden: Iterable[Path],
        readable: Iterable[Path] = (),
        writable: Iterable[Path] = (),
        binds: Sequence[Bind] = (),
        devices: Iterable[str] = GPU_DEVICES,
    ) -> list[str]:
        """The command that runs a runner's own command (appended after it) in the sandbox: the
        machine's ``/`` as the user sees it, ``hidden`` folders empty, then the ``readable`` and
        ``writable`` paths inside them bound back, the ``binds``, the ``devices`` that exist."""
        if self.bwrap is None:
            return []
        argv = [self.bwrap, *root_entries(_top_level(bind.target) for bind in binds)]
        argv += ["--proc", "/proc", "--dev", "/dev"]
        for pattern in devices:
            for node in sorted(glob.glob(pattern)):
                argv += ["--dev-bind", node, node]
        for folder in hidden:
            if folder.is_dir():  # a missing one would be made on the machine
                argv += ["--perms", "0700", "--tmpfs", str(folder.resolve())]
        argv += [arg for path in readable for arg in ("--ro-bind", str(path), str(path))]
        argv += [arg for path in writable for arg in ("--bind", str(path), str(path))]
        argv += [arg for b in binds for arg in ("--bind" if b.writable else "--ro-bind", str(b.source), b.target)]
        argv += ["--unshare-pid", "--unshare-ipc", "--die-with-parent", "--chdir", str(cwd), "--"]
        return argv


def root_entries(replaced: Iterable[str] = (), root: Path = Path("/")) -> list[str]:
    """bwrap arguments that rebuild ``root``'s top level in the sandbox's own (so a bind can add a
    folder such as ``/data`` without creating it on the machine): each folder and file bound, each
    link made again; the ``replaced`` names and :data:`OWN_ENTRIES` left out."""
    skipped = {*OWN_ENTRIES, *replaced}
    argv: list[str] = []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        path = str(root / entry.name)
        if entry.name in skipped:
            continue
        if entry.is_symlink():
            argv += ["--symlink", os.readlink(path), path]
        elif entry.is_dir() or entry.is_file():
            argv += ["--bind", path, path]
    return argv


def _top_level(target: str) -> str:
    """The name a bind's target takes in ``/`` when it is a top-level folder (``/data`` → ``data``):
    the machine's entry of that name is left out (a deeper target, ``/home/me/x``, replaces nothing)."""
    parts = Path(target).parts
    return parts[1] if len(parts) == 2 else ""


@functools.cache
def detect() -> Sandbox:
    """Whether runners can be sandboxed here: bwrap is installed and makes a sandbox (it needs user
    namespaces, unless the gateway runs as root). Tried once per gateway process."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return Sandbox(None, "bubblewrap (bwrap) is not installed")
    trial = Sandbox(bwrap).command(cwd=Path("/"), hidden=(), devices=())
    try:
        done = subprocess.run([*trial, "true"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Sandbox(None, f"bwrap did not run: {exc}")
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        return Sandbox(None, f"bwrap cannot make a sandbox here, user namespaces may be disabled: {why}")
    return Sandbox(bwrap)
