"""Every field kind, widget values ↔ JSON both ways, without a kernel."""

from __future__ import annotations

import base64
import datetime

import ipywidgets as W
import pytest

from fal_notebook.schema import MISSING, Shape, parse_openapi
from fal_notebook.validation import Invalid
from fal_notebook.widgets.fields import (
    BooleanControl,
    EnumControl,
    FieldRow,
    JsonControl,
    ListControl,
    MediaControl,
    NumberControl,
    ObjectControl,
    ScalarListControl,
    TextControl,
    UnionControl,
    build_control,
    data_uri,
)

from .. import sample_apps
from .conftest import sent_state

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


@pytest.fixture(scope="module")
def image_form():
    return parse_openapi(sample_apps.fal_document(sample_apps.ImageApp)).endpoint("/")


@pytest.fixture(scope="module")
def file_form():
    return parse_openapi(sample_apps.fal_document(sample_apps.FileApp)).endpoint("/")


def upload(control: MediaControl, content: bytes, name: str, content_type: str) -> None:
    """What the browser sends when a user picks a file."""
    control.upload.value = (
        {
            "name": name,
            "type": content_type,
            "size": len(content),
            "content": memoryview(content),
            "last_modified": datetime.datetime.now(datetime.UTC),
        },
    )


def test_text_both_ways():
    control = build_control(Shape(kind="string"))
    assert isinstance(control, TextControl) and isinstance(control.input, W.Text)
    assert control.get() is MISSING  # nothing typed
    control.set("hello")
    assert control.get() == "hello" and sent_state(control.input)["value"] == "hello"
    control.input.value = "typed"
    assert control.get() == "typed"


def test_long_text_is_a_textarea(image_form):
    assert isinstance(build_control(image_form.field("prompt").shape).input, W.Textarea)
    assert isinstance(build_control(Shape(kind="string", multiline=True)).input, W.Textarea)


def test_bounded_integer_is_a_slider(image_form):
    control = build_control(image_form.field("steps").shape)
    assert isinstance(control, NumberControl) and isinstance(control.input, W.IntSlider)
    assert (control.input.min, control.input.max) == (1, 50)
    control.set(30)
    assert control.get() == 30
    control.input.value = 42
    assert control.get() == 42
    with pytest.raises(ValueError, match="outside 1..50"):
        control.set(51)
    with pytest.raises(ValueError, match="expects a number"):
        control.set("ten")


def test_bounded_float_is_a_slider_with_a_fitting_step(image_form):
    control = build_control(image_form.field("guidance").shape)
    assert isinstance(control.input, W.FloatSlider)
    assert (control.input.min, control.input.max, control.input.step) == (0, 20, 0.1)
    assert control.input.readout_format == ".1f"
    control.set(7.5)
    assert control.get() == 7.5


def test_wide_or_half_bounded_integers_are_number_boxes(image_form):
    seed = build_control(image_form.field("seed").shape)
    assert isinstance(seed.input, W.BoundedIntText) and seed.input.min == 0
    free = build_control(Shape(kind="integer"))
    assert isinstance(free.input, W.IntText)
    free.set(-7)
    assert free.get() == -7
    excl = build_control(Shape(kind="integer", exclusive_minimum=0, exclusive_maximum=10))
    assert (excl.input.min, excl.input.max) == (1, 9)
    number = build_control(Shape(kind="number"))
    number.set(2)
    assert isinstance(number.input, W.FloatText) and number.get() == 2.0


def test_boolean_both_ways():
    control = build_control(Shape(kind="boolean"))
    assert isinstance(control, BooleanControl) and control.get() is False
    control.set(True)
    assert control.get() is True
    control.input.value = False
    assert control.get() is False


def test_enum_and_literal_are_dropdowns(image_form, file_form):
    control = build_control(image_form.field("style").shape)
    assert isinstance(control, EnumControl) and isinstance(control.input, W.Dropdown)
    assert [label for label, _ in control.input.options] == ["photo", "anime", "sketch"]
    control.set("anime")
    assert control.get() == "anime"
    control.input.value = 2  # the user picks the third option
    assert control.get() == "sketch"
    with pytest.raises(ValueError, match="must be one of photo, anime, sketch"):
        control.set("oil")
    numbers = build_control(Shape(kind="integer", enum=(1, 2, 3)))
    numbers.set(2)
    assert numbers.get() == 2 and isinstance(numbers.get(), int)


def test_list_of_scalars(image_form):
    tags = build_control(image_form.field("tags").shape)
    assert isinstance(tags, ScalarListControl) and isinstance(tags.input, W.TagsInput)
    assert tags.get() == []
    tags.set(["a", "b", "a"])
    assert tags.get() == ["a", "b", "a"]
    tags.input.value = ["typed"]
    assert tags.get() == ["typed"]
    ints = build_control(Shape(kind="array", items=Shape(kind="integer", minimum=0, maximum=9)))
    assert isinstance(ints.input, W.IntsInput) and (ints.input.min, ints.input.max) == (0, 9)
    ints.set([1, 2])
    assert ints.get() == [1, 2]
    floats = build_control(Shape(kind="array", items=Shape(kind="number")))
    assert isinstance(floats.input, W.FloatsInput)


