"""Which process listens on a port: read from /proc for real processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from fal_notebook.gateway import listeners, runners

pytestmark = pytest.mark.skipif(not listeners.observable(), reason="no /proc/net (not Linux)")

SERVER = (
    "import socket, time; s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); "
    "print(s.getsockname()[1], flush=True); time.sleep(60)"
)


def test_this_process_holds_the_socket_it_listens_on():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert listeners.holder(port) == listeners.Process(os.getpid(), listeners.command_of(os.getpid()))
        assert port in {p for p in listeners.listening_sockets().values()}
    assert listeners.holder(port) is None  # closed: nobody listens


def test_a_process_tree_and_its_ports():
    child = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        port = int(child.stdout.readline())
        assert listeners.process_tree(child.pid) == [child.pid]
        assert child.pid in listeners.process_tree(os.getpid())
        assert listeners.ports_of_tree(child.pid) == {port}
        held = listeners.holder(port)
        assert held is not None and held.pid == child.pid and "socket" in held.command
        assert str(held).startswith(f"process {child.pid} (`")
    finally:
        child.kill()
        child.wait()
    assert listeners.holder(port) is None  # a killed process's sockets are gone with it


def test_the_kernels_socket_diagnostics_and_proc_agree_on_what_listens_where():
    """The fast look (netlink) and the fallback (/proc/net) find the same sockets: address, port, inode."""
    bound = [
        ("127.0.0.1", socket.AF_INET),
        ("0.0.0.0", socket.AF_INET),
        ("::", socket.AF_INET6),
        ("::1", socket.AF_INET6),
    ]
    sockets = [socket.socket(family) for _, family in bound]
    try:
        for s, (host, _) in zip(sockets, bound, strict=True):
            s.bind((host, 0))
            s.listen()
        ports = {s.getsockname()[1] for s in sockets}
        diagnosed = {
            f for family in (socket.AF_INET, socket.AF_INET6) for f in listeners._diagnosed(family) if f.port in ports
        }
        assert diagnosed == {found for found in listeners._from_proc() if found.port in ports}
        assert {(str(found.address), found.port, found.on_loopback) for found in diagnosed} == {
            (host, s.getsockname()[1], host in ("127.0.0.1", "::1"))
            for s, (host, _) in zip(sockets, bound, strict=True)
        }
        assert sorted(runners.exposed(ports)) == sorted(
            f"{host}:{s.getsockname()[1]}"
            for s, (host, _) in zip(sockets, bound, strict=True)
            if host in ("0.0.0.0", "::")
        )
    finally:
        for s in sockets:
            s.close()
