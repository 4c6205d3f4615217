"""schema.py against real OpenAPI documents (fal SDK, FastAPI) and hand-written edge cases."""

from __future__ import annotations

import copy

import pytest

from fal_notebook.schema import ANY_REQUEST, MISSING, SchemaError, parse_openapi, request_form

from . import sample_apps


@pytest.fixture(scope="module")
def image_app():
    return parse_openapi(sample_apps.fal_document(sample_apps.ImageApp))


@pytest.fixture(scope="module")
def file_app():
    return parse_openapi(sample_apps.fal_document(sample_apps.FileApp))


@pytest.fixture(scope="module")
def server():
    return parse_openapi(sample_apps.server.openapi())


@pytest.fixture(scope="module")
def legacy():
    return parse_openapi(sample_apps.OPENAPI_30)


# -- fal.App documents ----------------------------------------------------------------------------


def test_endpoints_follow_x_fal_order_paths_and_skip_health(image_app):
    assert image_app.paths == ["/", "/count"]


def test_fields_follow_field_orders_and_hidden_fields_are_left_out(image_app):
    names = [f.name for f in image_app.endpoint("/").fields]
    assert names[:2] == ["prompt", "image_url"]  # FIELD_ORDERS moved them before the declared order
    assert names == [
        "prompt",
        "image_url",
        "negative_prompt",
        "style",
        "steps",
        "guidance",
        "seed",
        "image_size",
        "size",
        "tags",
        "sizes",
        "enhance",
    ]
    assert "debug" not in names  # Hidden(Field(...)) → ui.hidden


def test_x_fal_order_properties_wins_over_document_order():
    doc = copy.deepcopy(sample_apps.OPENAPI_30)
    doc["components"]["schemas"]["Out"] = {
        "type": "object",
        "properties": {"a": {"type": "string"}, "b": {"type": "string"}, "c": {"type": "string"}},
        "x-fal-order-properties": ["c", "a"],
    }
    out = parse_openapi(doc).endpoint("/").output
    assert [f.name for f in out.fields] == ["c", "a", "b"]


def test_field_metadata(image_app):
    e = image_app.endpoint("/")
    prompt = e.field("prompt")
    assert prompt.required and prompt.label == "Prompt" and prompt.description == "What to draw."
    assert prompt.examples == ("a cat in a hat",) and prompt.initial == "a cat in a hat"
    assert (prompt.shape.min_length, prompt.shape.max_length) == (1, 500)
    assert prompt.shape.multiline  # prose name → long text
    steps = e.field("steps").shape
    assert steps.kind == "integer" and (steps.minimum, steps.maximum) == (1, 50) and steps.bounded
    assert e.field("steps").default == 20 and not e.field("steps").required
    guidance = e.field("guidance").shape
    assert (guidance.exclusive_minimum, guidance.exclusive_maximum, guidance.minimum) == (0, 20, None)
    assert e.field("style").shape.enum == ("photo", "anime", "sketch")
    assert e.field("enhance").important


def test_optional_is_nullable_with_constraints_kept(image_app):
    seed = image_app.endpoint("/").field("seed")
    assert seed.shape.kind == "integer" and seed.shape.nullable
    assert seed.shape.minimum == 0 and not seed.required


def test_image_input_by_ui_field_and_image_output(image_app):
    e = image_app.endpoint("/")
    assert e.field("image_url").shape.media == "image" and e.field("image_url").shape.kind == "string"
    images = e.output.field("images").shape
    assert images.kind == "array" and images.items.kind == "object" and images.items.media == "image"
    assert [f.name for f in images.items.fields][:2] == ["url", "content_type"]


def test_union_of_model_and_preset(image_app):
    size = image_app.endpoint("/").field("image_size")
    assert size.shape.kind == "union" and size.default == "square_hd"
    model, preset = size.shape.variants
    assert model.title == "ImageSize" and [f.name for f in model.fields] == ["width", "height"]
    assert "landscape_16_9" in preset.enum and preset.label() == "preset"


def test_nested_model_and_lists(image_app):
    e = image_app.endpoint("/")
    size = e.field("size")
    assert size.shape.kind == "object" and size.default == {"width": 512, "height": 512}
    assert size.label == "Size"  # the field's own title, not the model's
    assert e.field("tags").shape.items.kind == "string"
    sizes = e.field("sizes").shape
    assert sizes.items.kind == "object" and [f.name for f in sizes.items.fields] == ["width", "height"]


