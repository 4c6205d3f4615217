"""One builder per field kind: widgets that edit a JSON value of a schema :class:`Shape`, both ways.

A :class:`Control` edits one value (``get`` returns JSON, ``set`` takes JSON); a :class:`FieldRow`
wraps the control of a named field with its label, required mark, "set" toggle (optional fields
without a default), help text and error message. :func:`build_control` picks the control for a shape.
"""

from __future__ import annotations

import base64
import html
import json
import math
import mimetypes
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, unquote, unquote_to_bytes

import ipywidgets as W
from traitlets import TraitError

from ..errors import FalNotebookError, InputError
from ..schema import MISSING, Field, Shape
from ..validation import Invalid, Issue, validate

Uploader = Callable[[bytes, str, str], str]
"""(content, content type, file name) → the URL (or ``data:`` URI) an app receives."""

_ACCEPT = {"image": "image/*", "audio": "audio/*", "video": "video/*", "file": ""}
_SLIDER_MAX_STEPS = 1000
_JS_SAFE_INT = 2**53 - 1


def data_uri(content: bytes, content_type: str, file_name: str = "") -> str:
    """The default uploader: the file inline as a ``data:`` URI (fal's File/Image inputs accept them)."""
    content_type = content_type or mimetypes.guess_type(file_name)[0] or "application/octet-stream"
    return f"data:{content_type};base64,{base64.b64encode(content).decode()}"


def named_data_uri(content: bytes, content_type: str, file_name: str = "") -> str:
    """A ``data:`` URI that keeps the file's name (a ``name`` parameter): for uploads sent as multipart."""
    uri = data_uri(content, content_type, file_name)
    if not file_name:
        return uri
    head, _, data = uri.partition(";base64,")
    return f"{head};name={quote(file_name)};base64,{data}"


def read_data_uri(uri: str) -> tuple[str, bytes, str]:
    """(file name, content, content type) of a ``data:`` URI (base64 or not); InputError if it is none."""
    head, comma, data = uri.partition(",")
    if not uri.startswith("data:") or not comma:
        raise InputError(f"{uri[:60]!r} is not an uploaded file (a data: URI); upload the file again.")
    kind, *params = head[len("data:") :].split(";")
    name = next((unquote(p[5:]) for p in params if p.startswith("name=")), "upload")
    try:
        content = base64.b64decode(data, validate=True) if "base64" in params else unquote_to_bytes(data)
    except ValueError:
        raise InputError(f"The upload {name!r} is not valid base64; upload the file again.") from None
    return name, content, kind or "application/octet-stream"


def _full() -> W.Layout:
    return W.Layout(width="100%")


def _show(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def size_text(n: int) -> str:
    """``512 B``, ``1.5 KB``, ``3.2 MB`` (megabytes at most)."""
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n / (1024 * 1024):.1f} MB"


class Control:
    """Edits one JSON value. Subclasses set ``self.widget``."""

    widget: W.Widget

    def get(self) -> Any:
        """The JSON value; ``MISSING`` when nothing is entered; :class:`Invalid` when unreadable."""
        raise NotImplementedError

    def set(self, value: Any) -> None:
        """Show ``value`` (JSON; ``MISSING`` clears)."""
        raise NotImplementedError

    def show_issues(self, issues: list[Issue]) -> list[Issue]:
        """Show the issues of nested fields; return those this control has no place for."""
        return issues

    def clear_issues(self) -> None:
        pass


#: Typed text reaches the kernel once, when the field is left (a click on Send leaves it), not per key:
#: ipywidgets holds a widget's further updates while one is in flight, and a button's click is not held,
#: so a click right after typing would otherwise reach the kernel before the last keys.
TYPED = {"continuous_update": False}


