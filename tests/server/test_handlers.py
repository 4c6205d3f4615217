"""The REST routes, through a real in-process jupyter server (pytest-jupyter's jp_fetch)."""

import json

import nbformat
import pytest
from tornado.httpclient import HTTPClientError

pytest_plugins = ["pytest_jupyter.jupyter_server"]

SERVER_CELL = "from fastapi import FastAPI\n\napp = FastAPI()\n"


@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"fal_notebook": True}}}


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("FAL_NOTEBOOK_HOME", str(tmp_path / "fal-home"))


@pytest.fixture
def notebook(jp_root_dir):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("%%fal_app web --port 9000 --keep-alive 30\n" + SERVER_CELL)]
    nbformat.write(nb, jp_root_dir / "demo.ipynb")
    return "demo.ipynb"


async def fetch_json(jp_fetch, *parts, method="GET", body=None):
    response = await jp_fetch("fal-notebook", *parts, method=method, body=None if body is None else json.dumps(body))
    return json.loads(response.body)


async def test_capture_then_list_and_detail(jp_fetch, jp_root_dir, notebook):
    captured = await fetch_json(jp_fetch, "capture", method="POST", body={"path": notebook})
    assert [c["name"] for c in captured] == ["web"]
    assert (jp_root_dir / "fal_apps" / "web" / "server.py").is_file()
    apps = await fetch_json(jp_fetch, "apps")
    assert apps == [
        {
            "name": "web",
            "mode": "server",
            "path": str((jp_root_dir / "fal_apps" / "web").resolve()),
            "target": None,
            "status": "captured",
            "endpoint_id": None,
        }
    ]
    detail = await fetch_json(jp_fetch, "apps", "web")
    assert detail["config"]["exposed_port"] == 9000 and "server.py" in detail["files"]


async def test_config_is_validated_and_written(jp_fetch, jp_root_dir, notebook):
    await fetch_json(jp_fetch, "capture", method="POST", body={"path": notebook})
    changed = await fetch_json(
        jp_fetch, "apps", "web", "config", method="PUT", body={"keep_alive": 120, "max_concurrency": 3}
    )
    assert changed["config"]["keep_alive"] == 120 and changed["changed"] == ["pyproject.toml"]
    assert "keep_alive = 120" in (jp_root_dir / "fal_apps" / "web" / "pyproject.toml").read_text()
    with pytest.raises(HTTPClientError) as error:
        await jp_fetch("fal-notebook", "apps", "web", "config", method="PUT", body=json.dumps({"min_concurrency": 9}))
    assert error.value.code == 400
    assert "min_concurrency (9) is greater than max_concurrency (3)" in json.loads(error.value.response.body)["message"]
    with pytest.raises(HTTPClientError) as error:
        await jp_fetch("fal-notebook", "apps", "web", "config", method="PUT", body=json.dumps({"mode": "app"}))
    assert "come from its notebook cell" in json.loads(error.value.response.body)["message"]


async def test_unknown_app_and_bad_paths(jp_fetch):
    for parts, method, body in [
        (("apps", "nope"), "GET", None),
        (("apps", "nope", "logs"), "GET", None),
        (("capture",), "POST", json.dumps({"path": "missing.ipynb"})),
    ]:
        with pytest.raises(HTTPClientError) as error:
            await jp_fetch("fal-notebook", *parts, method=method, body=body)
        assert error.value.code == 404
    with pytest.raises(HTTPClientError) as error:
        await jp_fetch("fal-notebook", "capture", method="POST", body=json.dumps({"path": "../../etc/passwd"}))
    assert error.value.code == 400 and "outside the server's root" in json.loads(error.value.response.body)["message"]


async def test_routes_need_authentication(jp_fetch):
    with pytest.raises(HTTPClientError) as error:
        await jp_fetch("fal-notebook", "apps", headers={"Authorization": ""})
    assert error.value.code == 403
