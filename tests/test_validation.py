"""validation.py: values against the shapes of real schemas, 422 details, the minimal input."""

from __future__ import annotations

import pytest

from fal_notebook.schema import Shape, parse_openapi
from fal_notebook.validation import Invalid, issues_from_422, prune, same, validate, validate_object

from . import sample_apps


@pytest.fixture(scope="module")
def image_app():
    return parse_openapi(sample_apps.fal_document(sample_apps.ImageApp))


def test_validation_messages_name_the_fields(image_app):
    e = image_app.endpoint("/")
    issues = validate_object(
        e.fields,
        {
            "prompt": "",
            "steps": 0,
            "guidance": 20,
            "style": "oil",
            "seed": -1,
            "size": {"width": 10},
            "sizes": [{"height": "tall"}],
            "tags": "x",
            "image_size": "huge",
        },
    )
    assert dict(issues) == {
        ("prompt",): "is required",
        ("image_url",): "is required",
        ("style",): "must be one of 'photo', 'anime', 'sketch'",
        ("steps",): "must be at least 1",
        ("guidance",): "must be less than 20",
        ("seed",): "must be at least 0",
        ("image_size",): "must be one of 'square_hd', 'square', 'portrait_4_3', 'portrait_16_9', "
        "'landscape_4_3', 'landscape_16_9'",
        ("size", "width"): "must be at least 64",
        ("tags",): "must be a list",
        ("sizes", 0, "height"): "must be a whole number",
    }


def test_union_messages_follow_the_value_type(image_app):
    size = image_app.endpoint("/").field("image_size").shape
    assert validate(size, {"width": 0}) == [(("width",), "must be greater than 0")]
    assert validate(size, 5) == [((), "must be ImageSize or preset")]


def test_valid_input_has_no_issues(image_app):
    e = image_app.endpoint("/")
    assert (
        validate_object(
            e.fields,
            {"prompt": "p", "image_url": "https://x/y.png", "seed": None, "image_size": {"width": 100, "height": 100}},
        )
        == []
    )


def test_validation_of_strings_counts_and_invalid_markers():
    assert validate(Shape(kind="string", pattern="^[a-z]+$"), "Ab") == [((), "must match the pattern ^[a-z]+$")]
    assert validate(Shape(kind="string", max_length=2), "abc") == [((), "must be at most 2 characters (it has 3)")]
    assert validate(Shape(kind="array", min_items=1, items=Shape(kind="integer")), []) == [
        ((), "needs at least 1 item")
    ]
    assert validate(Shape(kind="number", multiple_of=0.5), 0.75) == [((), "must be a multiple of 0.5")]
    assert validate(Shape(kind="integer"), True) == [((), "must be a whole number")]
    assert validate(Shape(kind="boolean", enum=(True,)), 1) == [((), "must be one of true")]
    assert validate(Shape(), Invalid("{", "is not valid JSON")) == [((), "is not valid JSON")]
    assert validate(Shape(kind="string"), None) == [((), "is required (it cannot be null)")]


def test_issues_from_a_422_detail():
    detail = [
        {"loc": ["body", "prompt"], "msg": "Field required", "type": "missing"},
        {"loc": ["body", "sizes", 0, "width"], "msg": "Input should be greater than or equal to 64", "type": "x"},
        {"loc": ["query", "limit"], "msg": "bad", "type": "x"},
    ]
    assert issues_from_422(detail) == [
        (("prompt",), "Field required"),
        (("sizes", 0, "width"), "Input should be greater than or equal to 64"),
        (("limit",), "bad"),
    ]
    assert issues_from_422("Internal Server Error") == [((), "Internal Server Error")]


# -- the minimal input ----------------------------------------------------------------------------


def test_prune_drops_optional_values_equal_to_their_default(image_app):
    form = image_app.endpoint("/").form
    values = {
        "prompt": "p",
        "image_url": "u",
        "negative_prompt": "",
        "steps": 20,
        "guidance": 7.5,
        "size": {"width": 512, "height": 512},
        "sizes": [{"width": 100, "height": 512}],
        "tags": [],
        "image_size": "square_hd",
        "style": "anime",
    }
    assert prune(form, values) == {"prompt": "p", "image_url": "u", "sizes": [{"width": 100}], "style": "anime"}
    assert prune(form, {"size": {"width": 600, "height": 512}}) == {"size": {"width": 600}}


def test_same_is_json_equality():
    assert same(1, 1.0) and same({"a": [1]}, {"a": [1.0]})
    assert not same(True, 1) and not same(0, False) and not same("1", 1)
