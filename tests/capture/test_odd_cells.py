"""Cells that used to crash capture inside the package (issue 12, item 6): each now captures or
ends with the package's own error naming the problem."""

import pytest

from fal_notebook import capture
from fal_notebook.errors import CaptureError, ConfigError

APP = """
import fal

class Demo(fal.App):
{body}
    @fal.endpoint("/")
    def run(self) -> dict:
        return {{}}
"""


def test_an_input_model_named_In_shadows_ipythons_history(shell, workdir):
    result = shell.run(
        "%%fal_app demo\nimport fal\nfrom pydantic import BaseModel\n\nclass In(BaseModel):\n    x: int = 1\n\n"
        "class Demo(fal.App):\n    @fal.endpoint('/')\n"
        "    def run(self, inp: In) -> dict:\n        return {'x': inp.x}\n"
    )
    assert result.success, result.error_in_exec
    assert "class In(BaseModel)" in (workdir / "fal_apps" / "demo" / "app.py").read_text()


def test_a_helper_model_named_In_from_an_earlier_cell(shell, workdir):
    assert shell.run("from pydantic import BaseModel\n\nclass In(BaseModel):\n    x: int = 1\n").success
    result = shell.run(
        "%%fal_app demo\nimport fal\n\nclass Demo(fal.App):\n    @fal.endpoint('/')\n"
        "    def run(self, inp: In) -> dict:\n        return {'x': inp.x}\n"
    )
    assert result.success, result.error_in_exec
    assert "class In(BaseModel)" in (workdir / "fal_apps" / "demo" / "app.py").read_text()


@pytest.mark.parametrize("run", [True, False])
def test_an_unhashable_literal_class_attribute(shell, workdir, run):
    cell = "%%fal_app demo" + ("" if run else " --no-run") + APP.format(body="    keep_alive = {[1]: 2}\n")
    result = shell.run(cell)
    if run:  # the cell itself fails in Python (its traceback is shown as usual): nothing is captured
        assert result.value is None
        assert not (workdir / "fal_apps").exists()
    else:
        assert result.success, result.error_in_exec
        assert "keep_alive is not a literal value" in repr(result.value)


def test_an_unhashable_literal_in_export(workdir):
    project = capture(APP.format(body="    keep_alive = {[1]: 2}\n"), "demo")
    assert any("keep_alive" in note for note in project.notes)


def test_a_constant_of_more_than_4300_digits(shell, workdir):
    assert shell.run("BIG = 10**5000").success
    result = shell.run(
        "%%fal_app demo\nimport fal\n\nclass Demo(fal.App):\n    @fal.endpoint('/')\n"
        "    def run(self) -> dict:\n        return {'n': BIG % 7}\n"
    )
    assert isinstance(result.error_in_exec, CaptureError)
    assert "`BIG`" in str(result.error_in_exec)
    assert not (workdir / "fal_apps").exists()


def test_a_literal_of_more_than_4300_digits_in_the_cell(workdir):
    with pytest.raises(CaptureError, match="line 2"):
        capture("import fal\nX = " + "1" * 5000 + "\n")


@pytest.mark.parametrize("where", ["flag", "class"])
def test_a_config_value_of_10_to_the_5000(shell, workdir, where):
    if where == "flag":
        with pytest.raises(ConfigError, match="keep_alive"):
            capture(APP.format(body=""), "demo", keep_alive=10**5000)
    else:
        result = shell.run("%%fal_app demo" + APP.format(body="    keep_alive = 10**5000\n"))
        assert isinstance(result.error_in_exec, ConfigError)
        assert "keep_alive" in str(result.error_in_exec)
    assert not (workdir / "fal_apps").exists()
