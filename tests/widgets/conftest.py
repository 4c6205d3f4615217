"""Widgets without a kernel: every widget gets a dummy comm that records what it would send to the
browser (the approach of ipywidgets' own tests)."""

from __future__ import annotations

import comm
import pytest


class DummyComm:
    comm_id = "a-b-c-d"
    kernel = "Truthy"

    def __init__(self, *args, **kwargs):
        self.messages: list = []

    def open(self, *args, **kwargs):
        pass

    def on_msg(self, *args, **kwargs):
        pass

    def send(self, *args, **kwargs):
        self.messages.append((args, kwargs))

    def close(self, *args, **kwargs):
        pass


@pytest.fixture(autouse=True)
def dummy_comm(monkeypatch):
    monkeypatch.setattr(comm, "create_comm", lambda **kwargs: DummyComm())
    monkeypatch.setattr(comm, "get_comm_manager", lambda **kwargs: {})


def sent_state(widget) -> dict:
    """Every state key the widget sent to the browser, last value wins."""
    state: dict = {}
    for args, kwargs in widget.comm.messages:
        data = kwargs.get("data") or (args[0] if args else {})
        if isinstance(data, dict) and data.get("method") == "update":
            state.update(data.get("state", {}))
    return state
