"""Servers that do not speak fal's protocol, through the real gateway: paths exactly as declared (a
trailing slash kept), GET routes, forms and uploads, by the client, the CLI and the Playground."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from fal_notebook import connect
from fal_notebook.errors import ConfigError, RequestError
from fal_notebook.widgets.fields import named_data_uri
from fal_notebook.widgets.playground import Playground

ITEMS = """
from fastapi import FastAPI, File, Form, UploadFile
from pydantic import BaseModel


class Item(BaseModel):
    name: str
    price: float


app = FastAPI()


@app.post("/items/")
def create_item(item: Item) -> Item:
    return item


@app.get("/search")
def search(q: str, limit: int = 2) -> dict:
    return {"q": q, "limit": limit}


@app.post("/files/")
async def upload(file: UploadFile = File(...), note: str = Form("")) -> dict:
    return {"filename": file.filename, "size": len(await file.read()), "note": note}
"""

GET_ONLY = """
from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route


async def home(request):
    return PlainTextResponse("ok")


async def greet(request):
    return JSONResponse({"hello": request.query_params.get("name", "world"), "method": request.method})


app = Starlette(routes=[Route("/", home), Route("/greet", greet, methods=["GET", "DELETE"])])
"""


@pytest.fixture(scope="module")
def apps(gateway):
    gateway.deploy(ITEMS, "items", auth="public")
    gateway.deploy(GET_ONLY, "get-only")
    return gateway


def cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "fal_notebook.cli", "call", *args], capture_output=True, text=True, timeout=120,
        env=dict(os.environ),
    )  # fmt: skip


def test_a_trailing_slash_is_kept_by_the_client_and_a_redirect_says_where(apps):
    client = connect("local/items")
    assert client.run({"name": "Foo", "price": 2.5}, path="/items/") == {"name": "Foo", "price": 2.5}
    assert connect("local/items/items/").run({"name": "Bar", "price": 1}) == {"name": "Bar", "price": 1.0}
    handle = client.submit({"name": "Baz", "price": 3}, path="/items/")
    assert handle.result() == {"name": "Baz", "price": 3.0}
    with pytest.raises(RequestError, match=r"redirect \(307\) to the path '/items/'. Call the path it names"):
        client.run({"name": "Foo", "price": 2.5}, path="/items")


def test_plain_requests_get_forms_and_uploads(apps):
    client = connect("local/items")
    assert client.request("GET", "/search", params={"q": "fox"}).json() == {"q": "fox", "limit": 2}
    answer = client.request("POST", "/files/", data={"note": "hi"}, files={"file": ("a.txt", b"hello", "text/plain")})
    assert answer.json() == {"filename": "a.txt", "size": 5, "note": "hi"}
    assert client.request("GET", "/nope").status_code == 404  # the app's own answer, whatever its status
    with pytest.raises(ConfigError, match="method 'FETCH'"):
        client.request("FETCH", "/")
    with pytest.raises(ConfigError, match="either a JSON body"):
        client.request("POST", "/files/", json={}, data={"a": "b"})
    get_only = connect("local/get-only")
    assert get_only.request("GET", "/").text == "ok"
    assert get_only.request("DELETE", "/greet", params="name=Ada").json() == {"hello": "Ada", "method": "DELETE"}


def test_the_cli_sends_any_method_query_form_and_file(apps, tmp_path):
    posted = cli("local/items", "--path", "/items/", "--input", '{"name": "Foo", "price": 1}')
    assert posted.returncode == 0 and json.loads(posted.stdout) == {"name": "Foo", "price": 1.0}
    got = cli("local/get-only", "--method", "get", "--path", "/greet", "--query", "name=Ada")
    assert json.loads(got.stdout) == {"hello": "Ada", "method": "GET"}
    assert cli("local/get-only", "--method", "GET").stdout == "ok\n"
    (tmp_path / "a.txt").write_text("hello")
    sent = cli("local/items", "--path", "/files/", "--file", f"file={tmp_path / 'a.txt'}", "--form", "note=n")
    assert json.loads(sent.stdout) == {"filename": "a.txt", "size": 5, "note": "n"}
    missing = cli("local/get-only", "--method", "GET", "--path", "/nope")
    assert missing.returncode == 1 and "answered HTTP 404" in missing.stderr
    no_input = cli("local/get-only")
    assert no_input.returncode == 1 and "--method (GET, POST...)" in no_input.stderr
    bad = cli("local/get-only", "--method", "GET", "--query", "noequals")
    assert bad.returncode == 1 and "write NAME=VALUE" in bad.stderr


def test_a_server_without_a_schema_gets_the_request_form(apps):
    pg = Playground("local/get-only")
    assert [e.path for e in pg.schema.endpoints] == ["*"] and "no OpenAPI schema" in pg.schema_note
    assert "no OpenAPI schema" in pg._message.value
    pg.set_values({"method": "GET", "path": "/greet", "query": "name=Ada"})
    assert pg.submit().result(timeout=60) == {"hello": "Ada", "method": "GET"}
    assert pg.history[-1].endpoint == "*" and pg.history[-1].status == "COMPLETED"
    assert "httpx.request(" in pg.code("Python") and "/local/get-only/greet?query=" not in pg.code("Python")
    assert "greet?name=Ada" in pg.code("cURL") and "-X GET" in pg.code("cURL")
    pg.set_values({"method": "GET", "path": "/nope"}, reset=True)
    with pytest.raises(Exception, match="answered HTTP 404"):
        pg.submit().result(timeout=60)
    assert pg.history[-1].status == "FAILED"
    pg.close()


def test_schema_get_routes_and_uploads_are_typed_forms(apps):
    pg = Playground("local/items")
    assert [(e.path, e.method) for e in pg.schema.endpoints] == [
        ("/items/", "POST"), ("/search", "GET"), ("/files/", "POST"), ("*", "")
    ]  # fmt: skip
    pg.select("/search")
    pg.set_values({"q": "fox", "limit": 5})
    assert pg.submit().result(timeout=60) == {"q": "fox", "limit": 5}
    pg.select("/files/")
    assert pg.fields["file"].control.media == "file"
    pg.set_values({"file": named_data_uri(b"hello", "text/plain", "notes.txt"), "note": "n"})
    assert pg.submit().result(timeout=60) == {"filename": "notes.txt", "size": 5, "note": "n"}
    assert 'files=[("file", open("notes.txt", \'rb\'))]' in pg.code("Python")
    assert "-F 'file=@notes.txt'" in pg.code("cURL")
    pg.select("/items/")
    pg.set_values({"name": "Foo", "price": 2})
    assert pg.submit().result(timeout=60) == {"name": "Foo", "price": 2.0}
    pg.close()
