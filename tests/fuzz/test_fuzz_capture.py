"""Capture over generated and mutated cells: only the package's own errors, nothing written outside
the notebook's folder, no hang, and FAL_KEY's value in no file and no message."""

from __future__ import annotations

import math
import shlex
import types

import nbformat
from hypothesis import given, strategies as st

from fal_notebook import capture, export_notebook
from fal_notebook.capture.classify import CLASS_CONFIG_KEYS

from .conftest import SECRET, check_capture, fuzz_settings

NAMES = ["In", "Out", "_ih", "_", "get_ipython", "exit", "app", "fal", "X", "helper", "Input", "os", "print", "self"]

# -- literal source text: sane, odd and hostile ----------------------------------------------------
ODD_LITERALS = [
    "10**5000",
    "1" * 4400,
    "float('inf')",
    "{[1]: 2}",
    "{{1}}",
    "-0.0",
    "1e400",
    repr(SECRET),
    repr("evil\nRUN curl x"),
    repr("../../outside"),
    "b'\\x00'",
    "[" * 40 + "]" * 40,
    "None",
    "...",
    "lambda: 1",
    "os.environ['FAL_KEY']",
]
scalar_text = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(repr),
    st.floats(allow_nan=True).map(repr),
    st.text(max_size=20).map(repr),
    st.booleans().map(repr),
    st.sampled_from(ODD_LITERALS),
)
literal_text = st.recursive(
    scalar_text,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.lists(inner, max_size=3).map(lambda xs: "(" + "".join(x + ", " for x in xs) + ")"),
        st.lists(st.tuples(scalar_text, inner), max_size=3).map(
            lambda kv: "{" + ", ".join(f"{k}: {v}" for k, v in kv) + "}"
        ),
    ),
    max_leaves=8,
)
name = st.one_of(st.sampled_from(NAMES), st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True))


@st.composite
def helper_cell(draw) -> str:
    lines = [draw(st.sampled_from(["import os", "import fal", "from pydantic import BaseModel", ""]))]
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["constant", "function", "model", "computed"]))
        n = draw(name)
        if kind == "constant":
            lines.append(f"{n} = {draw(literal_text)}")
        elif kind == "function":
            lines.append(f"def {n}(x=None):\n    return {draw(literal_text)}")
        elif kind == "model":
            lines.append(f"class {n}(BaseModel):\n    x: int = 1")
        else:
            lines.append(f"{n} = len([1, 2])")
    return "\n".join(lines)


@st.composite
def app_cell(draw) -> str:
    cls = draw(st.sampled_from(["Demo", "In", "App", "X"]))
    attrs = [
        f"    {draw(st.sampled_from(sorted(CLASS_CONFIG_KEYS)))} = {draw(literal_text)}"
        for _ in range(draw(st.integers(0, 3)))
    ]
    used = draw(name)
    kwargs = draw(
        st.sampled_from(["", ", keep_alive=60", ", keep_alive=10**5000", ", name='x y'", ", max_concurrency=-1"])
    )
    return (
        "import fal\nfrom pydantic import BaseModel\n\n"
        f"class {cls}(fal.App{kwargs}):\n" + "\n".join(attrs) + "\n"
        "    @fal.endpoint('/')\n"
        f"    def run(self) -> dict:\n        return {{'x': {used}}}\n"
    )


SERVER_CELLS = [
    "from fastapi import FastAPI\n\napp = FastAPI()\n",
    "from flask import Flask\n\napp = Flask(__name__)\n",
    "x = 1\n",
    "",
]
DIRS = ["../outside/p", "{outside}/p", "sub/../../outside/p", ".", "..", "fal_apps/../..", "a\\x00b", "p" * 300, "ok/p"]
FLAGS = {
    "--port": st.one_of(st.integers(-5, 70000).map(str), st.just("1" * 5000), st.just("x")),
    "--keep-alive": st.one_of(st.integers(-(2**40), 2**40).map(str), st.just("1" * 5000)),
    "--max-concurrency": st.integers(-3, 2**33).map(str),
    "--machine-type": st.sampled_from(["GPU-H100", "XS", "gpu", "", "M\nRUN x"]),
    "--requirements": st.sampled_from(["numpy", "numpy==1.0 x>=2", "-r /etc/passwd", "a\nb", "==", "fal"]),
    "--base-image": st.sampled_from(["python:3.11-slim", "evil\nRUN curl x", "", "a b", "x" * 300]),
    "--mode": st.sampled_from(["app", "server", "other"]),
    "--cmd": st.sampled_from(["python -m http.server $PORT", "sleep 1", "", "echo '$PORT'"]),
    "--secret": st.sampled_from(["HF_TOKEN", "1BAD", "FAL_KEY", "a-b"]),
    "--auth": st.sampled_from(["private", "public", "nobody"]),
    "--class": st.sampled_from(["Demo", "In", "Nope", "1x"]),
    "--entry": st.sampled_from(["app", "x", "not valid"]),
    "--python-version": st.sampled_from(["3.11", "3.99", "2", "three"]),
    "--dir": st.sampled_from(DIRS),
}


