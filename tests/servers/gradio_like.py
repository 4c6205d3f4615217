"""A stand-in for Gradio in tests/servers/servers.ipynb (Gradio itself is too large to install in CI,
and its launch reaches the network): the part of it that matters to serving it.

``Interface(fn, inputs, outputs).launch()`` serves on ``GRADIO_SERVER_PORT``, else 7860, on
``GRADIO_SERVER_NAME`` (default 127.0.0.1); when the port is taken it moves to the next free one and
says so on stdout, as Gradio does. Routes: ``GET /`` (a page), ``GET /config`` (JSON),
``POST /run/predict`` ``{"data": [...]}`` → ``{"data": [...]}``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PORT_RANGE = 100


class Interface:
    def __init__(self, fn: Callable[..., Any], inputs: str | list[str], outputs: str | list[str], title: str = ""):
        self.fn, self.inputs, self.outputs, self.title = fn, inputs, outputs, title or fn.__name__

    def predict(self, data: list[Any]) -> list[Any]:
        result = self.fn(*data)
        return list(result) if isinstance(self.outputs, list) else [result]

    def launch(self, server_name: str | None = None, server_port: int | None = None) -> None:
        host = server_name or os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1")
        first = server_port or int(os.environ.get("GRADIO_SERVER_PORT", "7860"))
        server = None
        for port in range(first, first + PORT_RANGE):
            try:
                server = ThreadingHTTPServer((host, port), _handler(self))
                break
            except OSError:
                print(f"Port {port} is in use, trying {port + 1}", flush=True)
        if server is None:
            raise OSError(f"Cannot find empty port in range: {first}-{first + PORT_RANGE - 1}.")
        print(f"* Running on local URL:  http://{host}:{server.server_address[1]}", flush=True)
        server.serve_forever()


def _handler(interface: Interface) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/config":
                self._send(200, "application/json", {"title": interface.title, "inputs": interface.inputs})
            elif self.path == "/":
                self._send(200, "text/html", f"<html><title>{interface.title}</title><body>Gradio-like</body></html>")
            else:
                self._send(404, "application/json", {"detail": "Not Found"})

        def do_POST(self) -> None:
            if self.path != "/run/predict":
                self._send(404, "application/json", {"detail": "Not Found"})
                return
            body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
            self._send(200, "application/json", {"data": interface.predict(body.get("data", []))})

        def _send(self, status: int, kind: str, body: Any) -> None:
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", kind)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            print(format % args, flush=True)

    return Handler
