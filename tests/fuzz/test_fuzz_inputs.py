"""The doors that let 55 raw crashes through (issue 20, item 8), fuzzed: malformed notebooks,
hand-edited project files, webhook URLs and cells whose kernel objects run hostile code. Only the
package's own errors come out; nothing is written outside the notebook's folder; FAL_KEY's value is
in no message. (Query values are fuzzed against the real gateway in test_fuzz_gateway.py.)"""

from __future__ import annotations

import json
import shutil

import httpx
import pytest
from hypothesis import given, strategies as st

from fal_notebook import capture, export_notebook
from fal_notebook.backends import list_apps
from fal_notebook.errors import FalNotebookError
from fal_notebook.gateway.webhooks import check_url, shown
from fal_notebook.generate.project import AppProject, reconfigure
from fal_notebook.state import resolve_project
from tests.bad_files import MALFORMED_NOTEBOOKS, SERVER_CELL

from .conftest import SECRET, check_capture, fuzz_settings, no_hang

SERVER = SERVER_CELL.split("\n", 1)[1]
json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.sampled_from(["\ud800", "²", "1" * 5000, "../../outside", "a\x00b", SECRET]),
)
json_any = st.recursive(
    json_leaf,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=20,
)


# -- malformed notebooks -----------------------------------------------------------------------------
sources = st.one_of(
    st.text(max_size=60),
    st.lists(st.text(max_size=30), max_size=4),
    st.sampled_from([SERVER_CELL, SERVER_CELL + "# \ud800\n", "%%fal_app\n", "%%fal_app x --dir " + "d" * 300 + "\n"]),
    json_any,
)
cells = st.fixed_dictionaries(
    {"cell_type": st.one_of(st.sampled_from(["code", "markdown", "raw"]), json_any), "source": sources},
    optional={"metadata": json_any, "outputs": json_any, "id": json_any},
)
notebooks = st.fixed_dictionaries(
    {
        "cells": st.one_of(st.lists(st.one_of(cells, json_any), max_size=4), json_any),
        "nbformat": st.one_of(st.just(4), json_any),
    },
    optional={"metadata": json_any, "nbformat_minor": json_any},
)
notebook_texts = st.one_of(
    notebooks.map(json.dumps),
    json_any.map(json.dumps),
    st.text(max_size=200),
    st.sampled_from(sorted(MALFORMED_NOTEBOOKS.values())),
    notebooks.map(json.dumps).map(lambda text: text[: len(text) // 2]),  # cut short
)


@fuzz_settings(ci_examples=60)
@given(text=notebook_texts)
def test_export_of_malformed_notebooks(place, text):
    notebook = place / "nb" / "nb.ipynb"
    notebook.write_text(text, encoding="utf-8", errors="surrogatepass")
    check_capture(place, lambda: export_notebook(notebook, out_dir=place / "nb" / "fal_apps"))


# -- hand-edited project files ------------------------------------------------------------------------
TOML_LINES = [
    "keep_alive = 'x'",
    "keep_alive = 99999999999999999999999",
    "keep_alive = 1979-05-27",
    "keep_alive = nan",
    "exposed_port = 1",
    "secrets = 5",
    "machine_type = [1, {a = 1}]",
    "health_check = 5",
    "[tool.fal.apps.web.health_check]",
    "path = 5",
    "[tool]",
    "tool = 1",
    "fal = 'x'",
    "[tool.fal.apps]",
    "web = 5",
    "ref = 5",
    "image = {dockerfile = 5}",
    'base_image = "\\uD800"',
    "requirements = " + "[" * 200 + "]" * 200,
    "[[[",
    "name = 'other'",
    "cmd = 'touch /tmp/fuzz-pwned'",
]


@st.composite
def edited_manifest(draw, text: str) -> str:
    """The manifest's text with a part replaced, dropped or cut short, or other JSON altogether."""
    kind = draw(st.sampled_from(["replace", "drop", "cut", "other"]))
    if kind == "cut":
        return text[: draw(st.integers(0, len(text)))]
    if kind == "other":
        return json.dumps(draw(json_any))
    data = json.loads(text)
    node = data
    path = draw(
        st.lists(
            st.sampled_from(["config", "files", "requirements", "toml", "name", "mode", "server.py"]),
            min_size=1,
            max_size=2,
        )
    )
    for key in path[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, dict):
        if kind == "drop":
            node.pop(path[-1], None)
        else:
            node[path[-1]] = draw(json_any)
    return json.dumps(data)


@st.composite
def edited_pyproject(draw, text: str) -> str:
    """pyproject.toml with lines inserted, deleted or replaced by odd TOML (or not TOML)."""
    lines = text.split("\n")
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(lines)))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        new = draw(st.one_of(st.sampled_from(TOML_LINES), st.text(max_size=20)))
        if op == "insert" or not lines or at == len(lines):
            lines.insert(at, new)
        elif op == "delete":
            del lines[at]
        else:
            lines[at] = new
    return "\n".join(lines)