@st.composite
def magic_line(draw, outside: str) -> str:
    words = ["%%fal_app"]
    if draw(st.booleans()):
        words.append(draw(st.sampled_from(["demo", "In", "UPPER", "x" * 70, "../x", "ok_name"])))
    for flag in draw(st.lists(st.sampled_from(sorted(FLAGS)), max_size=4, unique=True)):
        value = draw(FLAGS[flag]).replace("{outside}", outside).replace("\\x00", "\x00")
        words += [flag, shlex.quote(value) if draw(st.booleans()) else value]
    words += draw(st.lists(st.sampled_from(["--no-run", "--force", "--bogus", "'"]), max_size=2, unique=True))
    return " ".join(words)


@fuzz_settings(ci_examples=100)
@given(data=st.data())
def test_export_of_generated_cells(place, data):
    outside = str(place / "outside")
    body = data.draw(st.one_of(app_cell(), st.sampled_from(SERVER_CELLS)), label="body")
    cells = [data.draw(helper_cell(), label="helpers"), data.draw(magic_line(outside), label="line") + "\n" + body]
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, place / "nb" / "nb.ipynb")
    check_capture(place, lambda: export_notebook(place / "nb" / "nb.ipynb", out_dir=place / "nb" / "fal_apps"))


BASE_CELLS = [
    "import fal\nfrom pydantic import BaseModel, Field\n\n\n"
    "class Input(BaseModel):\n    text: str = Field(examples=['hi'])\n"
    "    top_k: int = Field(default=3, ge=1, le=20)\n\n\nclass TextStats(fal.App, keep_alive=60):\n"
    "    machine_type = 'GPU-H100'\n    requirements = ['numpy>=1.20']\n\n    @fal.endpoint('/')\n"
    "    def run(self, inp: Input) -> dict:\n        return {'n': len(tokenize(inp.text)), 'stop': STOP}\n",
    "from fastapi import FastAPI\n\napp = FastAPI()\n\n\n@app.get('/hello')\ndef hello(name: str = 'world'):\n"
    "    return {'greeting': f'hello {name}', 'limit': LIMIT}\n",
]
HELPERS = (
    "import re\nSTOP = {'the', 'a'}\nLIMIT = 3\n\ndef tokenize(text):\n    return re.findall(r'[a-z]+', text.lower())\n"
)
INSERTS = st.one_of(
    st.text(max_size=6),
    st.sampled_from(["%", "%%fal_app", "!ls", "\x00", "'''", "(", "]", ":", "\n    ", "\t", "In", "10**5000", "\\"]),
)


@st.composite
def mutated(draw, text: str) -> str:
    for _ in range(draw(st.integers(1, 4))):
        lines = text.split("\n")
        op = draw(st.sampled_from(["insert", "delete", "duplicate", "swap"]))
        i = draw(st.integers(0, max(len(lines) - 1, 0)))
        if op == "insert":
            pos = draw(st.integers(0, len(text)))
            text = text[:pos] + draw(INSERTS) + text[pos:]
            continue
        if op == "delete" and lines:
            del lines[i]
        elif op == "duplicate" and lines:
            lines.insert(i, lines[i])
        elif op == "swap" and len(lines) > 1:
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        text = "\n".join(lines)
    return text


@fuzz_settings(ci_examples=40)
@given(data=st.data())
def test_capture_of_mutated_cells(place, data):
    cell = data.draw(mutated(data.draw(st.sampled_from(BASE_CELLS))), label="cell")
    helpers = data.draw(st.one_of(st.just(HELPERS), mutated(HELPERS)), label="helpers")
    mode = {} if "fal.App" in cell else {"port": 9000}
    check_capture(place, lambda: capture(cell, "fuzz", notebook_cells=[("cell 1", helpers)], **mode))


def odd_value(draw_from):
    return draw_from(
        st.one_of(
            st.integers(),
            st.just(10**5000),
            st.floats(),
            st.just(math.nan),
            st.text(max_size=30),
            st.just(SECRET),
            st.just(["x"] * 3000),
            st.recursive(st.integers(), lambda c: st.lists(c, max_size=3), max_leaves=60),
            st.just(types),
            st.just(lambda: 1),
            st.just(object()),
            st.just(type("Local", (), {})),
            st.sets(st.integers(), max_size=4),
            st.binary(max_size=10),
        )
    )


@fuzz_settings(ci_examples=40)
@given(data=st.data())
def test_capture_with_odd_kernel_values(place, data):
    """A kernel namespace holding odd values for the names the cell uses (and for `In`/`_ih`)."""
    cell = data.draw(st.sampled_from(BASE_CELLS), label="cell")
    namespace = {n: odd_value(data.draw) for n in ("STOP", "tokenize", "LIMIT", "In", "_ih", "Input")}
    namespace.update(fal=__import__("fal"))
    mode = {} if "fal.App" in cell else {"port": 9000}
    check_capture(place, lambda: capture(cell, "fuzz", namespace=namespace, **mode))
