"""The server extension's routes over generated requests, through a real in-process Jupyter server
(pytest-jupyter's jp_fetch): every answer is a 2xx or the handlers' own 4xx, never a 500; nothing is
written outside the server's root; FAL_KEY's value is in no answer."""

from __future__ import annotations

import asyncio
import json

import nbformat
import pytest
from hypothesis import given, strategies as st

from ..gateway_helpers import free_port
from .conftest import SECRET, count_texts, fuzz_settings, no_hang, snapshot, written
from .test_fuzz_schema import json_value

pytest_plugins = ["pytest_jupyter.jupyter_server"]

APP = "web"
CELL = "%%fal_app web --port 9000\nfrom fastapi import FastAPI\n\napp = FastAPI()\n"


@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"fal_notebook": True}}}


@pytest.fixture
def served(jp_fetch, jp_root_dir, jp_asyncio_loop, tmp_path, monkeypatch):
    """A server whose root holds a notebook with one captured app; ``fetch`` answers whatever the status."""
    asyncio.set_event_loop(jp_asyncio_loop)  # jp_fetch makes its future outside the loop: it must be current
    monkeypatch.setenv("FAL_NOTEBOOK_HOME", str(tmp_path / "fal-home"))
    monkeypatch.setenv("FAL_NOTEBOOK_GATEWAY_PORT", str(free_port()))  # should a deploy start a gateway
    monkeypatch.setenv("FAL_KEY", SECRET)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(CELL)]
    nbformat.write(nb, jp_root_dir / "demo.ipynb")

    def fetch(*parts, method="GET", body=None, params=None):
        kwargs = {"body": body} if method in ("POST", "PUT", "PATCH") else {}
        return jp_asyncio_loop.run_until_complete(
            jp_fetch(
                "fal-notebook",
                *parts,
                method=method,
                params=params,
                raise_error=False,
                allow_nonstandard_methods=True,
                **kwargs,
            )
        )

    assert fetch("capture", method="POST", body=json.dumps({"path": "demo.ipynb"})).code == 200
    return fetch


def text_body(value) -> str:
    return json.dumps(value)


RAW_BODIES = [
    "[" * 5000 + "]" * 5000,
    '{"a": ' * 3000 + "1" + "}" * 3000,
    '{"keep_alive": ' + "1" * 5000 + "}",
    "{",
    "\x00",
    "",
    "null",
    '"string"',
    '{"path": "' + "a" * 5000 + '.ipynb"}',
    '{"path": "a\\u0000b.ipynb"}',
    '{"path": "../../../../etc/passwd"}',
    '{"path": "/etc/passwd"}',
    '{"path": ["demo.ipynb"]}',
    '{"cmd": "touch /tmp/fuzz-pwned"}',
    '{"base_image": "evil\\nRUN curl x"}',
    '{"requirements": ["x\\n-r /etc/passwd"]}',
    '{"target": {"a": 1}}',
    '{"target": ["local"]}',
    '{"target": "' + "x" * 300 + '"}',
    '{"name": "other"}',
    '{"keep_alive": 1e999}',
    '{"keep_alive": NaN}',
]
CONFIG_KEYS = [
    "keep_alive",
    "max_concurrency",
    "min_concurrency",
    "auth",
    "base_image",
    "secrets",
    "cmd",
    "exposed_port",
]
bodies = st.one_of(
    st.sampled_from(RAW_BODIES),
    json_value.map(text_body),
    st.dictionaries(st.sampled_from(CONFIG_KEYS + ["path", "target"]), json_value, max_size=3).map(text_body),
    st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
)
names = st.one_of(st.just(APP), st.just("nope"), st.from_regex(r"[a-z0-9][a-z0-9_-]{0,70}", fullmatch=True))
ROUTES = {
    "apps": "GET",
    "apps/{}": "GET",
    "apps/{}/deploy": "POST",
    "apps/{}/stop": "POST",
    "apps/{}/logs": "GET",
    "apps/{}/config": "PUT",
    "capture": "POST",
    "config/schema": "GET",
    "notebook/apps": "POST",
    "jobs": "GET",
    "jobs/{}": "GET",
    "jobs/{}/cancel": "POST",
    "status": "GET",
}  # the event streams (events, jobs/<id>/events, logs?follow) do not end by design: tests/server covers them
VALID_TARGETS = {"local", "docker", "fal"}


@st.composite
def requests(draw) -> tuple[list[str], str, str]:
    route = draw(st.sampled_from(sorted(ROUTES)))
    name = draw(names)
    method = draw(st.one_of(st.just(ROUTES[route]), st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"])))
    body = draw(st.one_of(st.sampled_from(RAW_BODIES), bodies))
    if route.endswith("deploy") and name == APP and method == "POST":
        try:  # a real deploy is not what is fuzzed here: only bodies that name no backend
            target = json.loads(body).get("target", "local")
        except (ValueError, AttributeError, RecursionError):
            target = None  # not an object: the route refuses it
        if target is None or (isinstance(target, str) and target in VALID_TARGETS):
            body = '{"target": "nowhere"}'
    return route.format(name).split("/"), method, body


@fuzz_settings(ci_examples=60)
@given(req=requests())
def test_routes_answer_generated_requests_without_a_500(served, jp_root_dir, tmp_path, req):
    parts, method, body = req
    before = snapshot(tmp_path)
    with no_hang(60):
        response = served(*parts, method=method, body=body)
    assert response.code < 500, response.body[:500]
    assert SECRET.encode() not in (response.body or b"")
    allowed = (str(jp_root_dir), str(tmp_path / "fal-home"))
    assert [p for p in written(before, snapshot(tmp_path)) if not p.startswith(allowed)] == []


@fuzz_settings(ci_examples=30)
@given(since=count_texts)
def test_a_jobs_since_takes_any_text(served, since):
    """``since`` of the jobs routes: a whole number, else 0; never a 500 (issue 20, item 8)."""
    cells = [{"cell_type": "code", "source": "%%fal_app web --port 9000\nthis is not python\n"}]
    started = served(
        "apps", APP, "deploy", method="POST", body=json.dumps({"notebook": {"path": "nb.ipynb", "cells": cells}})
    )
    job = json.loads(started.body)["id"]
    with no_hang(60):
        response = served("jobs", job, params={"since": since})
    assert response.code == 200, response.body[:300]