@fuzz_settings(ci_examples=60)
@given(data=st.data())
def test_hand_edited_project_files(place, data):
    shutil.rmtree(place / "nb" / "fal_apps", ignore_errors=True)  # each example edits a fresh project
    with no_hang(60):
        project = capture(SERVER, "web", port=9000)
    manifest, pyproject = project.path / ".fal-notebook.json", project.path / "pyproject.toml"
    if data.draw(st.booleans(), label="edit the manifest"):
        manifest.write_text(data.draw(edited_manifest(manifest.read_text()), label="manifest"), errors="surrogatepass")
    if data.draw(st.booleans(), label="edit pyproject.toml"):
        pyproject.write_text(
            data.draw(edited_pyproject(pyproject.read_text()), label="pyproject"), errors="surrogatepass"
        )
    for call in (
        lambda: AppProject.load(resolve_project("web")),  # what a deploy (CLI, magic, gateway) reads
        lambda: reconfigure(project.path, {"keep_alive": 5}),  # the panel's form
        list_apps,  # the panel's list, `fal-notebook apps`
        lambda: capture(SERVER + "# again\n", "web", port=9000),
    ):
        check_capture(place, call)


# -- webhook URLs -------------------------------------------------------------------------------------
hosts = st.one_of(
    st.sampled_from(
        ["127.0.0.1", "localhost", "[::1]", "[::1", "::1", "", "☃☃.invalid", "xn--zz", "a..b", "h o", "%41"]
    ),
    st.text(max_size=12),
)
ports = st.one_of(st.none(), st.integers(-5, 100_000).map(str), st.sampled_from(["", "x", "²", "1" * 50, "0"]))
urls = st.one_of(
    st.builds(
        lambda scheme, host, port, path: f"{scheme}://{host}{'' if port is None else ':' + port}{path}",
        st.sampled_from(["http", "https", "ftp", "HTTP", "", "javascript"]),
        hosts,
        ports,
        st.one_of(st.just("/hook"), st.text(max_size=10)),
    ),
    st.text(max_size=60),
)


@fuzz_settings(ci_examples=200)
@given(url=urls)
def test_webhook_urls_are_taken_only_when_they_can_be_sent_to(url):
    """``check_url`` never raises, and a URL it takes is one the gateway's client can post to."""
    refused = check_url(url)
    shown(url)  # what the log shows of it
    if refused is None:
        request = httpx.Request("POST", url)
        assert request.url.scheme in ("http", "https") and request.url.host
        assert request.url.port is None or 0 < request.url.port < 65536
    else:
        assert SECRET not in refused


# -- cells whose kernel objects run hostile code ----------------------------------------------------
class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text either")


ERRORS = [RuntimeError, ValueError, TypeError, KeyError, AttributeError, RecursionError, OSError, ZeroDivisionError]
ERRORS += [NotImplementedError, SystemError, Unprintable]
CLASS_DUNDERS = ["__getattribute__", "__getattr__", "__instancecheck__", "__subclasscheck__", "__repr__", "__eq__"]
CLASS_DUNDERS += ["__hash__", "__bool__", "__len__", "__iter__", "__dir__", "__call__"]
PROPERTIES = ["__module__", "__name__", "__doc__", "__wrapped__", "__signature__", "__file__"]


def hostile_class(
    base: type,
    name: str,
    bases: tuple,
    body: dict,
    methods: list[str],
    props: list[str],
    error: type,
    *,
    instance=False,
):
    """A class whose metaclass's ``methods`` and ``props`` raise ``error`` once the class is built (with
    ``instance``: an instance of it, made before)."""
    armed = False

    def raising(default):
        def method(*args, **kwargs):
            if armed:
                raise error("hostile")
            return default(*args, **kwargs)

        return method

    def plain(prop: str):
        """What ``cls.<prop>`` is without the property: the class's own value, else type's."""

        def get(cls):
            own = type.__getattribute__(cls, "__dict__")
            if prop in own:
                return own[prop]
            descriptor = type.__dict__.get(prop)
            return descriptor.__get__(cls, type(cls)) if descriptor is not None else None

        return get

    namespace = {m: raising(getattr(base, m, lambda *a, **k: None)) for m in methods}
    namespace.update({prop: property(raising(plain(prop))) for prop in props})
    built = type(f"Hostile{name}", (base,), namespace)(name, bases, body)
    made = built() if instance else built
    armed = True
    return made


@st.composite
def hostile_cell(draw):
    import fal

    methods = draw(st.lists(st.sampled_from(CLASS_DUNDERS), max_size=3, unique=True))
    props = draw(st.lists(st.sampled_from(PROPERTIES), max_size=2, unique=True))
    error = draw(st.sampled_from(ERRORS))
    role = draw(st.sampled_from(["helper", "instance", "entry", "app class", "history"]))
    if role == "app class":
        live = hostile_class(type(fal.App), "Thing", (fal.App,), {"keep_alive": 300}, methods, props, error)
        return "import fal\n\nclass Thing(fal.App):\n    keep_alive = 100 + 200\n", {"Thing": live, "fal": fal}, {}
    thing = hostile_class(type, "Thing", (), {}, methods, props, error, instance=role == "instance")
    if role == "entry":
        return "app = app\n", {"app": thing}, {"port": 9000}
    if role == "history":
        return SERVER + "x = helper\n", {"_ih": thing, "In": thing, "helper": 1}, {"port": 9000}
    return SERVER + "thing = Thing\n", {"Thing": thing}, {"port": 9000}


@fuzz_settings(ci_examples=60)
@given(cell=hostile_cell())
def test_capture_of_cells_with_hostile_objects(place, cell):
    source, namespace, options = cell
    check_capture(place, lambda: capture(source, "thing", namespace=namespace, **options))


def test_an_error_whose_own_text_raises_is_still_a_capture_error(place):
    thing = hostile_class(type, "Thing", (), {}, ["__getattribute__"], [], Unprintable)
    with pytest.raises(FalNotebookError, match="Unprintable"):
        capture(SERVER + "thing = Thing\n", "thing", namespace={"Thing": thing}, port=9000)