def test_list_of_objects_add_remove_reorder(image_form):
    control = build_control(image_form.field("sizes").shape)
    assert isinstance(control, ListControl) and control.get() == []
    control.set([{"width": 100, "height": 200}, {"width": 300}])
    assert control.get() == [{"width": 100, "height": 200}, {"width": 300, "height": 512}]
    first, second = control.slots
    control.move(second, -1)
    assert control.get()[0]["width"] == 300
    assert control.box.children == (second.frame, first.frame)
    control.remove(second)
    assert control.get() == [{"width": 100, "height": 200}]
    add = control.widget.children[1]
    add.click()
    assert control.get() == [{"width": 100, "height": 200}, {"width": 512, "height": 512}]
    control.slots[1].control.rows["width"].value = 64
    assert control.get()[1] == {"width": 64, "height": 512}


def test_list_row_buttons(image_form):
    control = build_control(image_form.field("sizes").shape)
    control.set([{"width": 100}, {"width": 200}])
    up, down, remove = control.slots[1].frame.children[0].children[1].children
    up.click()
    assert [s["width"] for s in control.get()] == [200, 100]
    remove.click()
    assert control.get() == [{"width": 100, "height": 512}]


def test_empty_list_item_is_invalid_not_dropped(file_form):
    control = build_control(file_form.field("reference_image_urls").shape)
    assert isinstance(control, ListControl) and isinstance(control.slots, list)
    control.append(MISSING)
    (value,) = control.get()
    assert isinstance(value, Invalid) and "remove the item" in value.message


def test_nested_object_is_collapsible(image_form):
    row = FieldRow(image_form.field("size"), data_uri)
    assert isinstance(row.body, W.Accordion) and row.body.selected_index is None  # collapsed
    assert row.body.titles == ("width · height",)
    assert row.value == {"width": 512, "height": 512}
    row.value = {"width": 1024, "height": 768}
    assert row.value == {"width": 1024, "height": 768}
    row.control.rows["height"].control.input.value = 64
    assert row.value == {"width": 1024, "height": 64}
    with pytest.raises(ValueError, match="size: no field 'depth'"):
        row.value = {"depth": 1}


def test_union_picks_the_variant_that_fits(image_form):
    control = build_control(image_form.field("image_size").shape)
    assert isinstance(control, UnionControl)
    assert [label for label, _ in control.picker.options] == ["ImageSize", "preset"]
    control.set("landscape_4_3")
    assert control.picker.value == 1 and control.stack.selected_index == 1 and control.get() == "landscape_4_3"
    control.set({"width": 640, "height": 480})
    assert control.picker.value == 0 and control.get() == {"width": 640, "height": 480}
    control.picker.value = 1  # the user switches back to presets
    assert control.get() == "landscape_4_3"


def test_optional_field_has_a_set_toggle(image_form):
    row = FieldRow(image_form.field("seed"), data_uri)
    assert row.toggle is not None and not row.toggle.value and row.body.layout.display == "none"
    assert row.value is MISSING  # left out of the request
    row.toggle.value = True
    assert row.body.layout.display == "" and row.value == 0
    row.value = 42
    assert row.value == 42
    row.value = None  # null: not set
    assert row.value is MISSING and not row.toggle.value
    row.value = 7
    assert row.toggle.value and row.value == 7
    row.reset()
    assert row.value is MISSING


def test_fields_with_defaults_have_no_toggle(image_form):
    row = FieldRow(image_form.field("steps"), data_uri)
    assert row.toggle is None and row.value == 20
    row.value = 5
    row.reset()
    assert row.value == 20


def test_row_marks_required_shows_help_and_prefills_the_first_example(image_form):
    row = FieldRow(image_form.field("prompt"), data_uri)
    label = row.children[0].value
    assert "Prompt" in label and "fal-pg-required" in label and "<code" in label and "prompt" in label
    assert '<div class="fal-pg-help">What to draw.</div>' in label
    assert row.value == "a cat in a hat"
    optional = FieldRow(image_form.field("negative_prompt"), data_uri)
    assert "fal-pg-required" not in optional.children[0].value
    assert row.slot.error is None  # made with the first message


def test_row_shows_and_clears_issues(image_form):
    row = FieldRow(image_form.field("sizes"), data_uri)
    row.value = [{"width": 100}]
    row.show_issues([((), "needs work"), ((0, "width"), "must be at least 64")])
    assert "needs work" in row.slot.error.value and "fal-pg-invalid" in row._dom_classes
    item = row.control.slots[0]
    inner = item.control.rows["width"]
    assert "must be at least 64" in inner.slot.error.value and "fal-pg-invalid" in inner._dom_classes
    row.clear_issues()
    assert row.slot.error.value == "" and "fal-pg-invalid" not in inner._dom_classes


