"""The REST routes refuse what they cannot honour with a 4xx naming the field (issue 12, items 2
and 4): nothing is written or changed."""

import json

import nbformat
import pytest

from fal_notebook import capture, export_notebook

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
