"""A runner is ready only on a port its own processes opened, checked at every runner start: a server
on a fixed port that another process took never gets (or gives away) the app's requests, and a
runner that never becomes ready says which port the gateway waited on and where it listened."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from fal_notebook.errors import DeployError
from fal_notebook.gateway import listeners
from tests.gateway_helpers import free_port
from tests.polling import wait_for

pytestmark = pytest.mark.skipif(not listeners.observable(), reason="no /proc (not Linux)")

#: Gradio's way with its port: the one it was given, else the next free one (it says so, and moves).
MOVING = """
import os, socket, sys, time
from http.server import BaseHTTPRequestHandler, HTTPServer

PORT = {port}


class Hello(BaseHTTPRequestHandler):
    def do_POST(self):
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(b'{{"from": "the app"}}')


if __name__ == "__main__":
    for port in (PORT, PORT + 1):
        try:
            server = HTTPServer(("127.0.0.1", port), Hello)
            break
        except OSError:
            print(f"Port {{port}} is in use, trying {{port + 1}}", flush=True)
    print(f"Running on local URL: http://127.0.0.1:{{port}}", flush=True)
    server.serve_forever()
"""

#: Takes the port away while the server starts: a process of its own (not the runner's), as
#: another app would, which accepts connections and answers nothing the gateway would take for the app.
THIEF = """
import os, socket, subprocess, sys
if os.environ.get("THIEF") != "1":
    subprocess.Popen([sys.executable, __file__], env={{**os.environ, "THIEF": "1"}}, start_new_session=True)
    sys.exit(0)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", {port}))
s.listen()
open({pidfile!r}, "w").write(str(os.getpid()))
import time
time.sleep(120)
"""


def holding(port: int) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen()
    return s


def test_a_fixed_port_taken_before_a_runner_starts_is_named_and_never_served(gateway):
    port = free_port()
    gateway.deploy(MOVING.format(port=port), "moving", cmd="python server.py", exposed_port=port, keep_alive=1)
    with gateway.http() as client:
        assert client.post("/local/moving").json() == {"from": "the app"}
        wait_for(lambda: gateway.info("moving")["runners"] == [], "scaled to zero", timeout=20)
        with holding(port) as taken:
            taken.settimeout(0.1)
            answer = client.post("/local/moving", headers={"X-Fal-Request-Timeout": "5"})
            assert answer.status_code >= 500
            with pytest.raises(TimeoutError):
                taken.accept()  # nothing of the app's came to the other process
        log = gateway.app_log("moving")
        assert f"Port {port}, where runner" in log and f"is taken by process {os.getpid()}" in log


def test_a_port_taken_while_the_server_starts_makes_the_runner_fail_not_ready(gateway, tmp_path):
    """The thief starts outside the runner (here, from the test) once the server has begun: a process
    the runner started itself is the runner's own (in its sandbox, its orphans stay in its tree)."""
    port, pidfile, started = free_port(), tmp_path / "thief.pid", tmp_path / "server.started"
    thief = tmp_path / "thief.py"
    thief.write_text(THIEF.format(port=port, pidfile=str(pidfile)))
    cell = MOVING.format(port=port).replace(
        'if __name__ == "__main__":\n', f'if __name__ == "__main__":\n    import time\n'
        f"    open({str(started)!r}, 'w').close()\n"
        f"    while not os.path.exists({str(pidfile)!r}): time.sleep(0.05)\n    time.sleep(0.2)\n",
    )  # fmt: skip

    def steal() -> None:
        wait_for(started.exists, "the server to begin", timeout=120)
        subprocess.run([sys.executable, str(thief)], check=True)

    stealing = threading.Thread(target=steal, daemon=True)
    stealing.start()
    try:
        with pytest.raises(DeployError) as info:
            gateway.deploy(cell, "robbed", cmd="python server.py", exposed_port=port)
        thief_pid = int(pidfile.read_text())
        message = str(info.value)
        # judged when the port first answers: the server may not have moved to the next port yet
        assert f"Port {port}, where runner robbed-r1-1 was to listen (it " in message
        assert f"is taken by process {thief_pid}" in message
    finally:
        if pidfile.exists():
            os.kill(int(pidfile.read_text()), signal.SIGKILL)


def test_a_runner_that_is_not_ready_says_where_it_was_awaited_and_where_it_listens(gateway):
    port, elsewhere = free_port(), free_port()
    with pytest.raises(DeployError) as info:
        gateway.deploy(
            "x = 1\n",
            "elsewhere",
            cmd=f"{Path(sys.executable).name} -m http.server {elsewhere} --bind 127.0.0.1",
            exposed_port=port,
            startup_timeout=3,
        )
    message = str(info.value)
    assert f"waited for it on port {port}" in message and f"listen on {elsewhere} instead" in message
    assert "set --port to the port it listens on" in message and "\x1b[" not in message
