"""Names a cell uses but does not define: resolved from the kernel or from the notebook's text."""

import subprocess
import sys

import nbformat
import pytest

from fal_notebook import export_notebook
from fal_notebook.capture.closure import NotebookResolver, closure, free_names
from fal_notebook.errors import CaptureError

MODELS = """
from pydantic import BaseModel

class Input(BaseModel):
    text: str

def shout(text):
    return text.upper() + SUFFIX
"""

APP = """
import fal

class Shouter(fal.App):
    @fal.endpoint("/")
    def run(self, inp: Input) -> dict:
        return {"out": shout(inp.text)}
"""


def test_free_names_follow_python_scoping():
    src = (
        "import os\nX = 1\nclass A(Base):\n    y: T = Z\n    def m(self, a):\n        global G\n        G = 2\n"
        "        return [q for q in a if q > LIMIT] + [os, X, len]\n"
    )
    assert free_names(src) == {"Base", "T", "Z", "LIMIT"}


def test_kernel_classes_and_functions_from_earlier_cells(shell, workdir):
    assert shell.run(MODELS).success
    assert shell.run("SUFFIX = '!'").success
    result = shell.run("%%fal_app shouter\n" + APP)
    assert result.success, result.error_in_exec
    source = (result.value.path / "app.py").read_text()
    assert source.index("from pydantic import BaseModel") < source.index("class Input(BaseModel):")
    assert source.index("SUFFIX = '!'") < source.index("class Shouter")
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import runpy; ns = runpy.run_path('app.py'); "
            "print(ns['Shouter'](_allow_init=True).run(ns['Input'](text='hi')))",
        ],
        cwd=result.value.path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout.strip() == "{'out': 'HI!'}", done.stderr


def test_latest_definition_wins(shell):
    shell.run("def shout(text):\n    return 'old'\n")
    shell.run("def shout(text):\n    return text.upper()\n")
    shell.run("SUFFIX = ''\nfrom pydantic import BaseModel\nclass Input(BaseModel):\n    text: str\n")
    source = (shell.run("%%fal_app shouter\n" + APP).value.path / "app.py").read_text()
    assert "return text.upper()" in source and "'old'" not in source


def test_static_resolution_reports_computed_values():
    resolver = NotebookResolver([("cell 2", "import pandas as pd\ndf = pd.read_csv('x.csv')\n")])
    with pytest.raises(
        CaptureError, match=r"`df` is computed in cell 2 \(line 2: `df = pd.read_csv\('x.csv'\)`\).*setup\(\)"
    ):
        closure("x = df.mean()\napp = object()\n", resolver)


def test_static_resolution_orders_dependencies_and_hoists_imports():
    cells = [
        ("cell 1", "import numpy as np\nfrom math import pi\nSCALE = 2\n"),
        ("cell 2", "%matplotlib inline\ndef area(r):\n    return pi * r * r * SCALE\n"),
    ]
    defs = closure("def f():\n    return area(1), np.zeros(1)\n", NotebookResolver(cells))
    assert [d.code for d in defs] == [
        "from math import pi",
        "import numpy as np",
        "SCALE = 2",
        "def area(r):\n    return pi * r * r * SCALE",
    ]


def test_export_notebook_without_a_kernel(workdir):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# demo"),
        nbformat.v4.new_code_cell("%load_ext fal_notebook"),
        nbformat.v4.new_code_cell(MODELS + "\nSUFFIX = '?'\n"),
        nbformat.v4.new_code_cell("%%fal_app shouter --keep-alive 30\n" + APP),
        nbformat.v4.new_code_cell("%%fal_app hello --port 9000\nfrom fastapi import FastAPI\napp = FastAPI()\n"),
    ]
    nbformat.write(nb, workdir / "demo.ipynb")
    projects = export_notebook(workdir / "demo.ipynb", out_dir=workdir / "out")
    assert [p.name for p in projects] == ["shouter", "hello"]
    assert (workdir / "out" / "shouter" / "app.py").is_file()
    assert "SUFFIX = '?'" in (workdir / "out" / "shouter" / "app.py").read_text()
    assert projects[0].config.keep_alive == 30 and projects[1].config.exposed_port == 9000


def test_export_reports_every_failing_cell_and_writes_the_rest(workdir):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%%fal_app broken\nimport fal\nclass A(fal.App):\n    x = missing\n"),
        nbformat.v4.new_code_cell("%%fal_app fine --port 9000\nfrom fastapi import FastAPI\napp = FastAPI()\n"),
    ]
    nbformat.write(nb, workdir / "nb.ipynb")
    with pytest.raises(CaptureError) as failed:
        export_notebook(workdir / "nb.ipynb", out_dir=workdir / "out")
    message = str(failed.value)
    assert message.startswith("1 %%fal_app cell could not be captured: ")
    assert "`missing` is used in line 3 of cell 1 of nb.ipynb (app broken)" in message
    assert message.endswith("The other apps were captured: fine.") and "Written" not in message
    assert [p.name for p in failed.value.captured] == ["fine"]
    assert (workdir / "out" / "fine" / "server.py").is_file() and not (workdir / "out" / "broken").exists()


def test_cli_export_of_the_quickstart(workdir):
    from pathlib import Path

    quickstart = Path(__file__).resolve().parents[2] / "notebooks" / "quickstart.ipynb"
    done = subprocess.run(
        [sys.executable, "-m", "fal_notebook.cli", "export", str(quickstart), "--out", str(workdir / "x")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (workdir / "x").iterdir()) == ["hello-server", "text-stats"]
    assert "Captured text-stats" in done.stdout


def test_annotations_are_resolved_even_when_postponed(shell):
    shell.run("from pydantic import BaseModel\nclass Input(BaseModel):\n    text: str\n")
    cell = (
        "from __future__ import annotations\nimport fal\n\nclass A(fal.App):\n"
        '    @fal.endpoint("/")\n    def run(self, inp: Input) -> "Input":\n        return inp\n'
    )
    project = shell.run("%%fal_app ann\n" + cell).value
    source = (project.path / "app.py").read_text()
    assert source.startswith("# Generated") and "\nfrom __future__ import annotations\n" in source
    assert source.index("from __future__") < source.index("class Input(BaseModel)")
    compile(source, "app.py", "exec")
