"""The schema mapper and the Playground over generated OpenAPI documents (a server-mode app serves
its own, so they are input from outside): a form or the package's SchemaError, never a crash."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, reject
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis_jsonschema import from_schema

from fal_notebook.errors import FalNotebookError
from fal_notebook.schema import SchemaError, parse_openapi
from fal_notebook.validation import validate
from fal_notebook.widgets.fields import ObjectControl
from fal_notebook.widgets.playground import Playground

from ..widgets.fake_client import FakeClient
from .conftest import fuzz_settings, no_hang

REFS = ["#/components/schemas/A", "#/components/schemas/B", "#/components/schemas/C", "#/nowhere", "#", "x"]
TYPES = ["string", "integer", "number", "boolean", "array", "object", "null"]

json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),  # json.loads reads NaN and Infinity too
    st.text(max_size=12),
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=10,
)
number = st.one_of(
    st.integers(min_value=-(2**60), max_value=2**60),
    st.floats(),
    st.sampled_from([0, 1, -1, 2**53, 2**53 + 1, math.inf, -math.inf, 1e308]),
    json_scalar,
)
count = st.one_of(st.integers(min_value=-2, max_value=2**40), json_scalar)
KEYWORD_VALUES = {
    "type": st.one_of(st.sampled_from(TYPES), st.lists(st.sampled_from(TYPES), max_size=3), json_scalar),
    "minimum": number,
    "maximum": number,
    "exclusiveMinimum": number,
    "exclusiveMaximum": number,
    "multipleOf": number,
    "minLength": count,
    "maxLength": count,
    "minItems": count,
    "maxItems": count,
    "pattern": st.sampled_from(["^a", "(", "[a-z]+", "\\p{L}", "a{2,1}", ""]),
    "enum": st.one_of(st.lists(json_value, max_size=4), json_scalar),
    "const": json_value,
    "default": json_value,
    "example": json_value,
    "examples": st.one_of(st.lists(json_value, max_size=3), json_value),
    "title": json_value,
    "description": json_value,
    "format": st.sampled_from(["uri", "textarea", "binary", "date-time", ""]) | json_scalar,
    "nullable": json_scalar,
    "ui": st.one_of(
        st.fixed_dictionaries(
            {}, optional={"field": st.sampled_from(["image", "audio", "video", "file", "x"]), "hidden": json_scalar}
        ),
        st.fixed_dictionaries({}, optional={"important": json_scalar}),
        json_scalar,
    ),
    "x-fal": st.one_of(st.dictionaries(st.text(max_size=5), json_value, max_size=2), json_scalar),
    "required": st.one_of(st.lists(st.sampled_from(["a", "b", "c", "d"]), max_size=3), json_scalar),
    "x-fal-order-properties": st.one_of(st.lists(st.sampled_from(["a", "b", "c"]), max_size=3), json_scalar),
}
keywords = st.dictionaries(st.sampled_from(sorted(KEYWORD_VALUES)), st.none(), max_size=5).flatmap(
    lambda chosen: st.fixed_dictionaries({k: KEYWORD_VALUES[k] for k in chosen})
)


def containers(inner):
    return st.one_of(
        st.tuples(keywords, st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), inner, max_size=4)).map(
            lambda kp: {**kp[0], "type": "object", "properties": kp[1]}
        ),
        st.tuples(keywords, inner).map(lambda ki: {**ki[0], "type": "array", "items": ki[1]}),
        st.tuples(st.sampled_from(["allOf", "anyOf", "oneOf"]), st.lists(inner, max_size=3), keywords).map(
            lambda t: {**t[2], t[0]: t[1]}
        ),
        st.tuples(st.sampled_from(REFS), keywords).map(lambda rk: {**rk[1], "$ref": rk[0]}),
    )


schemas = st.recursive(
    st.one_of(keywords, st.booleans(), st.sampled_from(REFS).map(lambda r: {"$ref": r})),
    containers,
    max_leaves=12,
)


@st.composite
def documents(draw) -> dict:
    operation = {"requestBody": {"content": {"application/json": {"schema": draw(schemas)}}}}
    if draw(st.booleans()):
        operation["parameters"] = draw(
            st.lists(
                st.one_of(
                    st.fixed_dictionaries(
                        {"name": st.sampled_from(["q", "limit"]), "in": st.just("query"), "schema": schemas}
                    ),
                    st.fixed_dictionaries({}, optional={"in": st.just("query"), "name": json_scalar}),
                    st.just({"$ref": "#/components/parameters/p"}),
                ),
                max_size=2,
            )
        )
    components = draw(st.dictionaries(st.sampled_from(["A", "B", "C"]), schemas, max_size=3))
    doc = {
        "openapi": "3.1.0",
        "info": draw(st.one_of(st.just({"title": "fuzz", "version": "1"}), json_value)),
        "paths": {"/": {"post": operation}},
        "components": {"schemas": components, "parameters": {"p": {"name": "p", "in": "query"}}},
    }
    if draw(st.booleans()):  # break the document's own structure somewhere
        where = draw(st.sampled_from(["paths", "post", "requestBody", "content", "x-fal-order-paths", "components"]))
        junk = draw(json_value)
        if where == "paths":
            doc["paths"]["/other"] = junk
        elif where == "post":
            doc["paths"]["/"]["post"] = junk
        elif where == "requestBody":
            operation["requestBody"] = junk
        elif where == "content":
            operation["requestBody"]["content"] = junk
        elif where == "components":
            doc["components"] = junk
        else:
            doc["x-fal-order-paths"] = junk
    return doc


def form_of(document):
    """parse_openapi → a form per endpoint, its values read and checked: the whole mapper."""
    schema = parse_openapi(document)
    for endpoint in schema.endpoints:
        form = ObjectControl(endpoint.form, lambda content, kind, name: "data:,", split=True)
        validate(endpoint.form, form.get())
        endpoint.request(form.get())
    return schema


@fuzz_settings(ci_examples=150)
@given(document=documents())
def test_generated_documents_give_a_form_or_a_schema_error(document):
    with no_hang(30):
        try:
            form_of(json.loads(json.dumps(document)))  # what a client reads off the wire
        except SchemaError:
            pass


@fuzz_settings(ci_examples=40)
@given(document=documents())
def test_the_playground_over_generated_documents(document, tmp_path_factory, monkeypatch):
    monkeypatch.setenv("FAL_NOTEBOOK_HOME", str(tmp_path_factory.mktemp("home")))
    with no_hang(30):
        try:
            playground = Playground(FakeClient(document, lambda path, args: {}))
        except FalNotebookError:
            return
        playground.arguments  # noqa: B018 - reading it runs the form, pruning and snippets


# -- values drawn from well-formed schemas (hypothesis-jsonschema) ----------------------------------
sane_number = st.one_of(st.integers(-1000, 1000), st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False))
sane_keywords = st.fixed_dictionaries(
    {"type": st.sampled_from(["string", "integer", "number", "boolean"])},
    optional={"minimum": sane_number, "maximum": sane_number, "minLength": st.integers(0, 5)},
)
sane_schemas = st.recursive(
    sane_keywords,
    lambda inner: st.one_of(
        inner.map(lambda i: {"type": "array", "items": i, "maxItems": 3}),
        st.lists(inner, min_size=2, max_size=3).map(lambda m: {"anyOf": m}),
    ),
    max_leaves=6,
)


@fuzz_settings(ci_examples=40)
@given(data=st.data())
def test_values_of_the_schema_go_into_the_form_or_are_refused_clearly(data):
    """A value valid for the field's schema (drawn by hypothesis-jsonschema) is shown by the form,
    or refused with a ValueError naming the field, never a crash."""
    field = data.draw(sane_schemas, label="field")
    document = {"paths": {"/": {"post": {"requestBody": {"content": {"application/json": {"schema": {
        "type": "object", "properties": {"v": field}, "required": ["v"]}}}}}}}}  # fmt: skip
    try:
        value = data.draw(from_schema(field), label="value")
    except InvalidArgument:  # an unsatisfiable schema (e.g. minimum above maximum) has no values
        reject()
    with no_hang(30):
        endpoint = form_of(document).endpoint("/")
        form = ObjectControl(endpoint.form, lambda content, kind, name: "data:,")
        try:
            form.set({"v": value})
        except ValueError as exc:
            assert str(exc).startswith("v:"), exc
            return
        validate(endpoint.form, form.get())


@pytest.mark.parametrize(
    "document",
    [
        {"paths": {"/": {"post": {"requestBody": {"content": {"application/json": {"schema": {"allOf": [True]}}}}}}}},
        {"paths": {"/": {"post": {"parameters": [{"in": "query"}]}}}},
        {"paths": {"/": {"post": {"requestBody": {"content": {"application/json": {"schema": "x"}}}}}}},
    ],
)
def test_known_odd_documents(document):
    try:
        form_of(document)
    except SchemaError as exc:
        assert "POST /" in str(exc)
