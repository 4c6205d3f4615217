"""A notebook's current content, as the JupyterLab panel sends it: its app cells described without running
anything, one app captured from unsaved cells (helpers from earlier cells included), the projects of a
folder found without a capture registering them, and config errors that name their keys."""

from __future__ import annotations

import pytest

from fal_notebook.backends import list_apps
from fal_notebook.capture import identify
from fal_notebook.capture.notebook import describe_app_cells, export_cells
from fal_notebook.config import AppConfig
from fal_notebook.errors import CaptureError, ConfigError, NotFoundError
from fal_notebook.state import project_folders, registered_projects

HELPER = "def shout(text):\n    return text.upper()\n"
SERVER = """%%fal_app web --port 9000
from fastapi import FastAPI

app = FastAPI()


@app.get("/")
def hi():
    return shout("hi")
"""
APP = """%%fal_app --keep-alive 30
import fal


class TextStats(fal.App):
    @fal.endpoint("/")
    def run(self, text: str) -> dict:
        return {"n": len(text)}
"""


def test_app_cells_are_described_without_running_or_writing(workdir):
    described = describe_app_cells([APP, HELPER, SERVER, "%%fal_app --port nine\nx = 1", "%%fal_app\nx = 1\n"])
    assert described[0] == {
        "name": "text-stats",
        "mode": "app",
        "options": {"keep_alive": 30},
        "error": None,
        "entries": [],
        "suggested": "text-stats",
    }
    assert described[1] is None
    assert (described[2]["name"], described[2]["mode"], described[2]["options"]) == (
        "web",
        "server",
        {"exposed_port": 9000},
    )
    assert described[3]["name"] is None and "--port" in described[3]["error"]
    assert "no fal.App subclass and no server object named `app`" in described[4]["error"]
    assert not (workdir / "fal_apps").exists() and registered_projects() == {}


def test_identify_is_what_a_capture_would_name(workdir):
    config = identify(APP.partition("\n")[2], keep_alive=30)
    assert (config.name, config.mode, config.keep_alive) == ("text-stats", "app", 30)
    with pytest.raises(ConfigError) as error:
        identify("from fastapi import FastAPI\napp = FastAPI()\n", "Bad Name")
    assert error.value.fields == ["name"]


def test_one_app_is_captured_from_unsaved_cells(workdir):
    cells = [("markdown", "# notes"), ("code", HELPER), ("code", APP), ("code", SERVER)]
    (project,) = export_cells(cells, workdir / "nb" / "unsaved.ipynb", workdir / "nb" / "fal_apps", only="web")
    assert project.name == "web" and project.path == (workdir / "nb" / "fal_apps" / "web").resolve()
    assert "def shout(text)" in project.files["server.py"]  # the helper of an earlier cell came along
    assert not (workdir / "nb" / "fal_apps" / "text-stats").exists()  # the other app was not written
    with pytest.raises(NotFoundError, match="No %%fal_app cell of unsaved.ipynb defines an app named 'nope'"):
        export_cells(cells, workdir / "nb" / "unsaved.ipynb", workdir / "nb" / "fal_apps", only="nope")
    with pytest.raises(CaptureError, match="cell 2 of unsaved.ipynb"):
        export_cells([("code", "x ="), ("code", "%%fal_app web\nx ="), ("code", SERVER)], workdir / "unsaved.ipynb")


def test_project_folders_are_found_by_their_manifest(workdir, monkeypatch):
    export_cells([("code", HELPER), ("code", SERVER)], workdir / "a.ipynb", workdir / "root" / "fal_apps")
    (workdir / "root" / "fal_apps" / "not-a-project").mkdir()
    (workdir / "root" / "fal_apps" / "broken").mkdir()
    (workdir / "root" / "fal_apps" / "broken" / ".fal-notebook.json").write_text("[1, 2]")
    monkeypatch.setenv("FAL_NOTEBOOK_HOME", str(workdir / "other-home"))  # nothing registered here
    assert project_folders([workdir / "root" / "fal_apps"]) == {
        "web": (workdir / "root" / "fal_apps" / "web").resolve()
    }
    assert list_apps() == []
    assert [(row["name"], row["status"]) for row in list_apps([workdir / "root" / "fal_apps"])] == [("web", "captured")]


def test_config_errors_name_their_keys():
    base = {"name": "web", "mode": "server", "exposed_port": 8000}
    cases = [
        ({"keep_alive": -1}, ["keep_alive"]),
        ({"min_concurrency": 5, "max_concurrency": 2}, ["min_concurrency", "max_concurrency"]),
        ({"num_gpus": 2}, ["num_gpus", "machine_type"]),
        ({"regions": ["mars"], "keep_alive": "soon"}, ["keep_alive", "regions"]),
        ({"warp": 9}, ["warp"]),
    ]
    for values, fields in cases:
        with pytest.raises(ConfigError) as error:
            AppConfig.build({**base, **values})
        assert sorted(error.value.fields) == sorted(fields), (values, str(error.value))


def test_a_broken_cell_does_not_block_the_deploy_of_another_app(workdir):
    cells = [
        ("code", "%%fal_app hello-api\nfrom fastapi import FastAPI\napi = FastAPI()\n"),
        ("code", SERVER.replace("return shout", "return str")),
    ]
    (project,) = export_cells(cells, workdir / "nb.ipynb", workdir / "fal_apps", only="web")
    assert project.name == "web"
    with pytest.raises(CaptureError) as failed:  # the broken app itself: its cell and its name
        export_cells(cells, workdir / "nb.ipynb", workdir / "fal_apps", only="hello-api")
    assert "cell 1 of nb.ipynb (app hello-api) defines no fal.App subclass" in str(failed.value)
    assert "Written" not in str(failed.value)


def test_a_cells_row_shows_the_configuration_that_will_deploy(workdir):
    from fal_notebook.generate.project import reconfigure

    cells = [("code", SERVER.replace("return shout", "return str"))]
    (project,) = export_cells(cells, workdir / "nb.ipynb", workdir / "fal_apps")
    reconfigure(project.path, {"keep_alive": 300})
    (row,) = describe_app_cells([cells[0][1]], workdir / "nb.ipynb")
    assert row["settings"] == {"exposed_port": 9000, "keep_alive": 300} and row["from_file"] == ["keep_alive"]
    changed = cells[0][1].replace("--port 9000", "--port 9000 --keep-alive 120")
    (row,) = describe_app_cells([changed], workdir / "nb.ipynb")
    assert "keep_alive (--keep-alive) is 120 in the cell and 300 in the file" in row["conflict"]
    assert row["error"] is None  # still an app: it deploys once the two agree


def test_deploy_this_cell_is_offered_the_cells_server_objects_and_a_name_of_its_own(workdir):
    api = "%%fal_app\nfrom fastapi import FastAPI\napi = FastAPI(title='Hello API')\n"
    (row,) = describe_app_cells([api], workdir / "demo.ipynb")
    assert row["entries"] == ["api"] and row["suggested"] == "hello-api"
    assert "It defines the server object `api`: add --entry api." in row["error"]
    (row,) = describe_app_cells([api.replace("%%fal_app", "%%fal_app --entry api")], workdir / "demo.ipynb")
    assert row["error"] is None and row["mode"] == "server"
    plain = "%%fal_app\nfrom flask import Flask\nweb = Flask(__name__)\n"
    (row,) = describe_app_cells([plain], workdir / "My Demo.ipynb")
    assert row["entries"] == ["web"] and row["suggested"] == "my-demo-web"  # never just "server"