class TextControl(Control):
    def __init__(self, shape: Shape, uploader: Uploader):
        if shape.multiline:
            self.input = W.Textarea(rows=3, layout=_full(), **TYPED)
        else:
            self.input = W.Text(layout=_full(), **TYPED)
        self.input.add_class("fal-pg-input")
        self.widget = self.input

    def get(self) -> Any:
        return self.input.value if self.input.value else MISSING

    def set(self, value: Any) -> None:
        self.input.value = "" if value is MISSING or value is None else value if isinstance(value, str) else str(value)


class NumberControl(Control):
    """A slider when both bounds are known (and, for integers, not too far apart), a number box
    otherwise."""

    def __init__(self, shape: Shape, uploader: Uploader):
        self.integer = shape.kind == "integer"
        low, high = shape.lower, shape.upper
        if self.integer:
            low = None if low is None else math.floor(low) + (shape.exclusive_minimum is not None)
            high = None if high is None else math.ceil(high) - (shape.exclusive_maximum is not None)
        self.low = low
        if low is not None and high is not None and (not self.integer or high - low <= _SLIDER_MAX_STEPS):
            if self.integer:
                self.input = W.IntSlider(min=low, max=high, step=int(shape.multiple_of or 1))
            else:
                step = shape.multiple_of or _step(low, high)
                self.input = W.FloatSlider(min=low, max=high, step=step, readout_format=f".{_decimals(step)}f")
            self.input.continuous_update = False
        elif low is not None or high is not None:
            limit = _JS_SAFE_INT if self.integer else 1e308
            cls = W.BoundedIntText if self.integer else W.BoundedFloatText
            self.input = cls(min=-limit if low is None else low, max=limit if high is None else high)
        else:
            self.input = W.IntText() if self.integer else W.FloatText()
        self.input.layout = _full()
        self.widget = self.input

    def get(self) -> Any:
        return self.input.value

    def set(self, value: Any) -> None:
        low, high = getattr(self.input, "min", None), getattr(self.input, "max", None)
        if value is MISSING or value is None:
            value = self.low if self.low is not None else 0 if high is None else min(0, high)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"expects a number, not {value!r}")
        if (low is not None and value < low) or (high is not None and value > high):
            raise ValueError(f"{value} is outside {low}..{high}")
        self.input.value = int(value) if self.integer and float(value).is_integer() else value


def _step(low: float, high: float) -> float:
    span = high - low
    return 10 ** math.floor(math.log10(span / 100)) if span > 0 else 0.1


def _decimals(step: float) -> int:
    return max(0, -math.floor(math.log10(step))) if 0 < step < 1 else 0


class BooleanControl(Control):
    def __init__(self, shape: Shape, uploader: Uploader):
        self.widget = self.input = W.Checkbox(indent=False)

    def get(self) -> Any:
        return self.input.value

    def set(self, value: Any) -> None:
        self.input.value = bool(value) if value is not MISSING else False


class EnumControl(Control):
    """``enum`` and ``Literal``: a dropdown of the allowed values."""

    def __init__(self, shape: Shape, uploader: Uploader):
        self.values = shape.enum
        self.input = W.Dropdown(options=[(_show(v), i) for i, v in enumerate(shape.enum)], layout=_full())
        self.widget = self.input

    def get(self) -> Any:
        return MISSING if self.input.value is None else self.values[self.input.value]

    def set(self, value: Any) -> None:
        if value is MISSING or value is None:
            self.input.value = 0 if self.values else None
            return
        for i, v in enumerate(self.values):
            if v == value and isinstance(v, bool) == isinstance(value, bool):
                self.input.value = i
                return
        raise ValueError(f"must be one of {', '.join(_show(v) for v in self.values)}, not {value!r}")


class ScalarListControl(Control):
    """A list of strings or numbers: tags (type a value, press Enter)."""

    def __init__(self, shape: Shape, uploader: Uploader):
        item = shape.items or Shape(kind="string")
        if item.kind == "integer" and not item.enum:
            self.input = W.IntsInput(min=item.lower, max=item.upper)
        elif item.kind == "number" and not item.enum:
            self.input = W.FloatsInput(min=item.lower, max=item.upper)
        else:
            self.input = W.TagsInput(allowed_tags=list(item.enum), allow_duplicates=True)
        self.input.placeholder = "type a value, press Enter"
        self.input.layout = _full()
        self.widget = self.input

    def get(self) -> Any:
        return list(self.input.value)

    def set(self, value: Any) -> None:
        if value is MISSING or value is None:
            value = []
        if not isinstance(value, list):
            raise ValueError(f"expects a list, not {value!r}")
        self.input.value = list(value)