def test_query_parameter_endpoint(image_app):
    e = image_app.endpoint("count")
    assert [(f.name, f.location, f.required) for f in e.fields] == [
        ("text", "query", True),
        ("limit", "query", False),
        ("exact", "query", False),
    ]
    assert e.request({"text": "a b", "limit": 2, "exact": True}) == ("/count?text=a+b&limit=2&exact=true", {})


def test_file_inputs(file_app):
    e = file_app.endpoint("/")
    assert e.field("document_url").shape.media == "file"
    assert e.field("voice_url").shape.media == "audio"  # AudioField
    assert e.field("picture").shape.kind == "object" and e.field("picture").shape.media == "image"
    assert e.field("video").shape.media == "video" and e.field("video").shape.nullable
    assert e.field("reference_image_urls").shape.items.media == "image"  # *_image_urls convention
    assert e.field("language").shape.enum == ("en", "de", "fr") and e.field("language").shape.nullable
    assert e.output.field("thumbnail").shape.media == "image"


def test_unknown_endpoint_names_the_known_ones(image_app):
    with pytest.raises(SchemaError, match=r"no endpoint '/nope'.*/, /count"):
        image_app.endpoint("/nope")


# -- FastAPI --------------------------------------------------------------------------------------


def test_fastapi_server(server):
    assert server.title == "summarizer" and server.version == "2.0"
    # a GET route is a form of its query parameters; path-parameter routes go to the request form
    assert server.paths == ["/summarize", "/echo", "/status"]
    assert [e.method for e in server.endpoints] == ["POST", "POST", "GET"]
    e = server.endpoint("/summarize")
    assert e.summary == "Summarize a text"
    assert [f.name for f in e.fields] == ["text", "sentences", "language", "keywords"]
    assert e.field("text").shape.max_length == 10_000 and e.field("text").shape.multiline
    assert e.field("keywords").shape.max_items == 5
    assert [f.name for f in e.output.fields] == ["summary", "word_count"]


def test_free_form_body_is_one_json_field(server):
    (body,) = server.endpoint("/echo").fields
    assert body.name == "body" and body.location == "value" and body.shape.kind == "object" and not body.shape.fields
    assert server.endpoint("/echo").request({"body": {"a": 1}}) == ("/echo", {"a": 1})


# -- hand-written edge cases ----------------------------------------------------------------------


def test_openapi_30_nullable_exclusive_flag_and_example(legacy):
    e = legacy.endpoint("/")
    assert e.field("nickname").shape.nullable
    ratio = e.field("ratio").shape
    assert (ratio.exclusive_minimum, ratio.minimum, ratio.maximum) == (0, None, 1)
    assert e.field("name").initial == "ada" and e.field("name").shape.pattern == "^[a-z]+$"


def test_all_of_is_merged_and_ref_siblings_kept(legacy):
    point = legacy.endpoint("/").field("point")
    assert point.description == "Where." and point.required
    assert [(f.name, f.required, f.default) for f in point.shape.fields] == [("x", True, MISSING), ("y", False, 0)]


def test_const_union_is_an_enum_and_object_union_has_variants(legacy):
    e = legacy.endpoint("/")
    assert e.field("mode").shape.enum == ("fast", "slow") and e.field("mode").shape.kind == "string"
    assert [v.title for v in e.field("shape").shape.variants] == ["Circle", "Square"]
    assert e.field("level").shape.enum == (1, 2, 3) and e.field("level").shape.kind == "integer"


def test_nested_lists_of_objects(legacy):
    e = legacy.endpoint("/")
    assert e.field("matrix").shape.items.items.kind == "number"
    groups = e.field("groups").shape
    assert groups.min_items == 1
    points = groups.items.field("points").shape
    assert points.items.kind == "object" and [f.name for f in points.items.fields] == ["x", "y"]
    assert e.field("meta").shape.kind == "object" and not e.field("meta").shape.fields
    assert e.field("notes").shape.multiline


def test_recursive_model_is_cut_into_json_without_looping(legacy):
    e = legacy.endpoint("/tree")
    children = e.field("children").shape
    assert children.items.kind == "any" and children.items.recursive == "Node"
    parent = e.field("parent").shape
    assert parent.kind == "any" and parent.recursive == "Node" and parent.nullable


def test_refs_to_parameters_responses_and_array_body(legacy):
    e = legacy.endpoint("/list")
    assert [(f.name, f.location) for f in e.fields] == [("body", "value"), ("verbose", "query")]
    assert e.field("verbose").initial is True
    assert e.request({"body": [{"x": 1}], "verbose": False}) == ("/list?verbose=false", [{"x": 1}])
    assert [f.name for f in legacy.endpoint("/").output.fields] == ["ok"]