def test_nested_issue_opens_the_collapsed_object(image_form):
    row = FieldRow(image_form.field("size"), data_uri)
    row.show_issues([(("width",), "must be at least 64")])
    assert row.body.selected_index == 0
    assert "must be at least 64" in row.control.rows["width"].slot.error.value


def test_media_url_field_by_ui_field(image_form):
    control = build_control(image_form.field("image_url").shape)
    assert isinstance(control, MediaControl) and control.upload.accept == "image/*"
    assert control.get() is MISSING
    control.set("https://example.com/cat.png")
    assert control.get() == "https://example.com/cat.png"
    assert '<img src="https://example.com/cat.png"' in control.preview.value
    control.url.value = "https://example.com/dog.png"  # the user types a URL
    assert control.get() == "https://example.com/dog.png" and "dog.png" in control.preview.value


def test_media_upload_becomes_a_data_uri_with_preview(image_form):
    control = build_control(image_form.field("image_url").shape)
    upload(control, PNG, "dot.png", "image/png")
    expected = "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert control.get() == expected
    assert control.upload.value == ()  # the bytes are not kept twice
    assert "dot.png" in control.note.value and f'src="{expected}"' in control.preview.value
    assert control.url.value == ""  # the data URI is not pasted into the URL box
    control.url.value = "https://example.com/x.png"  # typing a URL replaces the upload
    assert control.get() == "https://example.com/x.png"


def test_media_upload_through_an_uploader(file_form):
    seen = []

    def uploader(content, content_type, name):
        seen.append((content, content_type, name))
        return f"https://cdn.example/{name}"

    control = build_control(file_form.field("document_url").shape, uploader)
    upload(control, b"%PDF-1.4", "doc.pdf", "application/pdf")
    assert seen == [(b"%PDF-1.4", "application/pdf", "doc.pdf")]
    assert control.get() == "https://cdn.example/doc.pdf" and control.url.value == "https://cdn.example/doc.pdf"
    assert "download" in control.preview.value and control.upload.accept == ""


def test_media_object_input_is_an_object_with_url(file_form):
    control = build_control(file_form.field("picture").shape)
    assert isinstance(control, MediaControl)
    control.set({"url": "https://example.com/p.png", "content_type": "image/png"})
    assert control.get() == {"url": "https://example.com/p.png"}
    upload(control, PNG, "p.png", "image/png")
    assert control.get()["url"].startswith("data:image/png;base64,")
    control.set(data_uri(b"abc", "image/png"))
    assert control.get() == {"url": "data:image/png;base64,YWJj"} and "inline" in control.note.value
    video = build_control(file_form.field("video").shape)
    video.set({"url": "https://example.com/v.mp4"})
    assert '<video controls src="https://example.com/v.mp4"' in video.preview.value
    audio = build_control(file_form.field("voice_url").shape)
    audio.set("https://example.com/a.mp3")
    assert "<audio controls" in audio.preview.value and audio.upload.accept == "audio/*"


def test_free_form_json():
    control = build_control(Shape(kind="object"))  # dict[str, Any]
    assert isinstance(control, JsonControl)
    control.set({"a": [1, None]})
    assert control.get() == {"a": [1, None]}
    control.input.value = '{"a": '
    bad = control.get()
    assert isinstance(bad, Invalid) and "not valid JSON" in bad.message and "line 1" in bad.message
    control.input.value = ""
    assert control.get() is MISSING
    recursive = build_control(Shape(recursive="Node"))
    assert isinstance(recursive, JsonControl) and "Node" in recursive.input.placeholder


def test_object_form_both_ways(image_form):
    form = ObjectControl(image_form.form, data_uri)
    assert form.get() == {  # negative_prompt "" reads as not entered; seed is not set
        "prompt": "a cat in a hat",
        "image_url": "https://example.com/cat.png",
        "style": "photo",
        "steps": 20,
        "guidance": 7.5,
        "image_size": "square_hd",
        "size": {"width": 512, "height": 512},
        "tags": [],
        "sizes": [],
        "enhance": False,
    }
    form.set({"prompt": "dog", "seed": 3, "sizes": [{"width": 64}]}, partial=True)
    assert form.get()["prompt"] == "dog" and form.get()["seed"] == 3 and form.get()["style"] == "photo"
    form.set({"prompt": "x"})  # not partial: everything else back to its default
    assert form.get()["prompt"] == "x" and "seed" not in form.get() and "image_url" not in form.get()
    with pytest.raises(ValueError, match="no field 'promt'"):
        form.set({"promt": "typo"})


def test_split_form_keeps_optional_fields_under_additional_settings(image_form):
    form = ObjectControl(image_form.form, data_uri, split=True)
    main = [c for c in form.widget.children if isinstance(c, FieldRow)]
    assert [r.field.name for r in main] == ["prompt", "image_url", "enhance"]  # required + ui.important
    (more,) = [c for c in form.widget.children if isinstance(c, W.Accordion)]
    assert more.titles == ("Additional settings (9)",)