class JsonControl(Control):
    """Free-form JSON, for shapes a form cannot express (and recursive models)."""

    def __init__(self, shape: Shape, uploader: Uploader):
        hint = f"JSON ({shape.recursive})" if shape.recursive else "JSON"
        self.input = W.Textarea(rows=4, placeholder=hint, **TYPED, layout=_full())
        self.input.add_class("fal-pg-code")
        self.widget = self.input

    def get(self) -> Any:
        text = self.input.value.strip()
        if not text:
            return MISSING
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            return Invalid(text, f"is not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})")

    def set(self, value: Any) -> None:
        self.input.value = "" if value is MISSING else json.dumps(value, indent=2)


class MediaControl(Control):
    """``ui.field`` image/file/audio/video (or a ``*_url`` name): a URL box, an upload button and a
    preview. An upload goes through the uploader (a ``data:`` URI by default)."""

    def __init__(self, shape: Shape, uploader: Uploader):
        self.media, self.as_object, self.uploader = shape.media, shape.kind == "object", uploader
        self.uploaded: str | None = None
        self.url = W.Text(
            placeholder="https://…  or upload a file",
            continuous_update=False,
            layout=W.Layout(flex="1 1 auto", width="auto"),
        )
        self.upload = W.FileUpload(
            accept=_ACCEPT.get(self.media, ""),
            multiple=False,
            description="Upload",
            layout=W.Layout(width="auto", flex="0 0 auto"),
        )
        self.note = W.HTML()
        self.preview = W.HTML()
        self.preview.add_class("fal-pg-preview")
        self.url.observe(self._typed, "value")
        self.upload.observe(self._uploaded, "value")
        self.widget = W.VBox([W.HBox([self.url, self.upload], layout=_full()), self.note, self.preview])

    def _typed(self, change: Mapping[str, Any]) -> None:
        if change["new"]:
            self.uploaded = None
            self.note.value = ""
        self._refresh()

    def _uploaded(self, change: Mapping[str, Any]) -> None:
        if not change["new"]:
            return
        file = change["new"][0]
        content = bytes(file["content"])
        self.upload.value = ()  # release the bytes; the same file can be chosen again
        try:
            url = self.uploader(content, file.get("type") or "", file.get("name") or "upload")
        except FalNotebookError as exc:  # the store refused it, or could not be reached: say so here
            self.note.value = f'<span class="fal-pg-error">{html.escape(str(exc))}</span>'
            return
        self._take(url, f"{file.get('name')} · {size_text(len(content))}")

    def _take(self, url: str, note: str) -> None:
        if url.startswith("data:"):  # too long for a text box: keep it aside, say what it is
            self.url.value = ""
            self.uploaded = url
            self.note.value = f'<span class="fal-pg-help">{html.escape(note)} (inline)</span>'
        else:
            self.url.value = url
            self.note.value = f'<span class="fal-pg-help">{html.escape(note)} (uploaded)</span>'
        self._refresh()

    def _refresh(self) -> None:
        self.preview.value = media_html(self.media, self.uploaded or self.url.value.strip())

    def get(self) -> Any:
        value = self.uploaded or self.url.value.strip()
        if not value:
            return MISSING
        return {"url": value} if self.as_object else value

    def set(self, value: Any) -> None:
        if isinstance(value, Mapping):
            value = value.get("url", MISSING)
        if value is MISSING or value is None:
            self.uploaded, self.note.value = None, ""
            self.url.value = ""
        elif not isinstance(value, str):
            raise ValueError(f"expects a URL, not {value!r}")
        elif value.startswith("data:"):
            self._take(value, f"data · {size_text(len(value) * 3 // 4)}")
        else:
            self.url.value = value
        self._refresh()


