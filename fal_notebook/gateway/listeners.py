"""Which process listens on a port (Linux's /proc): a runner is ready only on a port its own process opened.

A server with a fixed port (``--cmd`` without ``$PORT``, Gradio's 7860) may find it taken: by another
app, an old server, or the kernel itself. Gradio then moves to the next port and says so; the
gateway, probing the fixed port, would reach the other process and send it the app's requests. So
a runner's port is checked before it starts (who holds it) and once it answers (whose socket it
is), and a runner that never becomes ready is described by the ports its processes did open.
Elsewhere than Linux nothing is known, and the checks pass.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_PROC = Path("/proc")
_LISTEN = "0A"


@dataclass(frozen=True)
class Process:
    pid: int
    command: str

    def __str__(self) -> str:
        return f"process {self.pid} (`{self.command}`)" if self.command else f"process {self.pid}"


def listening_sockets() -> dict[int, int]:
    """Inode → port of every listening TCP socket (IPv4 and IPv6)."""
    found = {}
    for table in ("tcp", "tcp6"):
        try:
            rows = (_PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 9 and fields[3] == _LISTEN:
                found[int(fields[9])] = int(fields[1].rsplit(":", 1)[1], 16)
    return found


def socket_inodes(pid: int) -> set[int]:
    """The inodes of the sockets process ``pid`` holds open."""
    inodes: set[int] = set()
    try:
        fds = list((_PROC / str(pid) / "fd").iterdir())
    except OSError:
        return inodes
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def process_tree(root: int) -> list[int]:
    """``root`` and its descendants (children a server forks keep their parent, even in a session
    of their own)."""
    children: dict[int, list[int]] = {}
    for pid in _processes():
        try:
            stat = (_PROC / str(pid) / "stat").read_text()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()  # after the command, which may hold spaces
        if len(fields) > 1:
            children.setdefault(int(fields[1]), []).append(pid)
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += children.get(pid, [])
    return tree


def ports_of_tree(root: int) -> set[int]:
    """The TCP ports that process ``root`` and its descendants listen on."""
    sockets = listening_sockets()
    return {sockets[i] for pid in process_tree(root) for i in socket_inodes(pid) if i in sockets}


def holder(port: int) -> Process | None:
    """The process that listens on ``port``, if one can be seen (another user's cannot)."""
    inodes = {inode for inode, p in listening_sockets().items() if p == port}
    if not inodes:
        return None
    for pid in _processes():
        if socket_inodes(pid) & inodes:
            return Process(pid, command_of(pid))
    return None


def command_of(pid: int) -> str:
    """A process's command line, shortened to 80 characters."""
    try:
        words = (_PROC / str(pid) / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return ""
    text = " ".join(w.decode(errors="replace") for w in words if w)
    return text if len(text) <= 80 else text[:77] + "..."


def observable() -> bool:
    """Whether this system tells which process holds a socket."""
    return (_PROC / "net" / "tcp").is_file()


def _processes() -> list[int]:
    try:
        return [int(entry.name) for entry in _PROC.iterdir() if entry.name.isdigit()]
    except OSError:
        return []
