"""Bad input gets the package's own error at the door it comes in by, never a traceback (issue 20,
item 8): malformed notebooks, hand-edited project files, over-long path names, lone surrogates,
objects whose own code raises while they are captured, and a CLI whose reader goes away."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from fal_notebook import capture, export_notebook
from fal_notebook.backends import list_apps
from fal_notebook.cli import main
from fal_notebook.errors import CaptureError, ConfigError, FalNotebookError
from fal_notebook.generate.project import AppProject, reconfigure
from tests.bad_files import (
    MALFORMED_NOTEBOOKS,
    MANIFEST_EDITS,
    PYPROJECT_EDITS,
    SERVER_CELL,
    edit_file,
    write_notebook_text,
)

SERVER = SERVER_CELL.split("\n", 1)[1]


@pytest.fixture(autouse=True)
def workdir(tmp_path, monkeypatch):
    monkeypatch.setenv("FAL_NOTEBOOK_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def refused(capsys, *argv: str) -> str:
    """Run the CLI in this process: it must answer with an error line and exit code 1."""
    assert main(list(argv)) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    return err


@pytest.mark.parametrize("what", MALFORMED_NOTEBOOKS)
def test_a_malformed_notebook_is_refused_naming_it(workdir, capsys, what):
    path = write_notebook_text(workdir / "bad.ipynb", MALFORMED_NOTEBOOKS[what])
    with pytest.raises(FalNotebookError, match="bad.ipynb"):
        export_notebook(path)
    refused(capsys, "export", str(path))
    assert not (workdir / "fal_apps").exists()


@pytest.mark.parametrize(
    ("kind", "what"), [("manifest", w) for w in MANIFEST_EDITS] + [("pyproject", w) for w in PYPROJECT_EDITS]
)
def test_a_hand_edited_project_file_gets_an_error_naming_it(workdir, capsys, kind, what):
    project = capture(SERVER, "web", port=9000)
    name, edits = (".fal-notebook.json", MANIFEST_EDITS) if kind == "manifest" else ("pyproject.toml", PYPROJECT_EDITS)
    edit_file(project.path / name, edits[what])
    for attempt in (
        lambda: AppProject.load(project.path),
        lambda: reconfigure(project.path, {"keep_alive": 5}),
        lambda: capture(SERVER + "# again\n", "web", port=9000),
        list_apps,
        lambda: capture(SERVER + "# forced\n", "web", port=9000, force=True),
    ):
        try:
            attempt()
        except FalNotebookError as exc:
            assert "Traceback" not in str(exc)
    try:
        AppProject.load(project.path)
    except FalNotebookError:  # a deploy is refused, by name or folder (one that loads would start a gateway)
        assert "web" in refused(capsys, "deploy", "web") and "web" in refused(capsys, "deploy", str(project.path))
    assert main(["apps"]) == 0  # it lists the folder, as unreadable if need be


def test_an_edited_manifest_is_named_in_the_error(workdir):
    project = capture(SERVER, "web", port=9000)
    manifest = project.path / ".fal-notebook.json"
    kept = manifest.read_text()
    edit_file(manifest, MANIFEST_EDITS["files a list"])
    with pytest.raises(ConfigError, match=r"\.fal-notebook\.json is not a manifest fal-notebook wrote.*\"files\""):
        AppProject.load(project.path)
    manifest.write_text(kept)
    edit_file(project.path / "pyproject.toml", PYPROJECT_EDITS["tool.fal a number"])
    with pytest.raises(ConfigError, match=r"`tool\.fal` in .*pyproject\.toml is not a table"):
        capture(SERVER, "web", port=9000)
    rewritten = capture(SERVER, "web", port=9000, force=True)  # unreadable files are written anew
    assert AppProject.load(rewritten.path).name == "web"


@pytest.mark.parametrize("where", ["--dir", "deploy", "export"])
def test_a_path_with_a_name_over_255_bytes_is_refused(workdir, capsys, where):
    long = "a" * 300
    if where == "--dir":
        with pytest.raises(ConfigError, match="over 255 bytes"):
            capture(SERVER, "web", port=9000, dir=f"apps/{long}")
    elif where == "deploy":
        assert "over 255 bytes" in refused(capsys, "deploy", f"{long}/web")
    else:
        assert "over 255 bytes" in refused(capsys, "export", f"{long}.ipynb")


@pytest.mark.parametrize("line", ["x = '\ud800'", "# \udfff"])
def test_a_lone_surrogate_in_a_cell_is_a_capture_error(line):
    with pytest.raises(CaptureError, match="Line 4 of the cell holds text that is not valid Unicode"):
        capture(SERVER + line + "\n", "web", port=9000)


def _hostile(base: type, name: str, bases: tuple[type, ...] = (), names: tuple[str, ...] = ()) -> type:
    """A class ``name`` whose metaclass's ``__getattribute__`` raises RuntimeError once the class is
    built (for the attributes in ``names`` only, if given)."""
    armed = False

    class Hostile(base):  # type: ignore[misc, valid-type]
        def __getattribute__(cls, attribute: str) -> object:
            if armed and (not names or attribute in names):
                raise RuntimeError("hostile __getattribute__")
            return super().__getattribute__(attribute)

    built = Hostile(name, bases, {"keep_alive": 300} if names else {})
    armed = True
    return built


def _hostile_use(use: str) -> tuple[str, dict, dict]:
    import fal

    if use == "helper":
        return SERVER + "thing = Thing\n", {"Thing": _hostile(type, "Thing")}, {"port": 9000}
    if use == "entry":
        return "app = app\n", {"app": _hostile(type, "Thing")}, {"port": 9000}
    live = _hostile(type(fal.App), "Thing", (fal.App,), ("keep_alive",))  # read from the live class
    return "import fal\n\nclass Thing(fal.App):\n    keep_alive = 100 + 200\n", {"Thing": live, "fal": fal}, {}


@pytest.mark.parametrize("use", ["helper", "entry", "app class"])
def test_objects_whose_own_code_raises_are_a_capture_error(workdir, use):
    source, namespace, options = _hostile_use(use)
    with pytest.raises(
        CaptureError, match=r"raised RuntimeError \('hostile __getattribute__'\) from the object's own code"
    ):
        capture(source, "thing", namespace=namespace, **options)
    assert not (workdir / "fal_apps").exists()


def test_the_cli_stops_quietly_when_its_reader_goes_away(workdir):
    """`fal-notebook apps | head -1`: the rest of the output has no reader; no BrokenPipe traceback."""
    folder = workdir / "project"
    folder.mkdir()
    (folder / "pyproject.toml").touch()
    projects = {f"app-{i:05d}": str(folder) for i in range(20_000)}
    (workdir / "home").mkdir(mode=0o700)
    (workdir / "home" / "projects.json").write_text(__import__("json").dumps(projects))
    command = [sys.executable, "-m", "fal_notebook.cli", "apps"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ) as process:
        assert process.stdout is not None and process.stdout.readline().startswith(b"app-00000")
        process.stdout.close()
        _, err = process.communicate(timeout=120)
    assert b"Traceback" not in err and b"BrokenPipe" not in err, err.decode()
    assert process.returncode == 141


def test_a_form_feed_in_a_cell_is_whitespace_as_python_reads_it(workdir):
    """Found by the full fuzz run: ``class Input\\f(BaseModel):`` parses (a form feed is whitespace to
    Python) but ``str.splitlines`` breaks the line there, and capture's line numbers went astray."""
    cell = "import fal\nfrom pydantic import BaseModel\n\nclass Input\f(BaseModel):\n    text: str\n\n\n"
    cell += "class Echo(fal.App):\n    @fal.endpoint('/')\n    def run(self, inp: Input) -> dict:\n        return {}\n"
    project = capture(cell, "echo")
    assert "class Input\f(BaseModel):" in project.files["app.py"]