def media_html(media: str, url: str) -> str:
    """An ``<img>``/``<audio>``/``<video>`` element or a download link for ``url``."""
    if not url:
        return ""
    src = html.escape(url, quote=True)
    if media == "image":
        return f'<img src="{src}" alt="">'
    if media in ("audio", "video"):
        return f'<{media} controls src="{src}"></{media}>'
    name = "inline data" if url.startswith("data:") else url.rsplit("/", 1)[-1] or url
    return f'<a href="{src}" target="_blank" rel="noopener" download>{html.escape(name[:80])}</a>'


class _Slot:
    """A control with a place for its own error message (list items, field rows); the message's
    widget is made when there is a first message (most fields never have one)."""

    def __init__(self, control: Control, frame: W.Box):
        self.control, self.frame = control, frame
        self.error: W.HTML | None = None

    def show_issues(self, issues: list[Issue]) -> None:
        own = [message for path, message in issues if not path]
        nested = self.control.show_issues([(path, message) for path, message in issues if path])
        own += [f"{'.'.join(map(str, path))} {message}" for path, message in nested]
        if own:
            if self.error is None:
                self.error = W.HTML()
                self.error.add_class("fal-pg-error")
                self.frame.children = (*self.frame.children, self.error)
            self.error.value = "<br>".join(html.escape(m) for m in own)
            self.frame.add_class("fal-pg-invalid")

    def clear_issues(self) -> None:
        if self.error is not None:
            self.error.value = ""
        self.frame.remove_class("fal-pg-invalid")
        self.control.clear_issues()


class FieldRow(W.VBox):
    """A named field: label (``*`` if required), the JSON key, help text, a "set" toggle for
    optional fields without a default, the control, and (when there is one) the error message."""

    def __init__(self, field: Field, uploader: Uploader):
        self.field = field
        self.control = build_control(field.shape, uploader)
        self.slot = _Slot(self.control, self)
        optional = not field.required and field.default in (MISSING, None)
        mark = ' <span class="fal-pg-required" title="required">*</span>' if field.required else ""
        help_text = f'<div class="fal-pg-help">{html.escape(field.description)}</div>' if field.description else ""
        label = W.HTML(
            f'<span class="fal-pg-label">{html.escape(field.label)}</span>{mark}'
            f' <code class="fal-pg-name">{html.escape(field.name)}</code>{help_text}'
        )
        self.toggle = None
        header: W.Widget = label
        if optional:
            self.toggle = W.Checkbox(value=False, description="set", indent=False, layout=W.Layout(width="auto"))
            header = W.HBox([label, self.toggle])
            header.add_class("fal-pg-header")
        self.body = self.control.widget
        if isinstance(self.control, ObjectControl):
            self.body = W.Accordion([self.control.widget], titles=(" · ".join(self.control.rows) or "fields",))
        super().__init__([header, self.body])
        self.add_class("fal-pg-row")
        if field.initial is not MISSING:
            self._show_initial(field.initial)
        if self.toggle is not None:
            self.toggle.observe(lambda change: self._display(), "value")
            self._display()

    def _show_initial(self, value: Any) -> None:
        """Show the schema's example or default; one the widget cannot show (an object with keys
        the form lacks, a blank tag) leaves the field empty, and the app applies its own default."""
        try:
            self.control.set(value)
        except (ValueError, TraitError):
            self.control.set(MISSING)

    def _display(self) -> None:
        self.body.layout.display = "" if self.is_set else "none"

    @property
    def is_set(self) -> bool:
        return self.toggle is None or self.toggle.value

    @property
    def value(self) -> Any:
        """The field's JSON value, or ``MISSING`` when it is left out of the request."""
        return self.control.get() if self.is_set else MISSING

    @value.setter
    def value(self, value: Any) -> None:
        if value is MISSING:
            self.reset()
            return
        if self.toggle is not None:
            self.toggle.value = value is not None
            if value is None:
                return
        try:
            self.control.set(value)
        except (ValueError, TraitError) as e:  # TraitError: a value the widget cannot hold
            raise ValueError(f"{self.field.name}: {e}") from None

    def reset(self) -> None:
        """Back to the default (optional fields: not set)."""
        if self.toggle is not None:
            self.toggle.value = False
        else:
            self._show_initial(self.field.default)

    def show_issues(self, issues: list[Issue]) -> None:
        if any(path for path, _ in issues) and isinstance(self.body, W.Accordion):
            self.body.selected_index = 0
        self.slot.show_issues(issues)

    def clear_issues(self) -> None:
        self.slot.clear_issues()


