"""Capture in both modes, through the real magic and the Python API."""

import json
import subprocess
import sys
import textwrap

import pytest

import fal_notebook
from fal_notebook import capture
from fal_notebook.errors import CaptureError, ConfigError, FalNotebookError, ProjectConflictError

APP_CELL = """
import fal
from pydantic import BaseModel, Field


class Input(BaseModel):
    text: str = Field(description="Text to analyse", examples=["hello world"])
    top_k: int = Field(default=3, ge=1, le=20)


class Output(BaseModel):
    words: int
    top: list[str]


class TextStats(fal.App, keep_alive=60):
    machine_type = "GPU-H100"
    requirements = ["numpy>=1.20"]

    def setup(self):
        self.stop = STOP

    @fal.endpoint("/")
    def run(self, inp: Input) -> Output:
        words = [w for w in tokenize(inp.text) if w not in self.stop]
        return Output(words=len(words), top=sorted(words)[: inp.top_k])
"""

HELPERS = """
import re
STOP = {"the", "a"}
LIMITS = {"max": 3, "names": ["x", "y"]}

def tokenize(text):
    return re.findall(r"[a-z]+", text.lower())
"""

SERVER_CELL = """
from fastapi import FastAPI

app = FastAPI()


@app.get("/hello")
def hello(name: str = "world"):
    return {"greeting": f"hello {name}"}
"""


