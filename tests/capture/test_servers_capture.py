"""Servers and apps as people bring them: script starts, fal's @fal.function servers, what a --cmd
runs, packages the cell needs only at run time, and the files it reads."""

from __future__ import annotations

import ast
import sys
import textwrap
import time

import joblib
import numpy as np
import pytest

from fal_notebook import capture
from fal_notebook.backends.hints import failure_hint, plain
from fal_notebook.capture.classify import kernel_source, port_of, without_main_blocks
from fal_notebook.capture.notebook import export_notebook
from fal_notebook.capture.requirements import read_command
from fal_notebook.errors import CaptureError

FLASK_SCRIPT = """
from flask import Flask

app = Flask(__name__)


@app.route("/")
def index():
    return "hi"


if __name__ == "__main__":
    import time
    time.sleep(600)  # app.run(): a script's start blocks
    app.run(port=5000)
"""

DSM = '''
import subprocess

import fal
from fal.container import ContainerImage

DOCKERFILE = """
FROM python:3.11-slim
RUN echo ready
"""


@fal.function(
    image=ContainerImage.from_dockerfile_str(DOCKERFILE),
    machine_type="GPU-A100",
    exposed_port=8123,
    keep_alive=300,
)
def run_server():
    subprocess.run(["python", "-m", "http.server", "8123"], check=True)
'''


def test_the_kernel_runs_a_script_start_as_false_with_every_line_where_it_was():
    cell = 'x = 1\nif (\n    __name__ == "__main__"\n):\n    start()\nelse:\n    y = 2\nz = 3\n'
    runnable = kernel_source(cell)
    assert runnable.splitlines()[2] == "    False" and len(runnable.splitlines()) == len(cell.splitlines())
    assert kernel_source('if __name__ == "__main__": go()\n') == "if False: go()\n"
    namespace: dict = {}
    exec(runnable, namespace)  # start() is never called; the else branch runs, as when imported
    assert namespace["y"] == 2 and namespace["z"] == 3
    assert kernel_source("x = (") == "x = ("  # Python reports the syntax error itself


def test_a_script_start_is_left_out_of_the_module_and_its_port_taken():
    body, blocks = without_main_blocks(FLASK_SCRIPT)
    assert "time.sleep" not in body and "left out" in body
    assert port_of(blocks) == 5000
    assert port_of([b for b in ast.parse("if __name__ == '__main__':\n    run(port=PORT)\n").body]) is None


def test_the_magic_neither_blocks_on_a_script_start_nor_copies_it(shell, workdir):
    started = time.monotonic()
    result = shell.run("%%fal_app flask-app\n" + FLASK_SCRIPT)
    assert time.monotonic() - started < 60 and result.success
    project = result.value
    assert project.config.exposed_port == 5000 and any("left out of server.py" in n for n in project.notes)
    server = (workdir / "fal_apps/flask-app/server.py").read_text()
    assert "time.sleep(600)" not in server and "WSGIMiddleware(app)" in server
    assert "__file__" not in shell.user_ns  # set only while the cell ran


def test_fal_direct_server_mode_example_works_as_pasted(shell, workdir):
    result = shell.run("%%fal_app\n" + DSM)
    assert result.success, result.error_in_exec
    project = result.value
    config = project.config
    assert (config.name, config.mode, config.cmd, config.exposed_port) == (
        "run-server",
        "server",
        "python server.py",
        8123,
    )
    assert config.keep_alive == 300 and config.machine_type == ["GPU-A100"]
    server = (workdir / "fal_apps/run-server/server.py").read_text()
    assert server.rstrip().endswith("inspect.unwrap(run_server)()")
    dockerfile = (workdir / "fal_apps/run-server/Dockerfile").read_text()
    assert (
        "FROM python:3.11-slim\nRUN echo ready" in dockerfile
        and 'CMD ["sh", "-c", "exec python server.py"]' in dockerfile
    )
    assert "fal==" in " ".join(project.requirements)


def test_fal_direct_server_mode_example_exported_without_a_kernel(workdir):
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("%%fal_app dsm\n" + DSM)])
    nbformat.write(nb, workdir / "n.ipynb")
    (project,) = export_notebook(workdir / "n.ipynb")
    assert project.config.exposed_port == 8123 and "RUN echo ready" in project.files["Dockerfile"]


def test_what_a_command_runs():
    assert read_command("uvicorn main:app --host $HOST --port $PORT").programs == ["uvicorn"]
    assert read_command("uvicorn main:app --port $PORT").modules == ["main"]
    assert read_command("PORT=1 exec gunicorn -b :8000 web.wsgi:application").modules == ["web"]
    assert read_command("python -m http.server $PORT").modules == ["http"]
    assert read_command("cd app && python serve.py").files == ["serve.py"]
    assert read_command("gradio app.py").programs == ["gradio"]
    assert read_command("echo 'unclosed").programs == []


