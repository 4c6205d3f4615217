"""Which process listens on a port: read from /proc for real processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from fal_notebook.gateway import listeners

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
