"""The REST routes refuse what they cannot honour with a 4xx naming the field (issue 12, items 2
and 4): nothing is written or changed."""

import json

import nbformat
import pytest

from fal_notebook import capture, export_notebook
from tests.bad_files import MALFORMED_NOTEBOOKS, MANIFEST_EDITS, PYPROJECT_EDITS, edit_file, write_notebook_text

pytest_plugins = ["pytest_jupyter.jupyter_server"]

CELL = "%%fal_app web --port 9000\nfrom fastapi import FastAPI\n\napp = FastAPI()\n"


@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"fal_notebook": True}}}


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("FAL_NOTEBOOK_HOME", str(tmp_path / "fal-home"))


@pytest.fixture
def captured(jp_root_dir):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(CELL)]
    nbformat.write(nb, jp_root_dir / "demo.ipynb")
    [project] = export_notebook(jp_root_dir / "demo.ipynb", out_dir=jp_root_dir / "fal_apps")
    return project.path


async def answer(jp_fetch, *parts, method="POST", body=""):
    response = await jp_fetch("fal-notebook", *parts, method=method, body=body, raise_error=False)
    return response.code, json.loads(response.body or b"{}").get("message", "")


@pytest.mark.parametrize(
    "path", ["a\x00b.ipynb", "a" * 5000 + ".ipynb", "x/" * 3000 + "n.ipynb", "../../../etc/passwd", "/etc/passwd"]
)
async def test_capture_refuses_unusable_paths_with_400(jp_fetch, path):
    code, message = await answer(jp_fetch, "capture", body=json.dumps({"path": path}))
    assert code == 400, message
    assert "path" in message or "outside" in message


@pytest.mark.parametrize(
    "body",
    ["[" * 5000 + "]" * 5000, '{"keep_alive": ' + "1" * 5000 + "}", '{"a": ' * 3000 + "1" + "}" * 3000],
)
async def test_bodies_too_deep_or_numbers_too_long_are_400(jp_fetch, captured, body):
    code, message = await answer(jp_fetch, "apps", "web", "config", method="PUT", body=body)
    assert code == 400 and "not JSON" in message


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"cmd": "touch /tmp/pwned"}, "cmd"),
        ({"base_image": "evil\nRUN curl x"}, "base_image"),
        ({"requirements": ["x\n-r /etc/passwd"]}, "requirements"),
        ({"keep_alive": 2**40}, "keep_alive"),
    ],
)
async def test_config_refuses_commands_and_file_breaking_values(jp_fetch, captured, change, named):
    before = {p.name: p.read_text() for p in captured.iterdir() if p.is_file()}
    code, message = await answer(jp_fetch, "apps", "web", "config", method="PUT", body=json.dumps(change))
    assert code == 400 and named in message
    assert {p.name: p.read_text() for p in captured.iterdir() if p.is_file()} == before


async def test_config_refuses_projects_outside_the_root(jp_fetch, captured, tmp_path_factory, monkeypatch):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    monkeypatch.chdir(elsewhere)
    project = capture("from fastapi import FastAPI\n\napp = FastAPI()\n", "far", port=9000)
    before = (project.path / "pyproject.toml").read_text()
    code, message = await answer(jp_fetch, "apps", "far", "config", method="PUT", body=json.dumps({"keep_alive": 9}))
    assert code == 400 and "outside" in message
    assert (project.path / "pyproject.toml").read_text() == before


async def test_deploy_refuses_a_registered_project_outside_the_root(jp_fetch, tmp_path_factory, monkeypatch):
    """A capture elsewhere registers its folder (for the kernel); the panel does not deploy it (issue 20, item 9)."""
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    capture("from fastapi import FastAPI\n\napp = FastAPI()\n", "far", port=9000)
    code, message = await answer(jp_fetch, "apps", "far", "deploy", body=json.dumps({"target": "local"}))
    assert code == 400 and "outside the Jupyter server's root" in message
    response = await jp_fetch("fal-notebook", "jobs", method="GET")
    assert json.loads(response.body) == []


# -- issue 20, item 8: no 500 for malformed notebooks, hand-edited projects, odd query values ----------
@pytest.mark.parametrize("what", MALFORMED_NOTEBOOKS)
async def test_capture_of_a_malformed_notebook_is_a_400(jp_fetch, jp_root_dir, what):
    write_notebook_text(jp_root_dir / "bad.ipynb", MALFORMED_NOTEBOOKS[what])
    code, message = await answer(jp_fetch, "capture", body=json.dumps({"path": "bad.ipynb"}))
    assert code == 400 and "bad.ipynb" in message
    assert not (jp_root_dir / "fal_apps").exists()


@pytest.mark.parametrize(
    "cells", [5, ["x"], [{"source": {"a": 1}}], [{"source": "x", "cell_type": 3}], [{"source": "\ud800"}]]
)
async def test_deploy_with_cells_that_are_not_cells_is_a_400(jp_fetch, cells):
    body = json.dumps({"notebook": {"path": "nb.ipynb", "cells": cells}})
    code, message = await answer(jp_fetch, "apps", "web", "deploy", body=body)
    assert code == 400 and "cell" in message


@pytest.mark.parametrize(
    ("kind", "what"),
    [("manifest", w) for w in MANIFEST_EDITS] + [("pyproject", w) for w in PYPROJECT_EDITS],
)
async def test_a_hand_edited_project_is_never_a_500(jp_fetch, captured, kind, what):
    edit_file(
        captured / (".fal-notebook.json" if kind == "manifest" else "pyproject.toml"),
        (MANIFEST_EDITS if kind == "manifest" else PYPROJECT_EDITS)[what],
    )
    for parts, method, body in (
        (("apps",), "GET", None),
        (("apps", "web"), "GET", None),
        (("apps", "web", "config"), "PUT", json.dumps({"keep_alive": 5})),
        (("capture",), "POST", json.dumps({"path": "demo.ipynb"})),
    ):
        response = await jp_fetch("fal-notebook", *parts, method=method, body=body, raise_error=False)
        assert response.code < 500, (parts, response.body)


@pytest.mark.parametrize("since", ["²", "1" * 5000, "-1"])
async def test_a_jobs_since_that_is_not_a_number_is_read_as_zero(jp_fetch, since):
    cells = [{"cell_type": "code", "source": "%%fal_app web --port 9000\nthis is not python\n"}]
    body = json.dumps({"notebook": {"path": "nb.ipynb", "cells": cells}})
    response = await jp_fetch("fal-notebook", "apps", "web", "deploy", method="POST", body=body)
    job = json.loads(response.body)["id"]
    detail = await jp_fetch("fal-notebook", "jobs", job, params={"since": since})
    assert json.loads(detail.body)["id"] == job
