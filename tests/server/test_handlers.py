"""The REST routes, through a real in-process jupyter server (pytest-jupyter's jp_fetch): every route,
its authorization, and bad input (unknown app, paths outside the root, invalid config)."""

import json

import nbformat
import pytest
from jupyter_server.auth.authorizer import Authorizer
from tornado.httpclient import HTTPClientError

pytest_plugins = ["pytest_jupyter.jupyter_server"]

SERVER_CELL = "from fastapi import FastAPI\n\napp = FastAPI()\n"
APP_CELL = (
    "import fal\n\nclass TextStats(fal.App):\n"
    "    @fal.endpoint('/')\n    def run(self, text: str) -> dict:\n        return {'n': len(text)}\n"
)
EXTENSION = {"ServerApp": {"jpserver_extensions": {"fal_notebook": True}}}


class ReadOnly(Authorizer):
    """Lets users read the fal-notebook routes but not change or deploy anything."""

    def is_authorized(self, handler, user, action, resource):
        return resource != "fal-notebook" or action == "read"


@pytest.fixture
def jp_server_config():
    return EXTENSION


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("FAL_NOTEBOOK_HOME", str(tmp_path / "fal-home"))


@pytest.fixture
def notebook(jp_root_dir):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Two apps"),
        nbformat.v4.new_code_cell("%%fal_app web --port 9000 --keep-alive 30\n" + SERVER_CELL),
    ]
    nbformat.write(nb, jp_root_dir / "demo.ipynb")
    return "demo.ipynb"


async def fetch_json(jp_fetch, *parts, method="GET", body=None, **kwargs):
    response = await jp_fetch(
        "fal-notebook", *parts, method=method, body=None if body is None else json.dumps(body), **kwargs
    )
    return json.loads(response.body)


async def fetch_error(jp_fetch, *parts, method="GET", body=None, **kwargs):
    """The HTTP code and JSON body of a request that must fail."""
    raw = body if isinstance(body, str) or body is None else json.dumps(body)
    with pytest.raises(HTTPClientError) as error:
        await jp_fetch("fal-notebook", *parts, method=method, body=raw, **kwargs)
    return error.value.code, json.loads(error.value.response.body)


async def test_capture_then_list_and_detail(jp_fetch, jp_root_dir, notebook):
    captured = await fetch_json(jp_fetch, "capture", method="POST", body={"path": notebook})
    assert [(c["name"], c["relpath"]) for c in captured] == [("web", "fal_apps/web")]
    assert (jp_root_dir / "fal_apps" / "web" / "server.py").is_file()
    apps = await fetch_json(jp_fetch, "apps")
    assert apps == [
        {
            "name": "web",
            "mode": "server",
            "path": str((jp_root_dir / "fal_apps" / "web").resolve()),
            "relpath": "fal_apps/web",
            "target": None,
            "status": "captured",
            "endpoint_id": None,
        }
    ]
    detail = await fetch_json(jp_fetch, "apps", "web")
    assert detail["config"]["exposed_port"] == 9000 and "server.py" in detail["files"]


async def test_folders_under_the_root_are_listed_without_a_capture_registering_them(
    jp_fetch, jp_root_dir, notebook, tmp_path, monkeypatch
):
    await fetch_json(jp_fetch, "capture", method="POST", body={"path": notebook})
    monkeypatch.setenv("FAL_NOTEBOOK_HOME", str(tmp_path / "another-home"))  # nothing registered there
    apps = await fetch_json(jp_fetch, "apps")
    assert [(a["name"], a["status"], a["relpath"]) for a in apps] == [("web", "captured", "fal_apps/web")]
    assert (await fetch_json(jp_fetch, "apps", "web"))["config"]["keep_alive"] == 30