def test_dangling_ref_is_a_clear_error():
    doc = copy.deepcopy(sample_apps.OPENAPI_30)
    doc["components"]["schemas"]["In"]["properties"]["point"] = {"$ref": "#/components/schemas/Nowhere"}
    with pytest.raises(SchemaError, match="Nowhere"):
        parse_openapi(doc)


def test_not_a_document():
    with pytest.raises(SchemaError, match="no 'paths'"):
        parse_openapi({"openapi": "3.1.0"})


def test_type_list_3_1():
    doc = {
        "openapi": "3.1.0",
        "paths": {
            "/": {
                "post": {
                    "requestBody": {
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {"n": {"type": ["integer", "null"], "maximum": 3}},
                                }
                            }
                        }
                    }
                }
            }
        },
    }
    n = parse_openapi(doc).endpoint("/").field("n").shape
    assert n.kind == "integer" and n.nullable and n.maximum == 3


# -- realtime and websocket endpoints (fal's x-fal-protocol) --------------------------------------


def test_realtime_and_websocket_endpoints_are_read_from_fals_markers():
    app = parse_openapi(sample_apps.fal_document(sample_apps.LiveApp))
    assert sorted(app.paths) == ["/", "/chat", "/frames", "/realtime"]
    assert app.endpoint("/").protocol == "http" and app.endpoint("/").realtime_mode == ""
    live = app.endpoint("/realtime")
    assert (live.protocol, live.realtime_mode, live.content_type) == ("realtime", "unary", "application/msgpack")
    assert live.summary == "Realtime endpoint: live" and live.description == "Draws each frame."
    assert [f.name for f in live.fields] == ["prompt", "steps"] and live.field("steps").shape.maximum == 8
    assert [f.name for f in live.output.fields] == ["image", "prompt"] and not live.streaming
    assert live.request({"prompt": "a dog", "steps": 3}) == ("/realtime", {"prompt": "a dog", "steps": 3})
    assert app.endpoint("/frames").realtime_mode == "server_streaming"
    chat = app.endpoint("/chat")  # no message model: a message is text
    assert (chat.protocol, chat.summary, chat.output) == ("websocket", "WebSocket endpoint: chat", None)
    [message] = chat.fields
    assert (message.name, message.shape.kind, message.location, message.required) == (
        "message",
        "string",
        "value",
        True,
    )
    assert chat.request({"message": "hello"}) == ("/chat", "hello")


def test_a_realtime_endpoint_without_models_takes_any_json_message():
    document = {
        "paths": {
            "/realtime": {"x-fal-protocol": {"type": "realtime", "operationId": "echo", "realtimeMode": "bidi"}},
            "/other": {"x-fal-protocol": {"type": "carrier-pigeon"}, "post": {"summary": "Plain"}},
        }
    }
    app = parse_openapi(document)
    realtime = app.endpoint("/realtime")
    assert (realtime.protocol, realtime.content_type, realtime.summary) == (
        "realtime",
        "application/msgpack",
        "Realtime endpoint: echo",
    )
    assert [(f.name, f.shape.kind) for f in realtime.fields] == [("message", "any")]
    assert app.endpoint("/other").protocol == "http"  # a protocol fal does not define: its POST, as before


def test_forms_get_routes_and_the_form_for_any_request():
    doc = {
        "openapi": "3.1.0",
        "paths": {
            "/items/": {"post": {"requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}}}},
            "/files/": {
                "post": {
                    "requestBody": {
                        "content": {
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "file": {"type": "string", "format": "binary"},
                                        "note": {"type": "string"},
                                    },
                                    "required": ["file"],
                                }
                            }
                        }
                    }
                }
            },
            "/search": {"get": {"parameters": [{"name": "q", "in": "query", "schema": {"type": "string"}}]}},
            "/items/{name}": {"get": {}},
        },
    }
    app = parse_openapi(doc)
    assert [(e.path, e.method, e.queued) for e in app.endpoints] == [
        ("/items/", "POST", True),
        ("/files/", "POST", False),  # a form is sent as it is, not through the queue
        ("/search", "GET", False),
    ]
    files = app.endpoint("/files/")
    assert files.content_type == "multipart/form-data" and files.field("file").shape.media == "file"
    assert app.endpoint("/search").field("q").location == "query"
    with pytest.raises(SchemaError, match="no endpoint '/items'"):
        app.endpoint("/items")  # the path as the app declares it: with its slash
    form = request_form(["/items/", "/health"])
    assert form.path == ANY_REQUEST and form.protocol == "request" and not form.queued
    assert [f.name for f in form.fields] == ["method", "path", "query", "json", "form", "files", "file_field"]
    assert form.field("path").initial == "/items/" and form.field("method").initial == "GET"
