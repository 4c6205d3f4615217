"""Run a program with the network cut: in a network namespace of its own (``unshare -n``) whose only
interface is loopback, brought up here. Whatever it starts (a gateway, runners, clients) can reach
this machine's loopback inside the namespace and nothing else: what these tests run cannot send
anything off the machine, and the program can prove it (``no_route``)."""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import struct
import subprocess
import sys

SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


def available() -> bool:
    """Whether this process may make a network namespace (root, or a user namespace allowed)."""
    unshare = shutil.which("unshare")
    return unshare is not None and subprocess.run([unshare, "-n", "true"], capture_output=True).returncode == 0


def loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(s, SIOCGIFFLAGS, request)[:18])[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | IFF_UP))


def no_route() -> bool:
    """Whether an address beyond this machine is unreachable (as in a namespace with loopback only)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(2)
        try:
            s.connect(("1.1.1.1", 443))
        except OSError:
            return True
    return False


def run(argv: list[str], *, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    """``argv`` in a new network namespace with loopback up."""
    prelude = (
        f"import sys, os; sys.path.insert(0, {os.path.dirname(__file__)!r}); import offline; offline.loopback_up(); "
    )
    prelude += "os.execvpe(sys.argv[1], sys.argv[1:], os.environ)"
    command = ["unshare", "-n", "--", sys.executable, "-c", prelude, *argv]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
