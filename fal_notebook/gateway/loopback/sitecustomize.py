"""Run by every Python process of a local runner (this folder is on its PYTHONPATH): servers listen
on loopback only, so that a runner is reachable only through the gateway.

fal's SDK binds ``0.0.0.0`` for ``fal run --local`` (app and metrics port) and so do many servers;
here a bind to every interface becomes a bind to loopback (an IPv6 dual-stack socket takes
``::ffff:127.0.0.1``, so IPv4 clients on 127.0.0.1 still reach it). Then the ``sitecustomize`` this
file hides, if the environment has one, runs as usual. Standard library only: runners may run any
interpreter.
"""

import importlib.machinery
import importlib.util
import os
import socket
import sys

_bind = socket.socket.bind


def _loopback_bind(self, address):
    if isinstance(address, tuple) and address and address[0] in ("", "0.0.0.0", "::"):
        if self.family == socket.AF_INET:
            address = ("127.0.0.1", *address[1:])
        elif self.family == socket.AF_INET6:
            try:
                return _bind(self, ("::ffff:127.0.0.1", *address[1:]))
            except OSError:  # an IPv6-only socket
                address = ("::1", *address[1:])
    return _bind(self, address)


def _run_hidden_sitecustomize():
    here = os.path.dirname(os.path.abspath(__file__))
    for entry in sys.path:
        if os.path.abspath(entry or os.curdir) == here:
            continue
        spec = importlib.machinery.PathFinder.find_spec("sitecustomize", [entry])
        if spec is not None and spec.loader is not None:
            spec.loader.exec_module(importlib.util.module_from_spec(spec))
            return


socket.socket.bind = _loopback_bind
_run_hidden_sitecustomize()