async def test_config_is_validated_and_written_keeping_comments(jp_fetch, jp_root_dir, notebook):
    await fetch_json(jp_fetch, "capture", method="POST", body={"path": notebook})
    pyproject = jp_root_dir / "fal_apps" / "web" / "pyproject.toml"
    pyproject.write_text("# my notes about this app\n" + pyproject.read_text())
    changed = await fetch_json(
        jp_fetch, "apps", "web", "config", method="PUT", body={"keep_alive": 120, "max_concurrency": 3}
    )
    assert changed["config"]["keep_alive"] == 120 and changed["changed"] == ["pyproject.toml"]
    text = pyproject.read_text()
    assert "keep_alive = 120" in text and "max_concurrency = 3" in text and "# my notes about this app" in text

    code, error = await fetch_error(jp_fetch, "apps", "web", "config", method="PUT", body={"min_concurrency": 9})
    assert code == 400 and error["fields"] == ["min_concurrency", "max_concurrency"]
    assert "min_concurrency (9) is greater than max_concurrency (3)" in error["message"]
    code, error = await fetch_error(jp_fetch, "apps", "web", "config", method="PUT", body={"keep_alive": -5})
    assert code == 400 and error["fields"] == ["keep_alive"] and "`keep_alive` (--keep-alive)" in error["message"]
    code, error = await fetch_error(jp_fetch, "apps", "web", "config", method="PUT", body={"mode": "app"})
    assert code == 400 and error["fields"] == ["mode"] and "come from its notebook cell" in error["message"]
    code, error = await fetch_error(jp_fetch, "apps", "web", "config", method="PUT", body={"warp_speed": 9})
    assert code == 400 and error["fields"] == ["warp_speed"] and "not a fal configuration key" in error["message"]
    assert "keep_alive = 120" in pyproject.read_text()  # nothing half-written

    unset = await fetch_json(jp_fetch, "apps", "web", "config", method="PUT", body={"max_concurrency": None})
    assert "max_concurrency" not in unset["config"] and "max_concurrency" not in pyproject.read_text()


async def test_config_schema_is_appconfigs(jp_fetch):
    from fal_notebook.config import AppConfig

    served = await fetch_json(jp_fetch, "config", "schema")
    assert served["schema"] == json.loads(json.dumps(AppConfig.model_json_schema()))
    assert "keep_alive" in served["editable"] and "name" not in served["editable"]
    assert served["flags"]["exposed_port"] == "--port"


async def test_notebook_cells_are_described_without_running_them(jp_fetch):
    cells = [
        "%%fal_app --keep-alive 30\n" + APP_CELL,
        "x = 1",
        "%%fal_app web --port 9000\n" + SERVER_CELL,
        "%%fal_app\nx = 1\n",
    ]
    described = await fetch_json(jp_fetch, "notebook", "apps", method="POST", body={"cells": cells, "path": "n.ipynb"})
    assert {k: described[0][k] for k in ("name", "mode", "options", "error", "settings")} == {
        "name": "text-stats",
        "mode": "app",
        "options": {"keep_alive": 30},
        "error": None,
        "settings": {"keep_alive": 30},  # what will deploy: the cell's keys, none from a file yet
    }
    assert described[1] is None
    assert described[2]["name"] == "web" and described[2]["mode"] == "server"
    assert described[3]["name"] is None and "no fal.App subclass" in described[3]["error"]
    code, error = await fetch_error(jp_fetch, "notebook", "apps", method="POST", body={"cells": "x"})
    assert code == 400 and error["fields"] == ["cells"]


async def test_unknown_apps_are_404_with_what_to_do(jp_fetch):
    for parts, method, body in [
        (("apps", "nope"), "GET", None),
        (("apps", "nope", "logs"), "GET", None),
        (("apps", "nope", "logs"), "GET", None),
        (("apps", "nope", "stop"), "POST", {}),
        (("apps", "nope", "config"), "PUT", {"keep_alive": 1}),
        (("apps", "nope", "deploy"), "POST", {"target": "local"}),
        (("capture",), "POST", {"path": "missing.ipynb"}),
        (("jobs", "0123456789abcdef"), "GET", None),
        (("jobs", "0123456789abcdef", "cancel"), "POST", {}),
    ]:
        code, error = await fetch_error(jp_fetch, *parts, method=method, body=body)
        assert code == 404, (parts, error)
        assert error["message"]
    code, error = await fetch_error(jp_fetch, "apps", "nope", "logs", params={"follow": "1"})
    assert code == 404 and "has not been deployed" in error["message"]


async def test_paths_outside_the_root_are_refused(jp_fetch, jp_root_dir, notebook):
    code, error = await fetch_error(jp_fetch, "capture", method="POST", body={"path": "../../etc/passwd"})
    assert code == 400 and error["fields"] == ["path"] and "outside the server's root" in error["message"]
    code, error = await fetch_error(
        jp_fetch,
        "apps",
        "web",
        "deploy",
        method="POST",
        body={"target": "local", "notebook": {"path": "../elsewhere/x.ipynb", "cells": []}},
    )
    assert code == 400 and error["fields"] == ["notebook.path"]
    assert not (jp_root_dir.parent / "elsewhere").exists()


