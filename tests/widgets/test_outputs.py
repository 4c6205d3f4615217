"""Rendering outputs: media (galleries, players, links), text, the JSON tree, timing."""

from __future__ import annotations

import pytest

from fal_notebook.schema import parse_openapi
from fal_notebook.widgets.outputs import Media, find_media, json_tree, render_output, timing_text

from .. import sample_apps


@pytest.fixture(scope="module")
def image_output():
    return parse_openapi(sample_apps.fal_document(sample_apps.ImageApp)).endpoint("/").output


@pytest.fixture(scope="module")
def file_output():
    return parse_openapi(sample_apps.fal_document(sample_apps.FileApp)).endpoint("/").output


def html_of(widget) -> str:
    return "\n".join(child.value for child in widget.children)


def test_image_output_renders_a_gallery(image_output):
    output = {
        "images": [
            {"url": "https://cdn.example/a.png", "content_type": "image/png", "width": 64, "height": 64},
            {"url": "https://cdn.example/b.png", "content_type": "image/png", "file_name": "b.png", "file_size": 2048},
        ],
        "seed": 42,
        "caption": "two cats",
    }
    widget = render_output(output, image_output)
    gallery, caption, tree = widget.children
    assert "fal-pg-gallery" in gallery.value and ">images<" in gallery.value
    assert gallery.value.count("<img ") == 2
    assert '<img src="https://cdn.example/a.png"' in gallery.value and "b.png · 2.0 KB" in gallery.value
    assert ">caption<" in caption.value and "two cats" in caption.value
    assert "seed" in tree.value and "42" in tree.value


def test_media_without_a_schema_by_url_and_content_type():
    output = {
        "clip": {"url": "https://cdn.example/v.mp4", "content_type": "video/mp4"},
        "voice": {"url": "https://cdn.example/a.wav", "content_type": "audio/wav"},
        "report": {"url": "https://cdn.example/r.pdf", "content_type": "application/pdf", "file_name": "r.pdf"},
        "plain": {"url": "https://example.com", "title": "not media"},
    }
    kinds = {m.group: m.kind for m in find_media(output)}
    assert kinds == {"clip": "video", "voice": "audio", "report": "file"}
    page = html_of(render_output(output))
    assert '<video controls src="https://cdn.example/v.mp4"' in page
    assert '<audio controls src="https://cdn.example/a.wav"' in page
    assert '<a href="https://cdn.example/r.pdf"' in page and "download" in page


def test_media_by_schema_even_without_content_type(file_output):
    output = {
        "text": "hello",
        "file": {"url": "https://cdn.example/f.bin"},
        "thumbnail": {"url": "https://cdn.example/t.jpg"},
    }
    found = list(find_media(output, file_output))
    assert [(m.group, m.kind) for m in found] == [("file", "file"), ("thumbnail", "image")]  # fal's File model
    assert list(find_media({"other": {"url": "https://cdn.example/f.bin"}}, file_output)) == []  # any url: not media
    found = list(
        find_media({**output, "file": {"url": "https://cdn.example/f.bin", "content_type": "text/plain"}}, file_output)
    )
    assert [(m.group, m.kind) for m in found] == [("file", "file"), ("thumbnail", "image")]


def test_data_uris_render_inline():
    uri = "data:image/png;base64,iVBORw0KGgo="
    assert list(find_media({"preview": uri})) == [Media(("preview",), "image", uri, size=len(uri) * 3 // 4)]
    page = html_of(render_output({"preview": uri}))
    assert f'<img src="{uri}"' in page


def test_text_output():
    page = html_of(render_output("plain <b>text</b>"))
    assert "plain &lt;b&gt;text&lt;/b&gt;" in page and "fal-pg-text" in page


def test_json_tree_shortens_long_values():
    tree = json_tree({"blob": "data:image/png;base64," + "A" * 10_000, "items": list(range(60)), "ok": True})
    assert "data:image/png;base64,… (7.3 KB)" in tree and "AAAA" not in tree
    assert "… 10 more" in tree and "60 items" in tree
    assert '<span class="fal-pg-json-literal">true</span>' in tree
    assert "<details open>" in tree


def test_timing():
    assert timing_text(2.5, {"inference_time": 1.234}) == "inference 1.23 s · total 2.50 s"
    assert timing_text(0.5) == "total 0.50 s"