def test_a_command_brings_its_program_its_module_its_imports_and_the_files_they_read(shell, workdir, monkeypatch):
    monkeypatch.syspath_prepend(str(workdir))  # a kernel imports modules beside its notebook
    monkeypatch.setitem(sys.modules, "main", None)  # no other test's main module; removed again after
    del sys.modules["main"]
    joblib.dump(np.array([1.0, 2.0]), workdir / "weights.pkl")
    (workdir / "main.py").write_text(
        "from pathlib import Path\nimport joblib\nfrom fastapi import FastAPI\n"
        'weights = joblib.load(Path(__file__).parent / "weights.pkl")\napp = FastAPI()\n'
    )
    result = shell.run(
        '%%fal_app scorer --cmd "uvicorn main:app --host $HOST --port $PORT"\nfrom main import weights\n'
    )
    project = result.value
    names = {r.split("==")[0].lower() for r in project.requirements}
    assert {"uvicorn", "joblib", "fastapi", "numpy"} <= names
    why = dict(project.inferred)
    assert any("program of --cmd" in w for w in why.values()) and any("numpy" in w for w in why.values())
    assert "Also inferred" in project.summary()
    folder = workdir / "fal_apps/scorer"
    assert (folder / "main.py").is_file() and (folder / "weights.pkl").read_bytes() == (
        workdir / "weights.pkl"
    ).read_bytes()
    dockerfile = (folder / "Dockerfile").read_text()
    assert dockerfile.index("COPY weights.pkl ./") < dockerfile.index("COPY server.py main.py ./")
    assert "app_files" not in (folder / "pyproject.toml").read_text()  # fal refuses it beside an image


def test_a_command_naming_a_module_that_is_not_there_says_the_cell_is_server_py(workdir):
    with pytest.raises(CaptureError, match=r"names the module `missing_api`.*written to server\.py.*`server:app`"):
        capture("app = object()\n", "web", cmd="uvicorn missing_api:app --port $PORT")
    assert not (workdir / "fal_apps").exists()


def test_packages_imported_while_the_cell_ran_are_inferred(workdir):
    project = capture(
        "from fastapi import FastAPI\napp = FastAPI()\n", "forms", imported=["fastapi", "numpy", "json", "IPython"]
    )
    assert any(r.startswith("numpy==") for r in project.requirements)
    assert ("`numpy` was imported while the cell ran" in dict(project.inferred).values()) or any(
        "numpy" in w for w in dict(project.inferred).values()
    )
    assert not any(r.lower().startswith(("ipython", "json")) for r in project.requirements)


def test_fastapi_forms_bring_python_multipart_through_the_magic(shell, workdir):
    cell = textwrap.dedent(
        """
        from fastapi import FastAPI, File, UploadFile
        app = FastAPI()

        @app.post("/files/")
        async def upload(file: UploadFile = File(...)) -> dict:
            return {"name": file.filename}
        """
    )
    project = shell.run("%%fal_app upload\n" + cell).value
    assert any(r.startswith("python-multipart==") for r in project.requirements)


def test_a_file_the_app_reads_goes_into_an_app_projects_app_files(workdir):
    (workdir / "labels.txt").write_text("cat\ndog\n")
    cell = textwrap.dedent(
        """
        import fal

        class Labels(fal.App):
            def setup(self):
                self.labels = open("labels.txt").read().split()

            @fal.endpoint("/")
            def run(self) -> dict:
                return {"labels": self.labels}
        """
    )
    project = capture(cell)
    assert (
        project.config.app_files == ["labels.txt"] and 'app_files = ["labels.txt"]' in project.files["pyproject.toml"]
    )
    assert (project.path / "labels.txt").read_text() == "cat\ndog\n"
    (workdir / "labels.txt").write_text("cat\n")
    assert capture(cell).changed == ["labels.txt"]  # the copy follows the notebook's file


def test_declared_app_files_must_exist(workdir):
    with pytest.raises(CaptureError, match="app_files 'model.bin': no such file"):
        capture("app = object()\n", "web", cmd="python -m http.server $PORT", app_files=["model.bin"])


def test_failure_hints_say_what_to_change():
    assert "written to server.py" in failure_hint('ERROR:    Error loading ASGI app. Could not import module "main".')
    multipart = failure_hint('RuntimeError: Form data requires "python-multipart" to be installed.')
    assert "--requirements python-multipart" in multipart
    missing = failure_hint("ModuleNotFoundError: No module named 'numpy'")
    assert "--requirements numpy==" in missing
    assert failure_hint("all fine") == ""
    assert plain("\x1b[31mERROR\x1b[0m: boom") == "ERROR: boom"