def run_in_fresh_interpreter(folder, script):
    """Run ``script`` with cwd = the project folder in a new Python process; returns stdout."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], cwd=folder, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_magic_captures_an_app_with_helpers_from_earlier_cells(shell, workdir):
    assert shell.run(HELPERS).success
    result = shell.run("%%fal_app text-stats --keep-alive 300 --max-concurrency 4\n" + APP_CELL)
    assert result.success, result.error_in_exec
    project = result.value
    assert project.name == "text-stats" and project.mode == "app"
    assert project.path == (workdir / "fal_apps" / "text-stats").resolve()
    assert sorted(p.name for p in project.path.iterdir()) == [
        ".dockerignore",
        ".fal-notebook.json",
        "Dockerfile",
        "README.md",
        "app.py",
        "pyproject.toml",
        "requirements.txt",
    ]
    # the cell ran in the kernel as usual
    assert shell.user_ns["TextStats"].__name__ == "TextStats"
    # flags win over the class, and say so
    assert any("--keep-alive 300 overrides the class's keep_alive = 60" in n for n in project.notes)
    assert project.config.keep_alive == 300 and project.config.machine_type == ["GPU-H100"]
    source = (project.path / "app.py").read_text()
    assert "def tokenize(text):" in source and "import re" in source and "STOP = {'a', 'the'}" in source
    assert "LIMITS" not in source  # only what the cell uses
    # the generated module imports and runs in a fresh interpreter
    out = run_in_fresh_interpreter(
        project.path,
        """
        import runpy
        ns = runpy.run_path("app.py")
        app = ns["TextStats"](_allow_init=True)
        app.setup()
        print(app.run(ns["Input"](text="The cat and a hat")).model_dump_json())
        print(ns["TextStats"].requirements)
    """,
    )
    first, reqs = out.strip().splitlines()
    assert json.loads(first) == {"words": 3, "top": ["and", "cat", "hat"]}
    assert "numpy>=1.20" in reqs and "pydantic==" in reqs and "'fal==" not in reqs


def test_requirements_are_inferred_pinned_and_merged(shell):
    import importlib.metadata as md

    shell.run(HELPERS)
    project = shell.run('%%fal_app stats --requirements "pydantic>=2 httpx==0.1"\n' + APP_CELL).value
    reqs = project.requirements
    assert f"fal=={md.version('fal')}" in reqs
    assert "pydantic>=2" in reqs and not any(r.startswith("pydantic==") for r in reqs)  # declared wins
    assert "numpy>=1.20" in reqs and "httpx==0.1" in reqs  # class + flag declarations
    assert not any(r.startswith(("re", "collections")) for r in reqs)  # stdlib excluded
    txt = (project.path / "requirements.txt").read_text()
    assert "numpy>=1.20" in txt and "fal==" not in txt and "pydantic" not in txt  # fal's runtime goes last
    assert f'"fal=={md.version("fal")}" "pydantic>=2"' in (project.path / "Dockerfile").read_text()


def test_server_mode_runs_in_a_fresh_interpreter(shell):
    project = shell.run("%%fal_app hello-server --port 8123\n" + SERVER_CELL).value
    assert project.mode == "server" and project.config.exposed_port == 8123
    assert {r.split("==")[0] for r in project.requirements} == {"fastapi", "uvicorn"}
    out = run_in_fresh_interpreter(
        project.path,
        """
        import runpy
        from starlette.testclient import TestClient
        ns = runpy.run_path("server.py")  # __name__ != "__main__": does not start serving
        print(TestClient(ns["app"]).get("/hello", params={"name": "fal"}).json())
    """,
    )
    assert out.strip() == "{'greeting': 'hello fal'}"
    assert 'os.environ.get("PORT", "8123")' in (project.path / "server.py").read_text()


def test_wsgi_server_is_served_through_a2wsgi(workdir):
    cell = "class Flaskish:\n    def __call__(self, environ, start_response):\n        return []\napp = Flaskish()\n"
    ns = {}
    exec(cell, ns)
    project = capture(cell, "wsgi-app", namespace=ns)
    assert "WSGIMiddleware(app)" in (project.path / "server.py").read_text()
    assert any(r.startswith("a2wsgi") for r in project.requirements)


def test_cmd_server_needs_a_port_or_PORT(workdir):
    with pytest.raises(ConfigError, match=r"which port does the server listen on\? Pass it with --port"):
        capture("print('hi')", "cmd-app", cmd="python -m http.server 9000")
    assert not (workdir / "fal_apps").exists()
    project = capture("", "cmd-app", cmd="python -m http.server $PORT")
    assert project.config.exposed_port == 8000
    assert '"sh", "-c", "exec python -m http.server $PORT"' in project.files["Dockerfile"]


def test_no_run_captures_without_executing(shell):
    result = shell.run("%%fal_app hello-server --no-run\n" + SERVER_CELL)
    assert result.success and "app" not in shell.user_ns
    assert result.value.mode == "server"


def test_a_failing_cell_is_not_captured(shell, workdir):
    result = shell.run("%%fal_app broken\n" + SERVER_CELL + "\nraise RuntimeError('boom')\n")
    assert not result.success or result.value is None
    assert not (workdir / "fal_apps").exists()


def test_class_keyword_name_is_the_default_name(workdir):
    cell = "import fal\nclass MyGoodApp(fal.App):\n    pass\n"
    assert capture(cell, notebook_cells=[]).name == "my-good-app"
    cell = "import fal\nclass MyGoodApp(fal.App, name='custom'):\n    pass\n"
    assert capture(cell).name == "custom"


def test_two_apps_need_class(workdir):
    cell = "import fal\nclass A(fal.App):\n    pass\n\nclass B(fal.App):\n    pass\n"
    with pytest.raises(CaptureError, match=r"defines 2 fal.App classes: A \(line 2\), B \(line 5\).*--class"):
        capture(cell)
    assert capture(cell, "b-app", class_name="B").config.class_name == "B"
    with pytest.raises(CaptureError, match=r"--class C: no fal.App subclass of that name .*found: A, B"):
        capture(cell, class_name="C")


@pytest.mark.parametrize(
    ("cell", "options", "error", "message"),
    [
        ("x = (1,\n", {}, CaptureError, r"Syntax error in the cell, line 1"),
        ("!pip install torch\nx = 1\n", {}, CaptureError, r"Line 1 of the cell is IPython syntax"),
        ("x = 1\n", {}, CaptureError, r"no fal.App subclass and no server object named `app`"),
        (
            "import fal\nclass A(fal.App):\n    exposed_port = 8000\n",
            {},
            ConfigError,
            r"`exposed_port` is set on the fal.App class A \(line 2\)",
        ),
        (
            "import fal\nclass A(fal.App):\n    pass\n",
            {"machine_type": ["GPU X"]},
            ConfigError,
            r"`machine_type.0` \(--machine-type\) must be a machine type name",
        ),
        (
            "import fal\nclass A(fal.App):\n    pass\n",
            {"min_concurrency": 4, "max_concurrency": 2},
            ConfigError,
            r"min_concurrency \(4\) is greater than max_concurrency \(2\)",
        ),
        ("import fal\nclass A(fal.App):\n    request_timeout = -3\n", {}, ConfigError, r"`request_timeout`"),
        ("import fal\nclass A(fal.App):\n    pass\n", {"name": "../../etc"}, ConfigError, r"`name`"),
        (
            "import fal\nclass A(fal.App):\n    def setup(self):\n        self.m = model\n",
            {},
            CaptureError,
            r"`model` is used in line 4 of the cell but is not defined",
        ),
    ],
)
def test_bad_input_is_explained_and_nothing_is_written(workdir, cell, options, error, message):
    name = options.pop("name", None)
    with pytest.raises(error, match=message):
        capture(cell, name, **options)
    assert not (workdir / "fal_apps").exists()
    assert not list(workdir.glob("**/.fal-notebook.json"))


def test_kernel_objects_that_cannot_be_written_are_named(shell, workdir):
    shell.run("model = object()\nhandle = open('/dev/null')\nsquare = lambda x: x * x\n")
    base = "import fal\nclass A(fal.App):\n    def setup(self):\n        self.x = NAME\n"
    for name, message in [
        ("model", r"`model`, an object object that exists only in the kernel.*in `setup\(\)`"),
        ("handle", r"`handle`, a TextIOWrapper object"),
        ("square", r"`square`, a lambda defined in the notebook.*`def` function"),
    ]:
        result = shell.run("%%fal_app a\n" + base.replace("NAME", name))
        assert isinstance(result.error_in_exec, CaptureError)
        assert __import__("re").search(message, str(result.error_in_exec)), str(result.error_in_exec)
    assert not (workdir / "fal_apps").exists()


def test_secret_values_are_refused(workdir, monkeypatch):
    monkeypatch.setenv("FAL_KEY", "key-id-1234:super-secret-value-5678")
    cell = SERVER_CELL + '\nTOKEN = "super-secret-value-5678"\n'
    with pytest.raises(CaptureError, match=r"would contain the value of FAL_KEY.*Nothing was written") as info:
        capture(cell, "leaky")
    assert "super-secret-value-5678" not in str(info.value)
    assert not (workdir / "fal_apps").exists()


def test_rerun_is_safe_and_user_edits_are_protected(workdir):
    first = capture(SERVER_CELL, "hello")
    assert capture(SERVER_CELL, "hello").changed == []
    server = first.path / "server.py"
    server.write_text(server.read_text() + "\n# my tweak\n")
    with pytest.raises(ProjectConflictError, match=r"you edited server.py .*--force") as info:
        capture(SERVER_CELL.replace("hello {name}", "hi {name}"), "hello")
    assert info.value.edited == ["server.py"]
    assert "# my tweak" in server.read_text() and "hello {name}" in server.read_text()
    forced = capture(SERVER_CELL.replace("hello {name}", "hi {name}"), "hello", force=True)
    assert "hi {name}" in server.read_text() and "# my tweak" not in server.read_text()
    assert forced.changed == ["server.py"]


def test_pyproject_keeps_user_keys_and_comments(workdir):
    cell = "import fal\nclass A(fal.App):\n    pass\n"
    project = capture(cell, "keep", keep_alive=100, min_concurrency=1)
    toml = project.path / "pyproject.toml"
    toml.write_text(toml.read_text() + '# my comment\nregions = ["eu-west"]\n\n[tool.other]\nx = 1\n')
    again = capture(cell, "keep", keep_alive=200)
    text = toml.read_text()
    assert "# my comment" in text and 'regions = ["eu-west"]' in text and "[tool.other]" in text
    assert "keep_alive = 200" in text and "min_concurrency" not in text  # unset by the cell: removed
    assert again.config.keep_alive == 200


def test_mode_switch_removes_stale_generated_files(workdir):
    capture("import fal\nclass A(fal.App):\n    pass\n", "switch")
    project = capture(SERVER_CELL, "switch")
    assert (project.path / "server.py").is_file() and not (project.path / "app.py").exists()


def test_public_api_names():
    interface = {
        "capture",
        "export_notebook",
        "deploy",
        "connect",
        "Playground",
        "AppProject",
        "AppConfig",
        "Deployment",
        "EndpointClient",
        "RequestHandle",
    }
    assert interface <= set(fal_notebook.__all__)
    for name in fal_notebook.__all__:
        assert getattr(fal_notebook, name) is not None


def test_errors_render_without_traceback_in_ipython():
    assert FalNotebookError("boom")._render_traceback_()[0].endswith("boom")
