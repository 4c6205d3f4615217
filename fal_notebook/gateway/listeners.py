"""Which process listens on a port (Linux's /proc): a runner is ready only on a port its own process opened.

A server with a fixed port (``--cmd`` without ``$PORT``, Gradio's 7860) may find it taken: by another
app, an old server, or the kernel itself. Gradio then moves to the next port and says so; the
gateway, probing the fixed port, would reach the other process and send it the app's requests. So
a runner's port is checked before it starts (who holds it) and once it answers (whose socket it
is), and a runner that never becomes ready is described by the ports its processes did open.
Elsewhere than Linux nothing is known, and the checks pass.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
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


@dataclass(frozen=True)
class Listener:
    """A listening TCP socket: the address it is bound to, its port and its inode."""

    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    port: int
    inode: int

    @property
    def on_loopback(self) -> bool:
        mapped = getattr(self.address, "ipv4_mapped", None)
        return self.address.is_loopback or (mapped is not None and mapped.is_loopback)


def listeners() -> list[Listener]:
    """Every listening TCP socket (IPv4 and IPv6) of this network namespace: asked of the kernel's
    socket diagnostics (netlink), which list the listening sockets alone, in microseconds; /proc/net's
    tables, which the kernel writes out whole (every socket, ~3 ms each), where those are missing."""
    try:
        return [found for family in (socket.AF_INET, socket.AF_INET6) for found in _diagnosed(family)]
    except OSError:
        return _from_proc()


def listening_sockets() -> dict[int, int]:
    """Inode → port of every listening TCP socket (IPv4 and IPv6)."""
    return {found.inode: found.port for found in listeners()}


_NETLINK_SOCK_DIAG, _SOCK_DIAG_BY_FAMILY = 4, 20
_DUMP_REQUEST = 0x301  # NLM_F_REQUEST | NLM_F_DUMP
_DONE, _ERROR = 3, 2
_TCP_LISTEN = 10
_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port id


def _diagnosed(family: int) -> list[Listener]:
    """The listening TCP sockets of one address family, by a sock_diag dump (inet_diag_req_v2 in,
    inet_diag_msg out: linux/inet_diag.h)."""
    request = struct.pack("=BBBBI48x", family, socket.IPPROTO_TCP, 0, 0, 1 << _TCP_LISTEN)
    size = 4 if family == socket.AF_INET else 16
    found: list[Listener] = []
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_SOCK_DIAG) as diag:
        diag.send(_HEADER.pack(_HEADER.size + len(request), _SOCK_DIAG_BY_FAMILY, _DUMP_REQUEST, 1, 0) + request)
        while True:
            data, at = diag.recv(1 << 16), 0
            while at + _HEADER.size <= len(data):
                length, kind = _HEADER.unpack_from(data, at)[:2]
                if kind == _DONE:
                    return found
                if kind == _ERROR or length < _HEADER.size:
                    raise OSError("the kernel's socket diagnostics refused the request")
                body = at + _HEADER.size
                (port,) = struct.unpack_from("!H", data, body + 4)
                (inode,) = struct.unpack_from("=I", data, body + 68)
                address = ipaddress.ip_address(data[body + 8 : body + 8 + size])
                found.append(Listener(address, port, inode))
                at += (length + 3) & ~3


def _from_proc() -> list[Listener]:
    found = []
    for table in ("tcp", "tcp6"):
        try:
            rows = (_PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 9 and fields[3] == _LISTEN:
                address, port = fields[1].split(":")
                raw = bytes.fromhex(address)  # 32-bit words in host (little-endian) order
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
                found.append(Listener(ipaddress.ip_address(words), int(port, 16), int(fields[9])))
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
