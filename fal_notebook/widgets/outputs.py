"""An app's output, rendered: media as images (lists as a gallery), players and download links;
top-level text as text; the whole value as a collapsible JSON tree; the timing."""

from __future__ import annotations

import html
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import ipywidgets as W

from ..schema import MEDIA_KINDS, Shape
from .fields import media_html, size_text

_TREE_OPEN_DEPTH = 2
_TREE_MAX_ITEMS = 50
_TREE_MAX_TEXT = 400


@dataclass(frozen=True)
class Media:
    """A media item found in an output: where, what kind, and its URL."""

    path: tuple[str | int, ...]
    kind: str  # image | audio | video | file
    url: str
    name: str = ""
    size: int | None = None

    @property
    def group(self) -> str:
        """The field it belongs to (list indices dropped): items of one list share a gallery."""
        return ".".join(str(p) for p in self.path if not isinstance(p, int)) or "output"


def find_media(value: Any, shape: Shape | None = None, path: tuple[str | int, ...] = ()) -> Iterator[Media]:
    """Every media item in ``value``: objects with ``ui.field`` or ``url`` + ``content_type``,
    strings of a media field, and ``data:`` URIs."""
    shape = _concrete(shape, value)
    if isinstance(value, Mapping):
        kind = _media_kind(value, shape)
        if kind:
            yield Media(path, kind, value["url"], str(value.get("file_name") or ""), value.get("file_size"))
            return
        for key, item in value.items():
            yield from find_media(item, _field_shape(shape, key), (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from find_media(item, shape.items if shape else None, (*path, i))
    elif isinstance(value, str):
        if shape is not None and shape.media and shape.kind == "string" and value:
            yield Media(path, shape.media, value)
        elif value.startswith("data:"):
            major = value[5:].split("/", 1)[0]
            yield Media(
                path, major if major in ("image", "audio", "video") else "file", value, size=len(value) * 3 // 4
            )


def _concrete(shape: Shape | None, value: Any) -> Shape | None:
    """For a union, the variant that fits the value's JSON type."""
    if shape is None or shape.kind != "union":
        return shape
    kinds: dict[type, str] = {dict: "object", list: "array", str: "string"}
    kind = kinds.get(type(value))
    return next((v for v in shape.variants if v.kind == kind), None)


def _field_shape(shape: Shape | None, key: str) -> Shape | None:
    if shape is None:
        return None
    return next((f.shape for f in shape.fields if f.name == key), None)


def _media_kind(value: Mapping[str, Any], shape: Shape | None) -> str:
    if not isinstance(value.get("url"), str):
        return ""
    if shape is not None and shape.media:
        return shape.media
    content_type = value.get("content_type")
    if not isinstance(content_type, str):
        return ""
    major = content_type.split("/", 1)[0]
    return major if major in MEDIA_KINDS else "file"


def render_output(value: Any, shape: Shape | None = None) -> W.VBox:
    """The output as a widget: media galleries, text, then the JSON tree."""
    parts: list[W.Widget] = []
    groups: dict[str, list[Media]] = {}
    for media in find_media(value, shape):
        groups.setdefault(media.group, []).append(media)
    for group, items in groups.items():
        parts.append(_section(group, "".join(_media_item(m) for m in items), "fal-pg-gallery"))
    for key, text in _texts(value, shape):
        parts.append(_section(key, f'<div class="fal-pg-text">{html.escape(text)}</div>'))
    parts.append(_section("JSON", f'<div class="fal-pg-json">{json_tree(value)}</div>'))
    box = W.VBox(parts)
    box.add_class("fal-pg-output")
    return box


def _section(title: str, body: str, css: str = "") -> W.HTML:
    return W.HTML(
        f'<div class="fal-pg-section"><div class="fal-pg-section-title">{html.escape(title)}</div>'
        f'<div class="{css}">{body}</div></div>'
    )


def _media_item(media: Media) -> str:
    element = media_html(media.kind, media.url)
    if media.kind == "image":
        element = f'<a href="{html.escape(media.url, quote=True)}" target="_blank" rel="noopener">{element}</a>'
    caption = " · ".join(filter(None, [media.name, size_text(media.size) if media.size else ""]))
    if caption and media.kind != "file":
        element += f'<div class="fal-pg-help">{html.escape(caption)}</div>'
    return f'<figure class="fal-pg-media fal-pg-{media.kind}">{element}</figure>'


def _texts(value: Any, shape: Shape | None) -> Iterator[tuple[str, str]]:
    """Top-level text: the output itself when it is a string, or its string fields."""
    if isinstance(value, str):
        if not value.startswith("data:"):
            yield "text", value
        return
    if not isinstance(value, Mapping):
        return
    media_fields = {m.path[0] for m in find_media(value, shape) if m.path}
    for key, item in value.items():
        if isinstance(item, str) and item and key not in media_fields and not _looks_like_url(item):
            yield key, item


def _looks_like_url(text: str) -> bool:
    return text.startswith(("http://", "https://", "data:")) and " " not in text


def json_tree(value: Any, key: str | None = None, depth: int = 0) -> str:
    """A collapsible tree (``<details>``), long strings and ``data:`` URIs shortened."""
    label = f'<span class="fal-pg-json-key">{html.escape(key)}</span>: ' if key is not None else ""
    if isinstance(value, (Mapping, list)) and value:
        items = list(value.items()) if isinstance(value, Mapping) else list(enumerate(value))
        shown = items[:_TREE_MAX_ITEMS]
        children = "".join(json_tree(v, str(k), depth + 1) for k, v in shown)
        if len(items) > len(shown):
            children += f'<div class="fal-pg-help">… {len(items) - len(shown)} more</div>'
        brackets = "{…}" if isinstance(value, Mapping) else f"[…] {len(items)} items"
        opened = " open" if depth < _TREE_OPEN_DEPTH else ""
        return (
            f'<details{opened}><summary>{label}<span class="fal-pg-help">{brackets}</span></summary>'
            f'<div class="fal-pg-json-children">{children}</div></details>'
        )
    return f'<div>{label}<span class="fal-pg-json-{_json_type(value)}">{html.escape(_short(value))}</span></div>'


def _json_type(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return "literal"
    return "number" if isinstance(value, (int, float)) else "string" if isinstance(value, str) else "literal"


def _short(value: Any) -> str:
    if isinstance(value, str):
        if value.startswith("data:") and len(value) > 80:
            value = f"{value.split(',', 1)[0]},… ({size_text(len(value) * 3 // 4)})"
        elif len(value) > _TREE_MAX_TEXT:
            value = value[:_TREE_MAX_TEXT] + f"… ({len(value)} characters)"
    return json.dumps(value, ensure_ascii=False)


def timing_text(total: float | None, metrics: Mapping[str, Any] | None = None) -> str:
    """``inference 1.23 s · total 2.50 s`` (each part only when known)."""
    parts = []
    inference = (metrics or {}).get("inference_time")
    if isinstance(inference, (int, float)):
        parts.append(f"inference {inference:.2f} s")
    if total is not None:
        parts.append(f"total {total:.2f} s")
    return " · ".join(parts)