class ObjectControl(Control):
    """A model: one row per field, in the schema's order. ``important`` splits the rows in two:
    required and important fields first, the rest under "Additional settings"."""

    def __init__(self, shape: Shape, uploader: Uploader, *, split: bool = False):
        self.rows = {f.name: FieldRow(f, uploader) for f in shape.fields}
        main = [r for r in self.rows.values() if not split or r.field.required or r.field.important]
        more = [r for r in self.rows.values() if r not in main]
        children: list[W.Widget] = list(main)
        if more:
            extra = W.Accordion([W.VBox(more)], titles=(f"Additional settings ({len(more)})",))
            extra.add_class("fal-pg-more")
            children.append(extra)
        self.widget = W.VBox(children, layout=_full())

    def get(self) -> Any:
        values = {name: row.value for name, row in self.rows.items()}
        return {name: v for name, v in values.items() if v is not MISSING}

    def set(self, value: Any, *, partial: bool = False) -> None:
        if value is MISSING or value is None:
            value = {}
        if not isinstance(value, Mapping):
            raise ValueError(f"expects an object, not {value!r}")
        unknown = [name for name in value if name not in self.rows]
        if unknown:
            raise ValueError(f"no field {', '.join(map(repr, unknown))}; the fields are: {', '.join(self.rows)}")
        for name, row in self.rows.items():
            if name in value:
                row.value = value[name]
            elif not partial:
                row.reset()

    def show_issues(self, issues: list[Issue]) -> list[Issue]:
        left: list[Issue] = []
        by_row: dict[str, list[Issue]] = {}
        for path, message in issues:
            if path and isinstance(path[0], str) and path[0] in self.rows:
                by_row.setdefault(path[0], []).append((path[1:], message))
            else:
                left.append((path, message))
        for name, found in by_row.items():
            self.rows[name].show_issues(found)
        return left

    def clear_issues(self) -> None:
        for row in self.rows.values():
            row.clear_issues()