async def test_bad_request_bodies_name_the_field(jp_fetch, notebook):
    await fetch_json(jp_fetch, "capture", method="POST", body={"path": notebook})
    code, error = await fetch_error(jp_fetch, "apps", "web", "deploy", method="POST", body={"target": "moon"})
    assert code == 400 and "Unknown target 'moon'" in error["message"]
    code, error = await fetch_error(jp_fetch, "apps", "web", "deploy", method="POST", body={"notebook": {"path": 1}})
    assert code == 400 and error["fields"] == ["notebook"]
    code, error = await fetch_error(jp_fetch, "apps", "web", "deploy", method="POST", body={"env": "conda"})
    assert code == 400 and error["fields"] == ["env"] and "kernel or isolated" in error["message"]
    code, error = await fetch_error(jp_fetch, "apps", "web", "config", method="PUT", body="{not json")
    assert code == 400 and "not JSON" in error["message"]
    code, error = await fetch_error(jp_fetch, "capture", method="POST", body={})
    assert code == 400 and error["fields"] == ["path"]


async def test_routes_need_authentication(jp_fetch):
    for parts in [("apps",), ("status",), ("config", "schema"), ("jobs",)]:
        with pytest.raises(HTTPClientError) as error:
            await jp_fetch("fal-notebook", *parts, headers={"Authorization": ""})
        assert error.value.code == 403


@pytest.mark.parametrize(
    "jp_server_config", [{**EXTENSION, "ServerApp": {**EXTENSION["ServerApp"], "authorizer_class": ReadOnly}}]
)
async def test_a_read_only_user_can_look_but_not_change_or_deploy(jp_fetch, jp_root_dir, notebook):
    assert await fetch_json(jp_fetch, "apps") == []
    assert "schema" in await fetch_json(jp_fetch, "config", "schema")
    for parts, method, body in [
        (("capture",), "POST", {"path": notebook}),
        (("apps", "web", "deploy"), "POST", {"target": "local"}),
        (("apps", "web", "config"), "PUT", {"keep_alive": 1}),
        (("apps", "web", "stop"), "POST", {}),
        (("jobs", "0123456789abcdef", "cancel"), "POST", {}),
    ]:
        code, error = await fetch_error(jp_fetch, *parts, method=method, body=body)
        assert code == 403, parts
    assert not (jp_root_dir / "fal_apps").exists()


async def test_status_reports_a_stopped_gateway(jp_fetch, monkeypatch):
    from tests.gateway_helpers import free_port

    monkeypatch.setenv("FAL_NOTEBOOK_GATEWAY_PORT", str(free_port()))
    status = await fetch_json(jp_fetch, "status")
    assert status["gateway"]["running"] is False and status["apps"] == [] and status["jobs"] == []


async def test_posts_from_a_browser_session_need_the_xsrf_token(jp_fetch, jp_serverapp, notebook):
    """A cookie-authenticated POST (what a browser sends) is refused without Jupyter's XSRF token."""
    token = jp_serverapp.identity_provider.token
    login = await jp_fetch("api", "status", params={"token": token}, headers={"Authorization": ""})
    cookies = [c.split(";")[0] for c in login.headers.get_list("Set-Cookie")]
    session = {"Authorization": "", "Cookie": "; ".join(cookies)}
    with pytest.raises(HTTPClientError) as error:
        await jp_fetch("fal-notebook", "capture", method="POST", body=json.dumps({"path": notebook}), headers=session)
    assert error.value.code == 403 and b"_xsrf" in error.value.response.body
    xsrf = "2|0123abcd|0123456789abcdef0123456789abcdef|1700000000"
    with_xsrf = {**session, "Cookie": f"{session['Cookie']}; _xsrf={xsrf}", "X-XSRFToken": xsrf}
    response = await jp_fetch(
        "fal-notebook", "capture", method="POST", body=json.dumps({"path": notebook}), headers=with_xsrf
    )
    assert [app["name"] for app in json.loads(response.body)] == ["web"]