class ListControl(Control):
    """A list of objects (or media, or lists): one item per row, with add, remove, move up/down."""

    def __init__(self, shape: Shape, uploader: Uploader):
        self.item, self.uploader = shape.items or Shape(), uploader
        self.slots: list[_Slot] = []
        self.box = W.VBox()
        add = W.Button(description="Add item", icon="plus", layout=W.Layout(width="auto"))
        add.on_click(lambda _: self.append(MISSING))
        self.widget = W.VBox([self.box, add], layout=_full())

    def append(self, value: Any) -> None:
        control = build_control(self.item, self.uploader)
        if value is not MISSING:
            control.set(value)
        frame = W.VBox()
        frame.add_class("fal-pg-item")
        slot = _Slot(control, frame)
        buttons = W.HBox(
            [
                _button("arrow-up", "Move up", lambda: self.move(slot, -1)),
                _button("arrow-down", "Move down", lambda: self.move(slot, 1)),
                _button("trash", "Remove", lambda: self.remove(slot)),
            ]
        )
        frame.children = [W.HBox([W.Box([control.widget], layout=W.Layout(flex="1 1 auto")), buttons])]
        self.slots.append(slot)
        self._render()

    def move(self, slot: _Slot, by: int) -> None:
        i = self.slots.index(slot)
        j = min(max(i + by, 0), len(self.slots) - 1)
        self.slots[i], self.slots[j] = self.slots[j], self.slots[i]
        self._render()

    def remove(self, slot: _Slot) -> None:
        self.slots.remove(slot)
        self._render()

    def _render(self) -> None:
        self.box.children = [s.frame for s in self.slots]

    def get(self) -> Any:
        values = [s.control.get() for s in self.slots]
        return [Invalid("", "is empty: fill it in or remove the item") if v is MISSING else v for v in values]

    def set(self, value: Any) -> None:
        if value is MISSING or value is None:
            value = []
        if not isinstance(value, list):
            raise ValueError(f"expects a list, not {value!r}")
        self.slots = []
        for item in value:
            self.append(item)
        self._render()

    def show_issues(self, issues: list[Issue]) -> list[Issue]:
        left: list[Issue] = []
        for path, message in issues:
            if path and isinstance(path[0], int) and path[0] < len(self.slots):
                self.slots[path[0]].show_issues([(path[1:], message)])
            else:
                left.append((path, message))
        return left

    def clear_issues(self) -> None:
        for slot in self.slots:
            slot.clear_issues()


def _button(icon: str, tooltip: str, action: Callable[[], None]) -> W.Button:
    button = W.Button(icon=icon, tooltip=tooltip, layout=W.Layout(width="34px"))
    button.on_click(lambda _: action())
    return button


class UnionControl(Control):
    """Several shapes (e.g. an image size preset or a custom width/height): pick one, edit it."""

    def __init__(self, shape: Shape, uploader: Uploader):
        self.variants = shape.variants
        self.controls = [build_control(v, uploader) for v in self.variants]
        labels = [v.label() for v in self.variants]
        labels = [f"{label} {i + 1}" if labels.count(label) > 1 else label for i, label in enumerate(labels)]
        self.picker = W.ToggleButtons(
            options=[(label, i) for i, label in enumerate(labels)], style={"button_width": "auto"}
        )
        self.stack = W.Stack([c.widget for c in self.controls], selected_index=0)
        self.picker.observe(lambda change: setattr(self.stack, "selected_index", change["new"]), "value")
        self.widget = W.VBox([self.picker, self.stack], layout=_full())

    @property
    def active(self) -> Control:
        return self.controls[self.picker.value]

    def get(self) -> Any:
        return self.active.get()

    def set(self, value: Any) -> None:
        if value is MISSING or value is None:
            self.picker.value = 0
            self.active.set(MISSING)
            return
        for i, variant in enumerate(self.variants):
            if not validate(variant, value):
                self.picker.value = i
                self.active.set(value)
                return
        raise ValueError(f"matches none of: {', '.join(v.label() for v in self.variants)}")

    def show_issues(self, issues: list[Issue]) -> list[Issue]:
        return self.active.show_issues(issues)

    def clear_issues(self) -> None:
        for control in self.controls:
            control.clear_issues()


def build_control(shape: Shape, uploader: Uploader = data_uri) -> Control:
    """The control for a shape (one builder per kind)."""
    if shape.media and shape.kind in ("string", "object"):
        return MediaControl(shape, uploader)
    if shape.enum:
        return EnumControl(shape, uploader)
    if shape.kind == "array" and shape.items is not None:
        item = shape.items
        if item.kind in ("string", "integer", "number") and not item.media and not item.multiline:
            return ScalarListControl(shape, uploader)
        return ListControl(shape, uploader)
    if shape.kind == "object" and shape.fields:
        return ObjectControl(shape, uploader)
    builder = _BUILDERS.get(shape.kind, JsonControl)
    return builder(shape, uploader)


_BUILDERS: dict[str, Callable[[Shape, Uploader], Control]] = {
    "string": TextControl,
    "integer": NumberControl,
    "number": NumberControl,
    "boolean": BooleanControl,
    "union": UnionControl,
}
