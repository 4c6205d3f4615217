"""OpenAPI 3.0/3.1 → an ordered, resolved form description (checked by :mod:`fal_notebook.validation`).

Pure: a document in, frozen dataclasses out. `parse_openapi` lists an app's POST endpoints, and its
websocket endpoints (``@fal.realtime``, ``is_websocket=True``: fal marks them with ``x-fal-protocol``),
in ``x-fal-order-paths`` order; each :class:`Endpoint` has its input :class:`Field` s (JSON body model
properties, then query parameters) in ``x-fal-order-properties`` order, with every ``$ref``
resolved, ``allOf`` merged, nullable ``anyOf`` folded into ``nullable``, fal's ``ui`` hints and
``x-fal`` constraints kept, and ``ui.hidden`` fields left out. A ``$ref`` met again inside its own
definition (a recursive model) becomes a free-form JSON shape there, so nothing loops.

The document comes from outside (a server-mode app serves its own OpenAPI), so it is normalised
once, here: a malformed part raises :class:`SchemaError` naming the place; contradictory or
unusable keywords (``minimum`` above ``maximum``, infinite bounds or bounds past 2**53, a
``multipleOf`` of 0) are dropped; an ``allOf`` cycle adds nothing; shapes nested deeper than
:data:`MAX_DEPTH` are edited as JSON. (Defaults and examples outside their own field's rules, which
pydantic allows, are the form's to handle: such a field starts empty.)
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, get_args
from urllib.parse import urlencode

from . import wire
from .errors import FalNotebookError

Kind = Literal["string", "integer", "number", "boolean", "null", "array", "object", "union", "any"]
#: JSON schema's own types, as Shape kinds.
_PLAIN_KINDS: dict[str, Kind] = {k: k for k in get_args(Kind) if k not in ("union", "any")}
Location = Literal["body", "query", "value"]  # a body property, a query parameter, the whole body
Protocol = Literal["http", "realtime", "websocket", "request"]
#: The path under which a Playground lists its form for any HTTP request (``request_form``).
ANY_REQUEST = "*"
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
#: Request bodies of forms (a POST endpoint with one is sent as a plain request, its files uploaded).
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")
MEDIA_KINDS = ("image", "file", "audio", "video")
SKIPPED_PATHS = {"/health", wire.join_path(wire.OPENAPI_PATH), "/docs", "/redoc"}
_NAME_MEDIA = (("image_url", "image"), ("audio_url", "audio"), ("video_url", "video"), ("file_url", "file"))
_PROSE_NAMES = re.compile(r"(^|_)(prompt|text|caption|description|instructions?|message|content)s?$")
_LONG_TEXT = 256
#: Nesting of a form beyond which a part is edited as free-form JSON.
MAX_DEPTH = 32
#: Bounds past this (JavaScript's largest safe integer) cannot be shown by a widget; they are dropped.
MAX_BOUND = 2**53


class SchemaError(FalNotebookError, ValueError):
    """The OpenAPI document cannot be turned into a form; the message names the place."""


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()
"""No default / no value (distinct from ``None``, which is JSON ``null``)."""


@dataclass(frozen=True)
class Shape:
    """The type of a value: its JSON kind plus everything a widget or validator needs."""

    kind: Kind = "any"
    nullable: bool = False
    title: str = ""
    enum: tuple[Any, ...] = ()
    format: str = ""
    multiline: bool = False
    media: str = ""  # image | file | audio | video: rendered as an upload / a player
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: float | None = None
    exclusive_maximum: float | None = None
    multiple_of: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    min_items: int | None = None
    max_items: int | None = None
    items: Shape | None = None
    fields: tuple[Field, ...] = ()
    variants: tuple[Shape, ...] = ()
    constraints: Mapping[str, Any] = field(default_factory=dict)  # fal's ``x-fal`` payload
    recursive: str = ""  # the model whose recursion was cut here (then kind is "any")

    @property
    def lower(self) -> float | None:
        return self.minimum if self.minimum is not None else self.exclusive_minimum

    @property
    def upper(self) -> float | None:
        return self.maximum if self.maximum is not None else self.exclusive_maximum

    @property
    def bounded(self) -> bool:
        return self.lower is not None and self.upper is not None

    @property
    def scalar(self) -> bool:
        return self.kind in ("string", "integer", "number", "boolean") and not self.media

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    def label(self) -> str:
        """A short human name, e.g. for a union's variant picker."""
        if self.title:
            return self.title
        if self.enum:
            return "preset" if len(self.enum) > 1 else repr(self.enum[0])
        return {"array": "list", "object": "object", "any": "JSON"}.get(self.kind, self.kind)


_PLAIN = Shape()


@dataclass(frozen=True)
class Field:
    """A named input (a model property or a query parameter)."""

    name: str
    shape: Shape
    title: str = ""
    description: str = ""
    required: bool = False
    default: Any = MISSING
    examples: tuple[Any, ...] = ()
    important: bool = False
    location: Location = "body"

    @property
    def label(self) -> str:
        return self.title or self.name.replace("_", " ").strip().capitalize()

    @property
    def has_default(self) -> bool:
        return self.default is not MISSING

    @property
    def initial(self) -> Any:
        """What pre-fills the form: the first example, else the default, else MISSING."""
        return self.examples[0] if self.examples else self.default


@dataclass(frozen=True)
class Endpoint:
    """One endpoint: its inputs, in form order, and the shape of its output.

    ``protocol`` says how it is called: ``http`` (a request with ``method``: fal's POST endpoints go
    through the queue, a server's GET routes are sent as they are), ``request`` (the form of any HTTP
    request: :func:`request_form`), or over a websocket: ``realtime`` (fal's ``@fal.realtime``: each
    message is an input, the app answers with outputs; ``realtime_mode`` is fal's ``unary``,
    ``server_streaming``, ``client_streaming`` or ``bidi``; frames are ``content_type``) or
    ``websocket`` (``is_websocket=True``: text frames of the app's own making). A websocket
    endpoint's inputs describe one message."""

    path: str
    summary: str = ""
    description: str = ""
    fields: tuple[Field, ...] = ()
    output: Shape | None = None
    streaming: bool = False
    protocol: Protocol = "http"
    realtime_mode: str = ""
    content_type: str = ""
    method: str = "POST"

    @property
    def queued(self) -> bool:
        """Whether a call goes through fal's queue (a POST of JSON, fal's protocol), not as a plain request."""
        return self.protocol == "http" and self.method == "POST" and self.content_type not in FORM_TYPES

    @property
    def form(self) -> Shape:
        """The endpoint's inputs as one object shape (the root of the form)."""
        return Shape(kind="object", fields=self.fields)

    def field(self, name: str) -> Field:
        return self.form.field(name)

    def request(self, values: Mapping[str, Any]) -> tuple[str, Any]:
        """Split form values into the request's path (with its query string) and JSON body."""
        query = {f.name: values[f.name] for f in self.fields if f.location == "query" and f.name in values}
        whole = [f for f in self.fields if f.location == "value"]
        if whole:
            body = values.get(whole[0].name)
        else:
            body = {f.name: values[f.name] for f in self.fields if f.location == "body" and f.name in values}
        path = self.path
        if query:
            path += "?" + urlencode({k: _query_text(v) for k, v in query.items()}, doseq=True)
        return path, body


@dataclass(frozen=True)
class AppSchema:
    """Everything the Playground renders for one app."""

    title: str
    version: str
    endpoints: tuple[Endpoint, ...]

    @property
    def paths(self) -> list[str]:
        return [e.path for e in self.endpoints]

    def endpoint(self, path: str) -> Endpoint:
        """The endpoint at ``path``, exactly as the app declares it (``/items/`` is not ``/items``)."""
        wanted = path if path == ANY_REQUEST else "/" + path.lstrip("/")
        for e in self.endpoints:
            if e.path == wanted:
                return e
        raise SchemaError(f"The app has no endpoint {path!r}; its endpoints are: {', '.join(self.paths)}.")


def parse_openapi(document: Mapping[str, Any]) -> AppSchema:
    """The form description of every POST endpoint of an OpenAPI 3.0/3.1 document (and of the GET
    routes of paths that take no POST)."""
    if not isinstance(document, Mapping) or not isinstance(document.get("paths"), Mapping):
        raise SchemaError("Not an OpenAPI document: it has no 'paths'. Is /openapi.json the app's schema?")
    parser = _Parser(document)
    try:
        return parser.app()
    except SchemaError:
        raise
    except (TypeError, KeyError, AttributeError, IndexError, ValueError, RecursionError) as exc:
        raise SchemaError(
            f"The app's OpenAPI document is malformed at {parser.place()} ({type(exc).__name__}: {exc}); "
            "fix the app's schema, or call the endpoint with connect(...).run(...)."
        ) from None


def request_form(paths: Iterable[str] = ()) -> Endpoint:
    """The form of any HTTP request to a server: for a server without an OpenAPI schema, and for the
    routes a schema's forms do not cover (path parameters, other methods, forms and uploads).
    ``paths`` (the routes the app declares, if any) pre-fill the path."""
    known = [p for p in paths if p not in SKIPPED_PATHS]
    text = Shape(kind="string")
    fields = (
        Field("method", Shape(kind="string", enum=HTTP_METHODS), title="Method", required=True, default="GET"),
        Field(
            "path", Shape(kind="string", pattern="^/"), title="Path", required=True, default="/", examples=tuple(known)
        ),
        Field("query", text, title="Query", description="name=value pairs joined by &, e.g. q=hello&limit=3"),
        Field("json", Shape(), title="JSON body", description="sent as application/json"),
        Field("form", Shape(kind="object"), title="Form fields", description='a JSON object, e.g. {"name": "Ada"}'),
        Field(
            "files",
            Shape(kind="array", items=Shape(kind="string", media="file")),
            title="Files",
            description="sent with the form fields as multipart/form-data, each under the field name below",
        ),
        Field("file_field", text, title="File field", default="file", description="the form field of the files"),
    )
    return Endpoint(
        path=ANY_REQUEST,
        summary="Any request (method, path, query, body)",
        fields=fields,
        protocol="request",
        method="",
    )


def _query_text(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


# -- the parser ---------------------------------------------------------------------------------


class _Parser:
    def __init__(self, document: Mapping[str, Any]):
        self.doc = document
        self.done: dict[str, Shape] = {}
        self.stack: list[str] = []
        self.where: list[str] = []
        self.depth = 0

    def place(self) -> str:
        """Where the parser is, for an error message: ``POST / › body › size``."""
        return " › ".join(self.where) or "its top level"

    def app(self) -> AppSchema:
        paths: Mapping[str, Any] = self.doc["paths"]
        order = [p for p in _list(self.doc.get(wire.ORDER_PATHS)) if isinstance(p, str) and p in paths]
        order += [p for p in paths if p not in order]
        endpoints = []
        for path in order:
            item = paths[path] or {}
            operation, socket = item.get("post"), item.get(wire.PROTOCOL_KEY)
            if path in SKIPPED_PATHS or "{" in path:
                continue
            if isinstance(socket, Mapping) and socket.get("type") in (wire.REALTIME, wire.WEBSOCKET):
                self.where = [f"{socket['type']} {path}"]
                endpoints.append(self.socket(path, socket, operation or {}))
            elif operation:
                self.where = [f"POST {path}"]
                endpoints.append(self.endpoint(path, operation))
            elif item.get("get"):
                self.where = [f"GET {path}"]
                endpoints.append(replace(self.endpoint(path, item["get"]), method="GET"))
        self.where = []
        info = self.doc.get("info") or {}
        return AppSchema(str(info.get("title", "")), str(info.get("version", "")), tuple(endpoints))

    def endpoint(self, path: str, op: Mapping[str, Any]) -> Endpoint:
        fields: list[Field] = []
        content = ((op.get("requestBody") or {}).get("content")) or {}
        body_schema = (content.get("application/json") or {}).get("schema")
        form = "" if body_schema is not None else next((kind for kind in FORM_TYPES if kind in content), "")
        if form:  # fields of a form (FastAPI's Form and UploadFile): sent as the form asks
            body_schema = (content.get(form) or {}).get("schema")
        if body_schema is not None:
            body = self.shape(body_schema)
            if body.kind == "object" and body.fields:
                fields += body.fields
            elif not _is_empty_object(self.resolve(body_schema)):
                required = bool((op.get("requestBody") or {}).get("required"))
                fields.append(Field("body", body, title="Body", required=required, location="value"))
        for param in op.get("parameters") or []:
            param = self.resolve(param)
            if param.get("in") == "query" and not _hidden(param.get("schema") or {}):
                fields.append(
                    self.field(
                        param["name"],
                        param.get("schema") or {},
                        bool(param.get("required")),
                        location="query",
                        outer=param,
                    )
                )
        return Endpoint(
            path=path,
            summary=str(op.get("summary", "")),
            description=str(op.get("description", "")),
            fields=tuple(fields),
            output=self.output(op),
            streaming=wire.is_stream_path(path) or _produces(op, wire.EVENT_STREAM),
            content_type=form,
        )

    def socket(self, path: str, protocol: Mapping[str, Any], op: Mapping[str, Any]) -> Endpoint:
        """A websocket endpoint: its message model and output model from the POST operation fal adds to
        describe them; without a message model, a message is free-form JSON (realtime) or text."""
        realtime = protocol["type"] == wire.REALTIME
        endpoint = self.endpoint(path, op)
        message = Shape() if realtime else Shape(kind="string", multiline=True)
        name = str(protocol.get("operationId") or path)
        return replace(
            endpoint,
            summary=endpoint.summary or f"{'Realtime' if realtime else 'WebSocket'} endpoint: {name}",
            fields=endpoint.fields or (Field("message", message, title="Message", required=True, location="value"),),
            streaming=False,
            protocol=protocol["type"],
            realtime_mode=str(protocol.get("realtimeMode") or ""),
            content_type=str(protocol.get("contentType") or (wire.REALTIME_CONTENT_TYPE if realtime else "")),
        )

    def output(self, op: Mapping[str, Any]) -> Shape | None:
        responses = op.get("responses") or {}
        ok = responses.get("200") or responses.get(200) or {}
        content = self.resolve(ok).get("content") or {}
        schema = (content.get("application/json") or {}).get("schema")
        return None if schema is None else self.shape(schema)

    # -- shapes -----------------------------------------------------------------------------
    def resolve(self, node: Any) -> Any:
        """Follow ``$ref`` chains of a node that is only a reference (for parameters, responses)."""
        seen = set()
        while isinstance(node, Mapping) and "$ref" in node and node["$ref"] not in seen:
            seen.add(node["$ref"])
            node = self.pointer(node["$ref"])
        return node

    def pointer(self, ref: str) -> Any:
        if not ref.startswith("#"):
            raise SchemaError(f"Cannot resolve {ref!r}: only references inside the document (#/...) are supported.")
        node: Any = self.doc
        for part in ref[1:].lstrip("/").split("/") if ref != "#" else []:
            part = part.replace("~1", "/").replace("~0", "~")
            try:
                node = node[int(part)] if isinstance(node, list) else node[part]
            except (KeyError, IndexError, ValueError, TypeError):
                raise SchemaError(f"The document has no {ref!r} (a $ref points at nothing).") from None
        return node

    def shape(self, schema: Any) -> Shape:
        if schema is True or schema is None or schema == {}:
            return Shape()
        if schema is False:
            return Shape(kind="null")
        if not isinstance(schema, Mapping):
            raise SchemaError(f"At {self.place()}: a schema must be an object or a boolean, not {schema!r:.80}.")
        if self.depth >= MAX_DEPTH:
            return Shape(recursive="nested too deep")
        self.depth += 1
        try:
            return self._shape(schema)
        finally:
            self.depth -= 1

    def _shape(self, schema: Mapping[str, Any]) -> Shape:
        if "$ref" in schema:
            target = self.ref(schema["$ref"])
            siblings = {k: v for k, v in schema.items() if k != "$ref"}
            return self.refine(target, siblings) if siblings else target
        if "allOf" in schema:
            return self.shape(self.merge(schema))
        for key in ("anyOf", "oneOf"):
            if key in schema:
                return self.union(schema[key], {k: v for k, v in schema.items() if k != key})
        types = schema.get("type")
        if isinstance(types, list):
            rest = {k: v for k, v in schema.items() if k != "type"}
            return self.union([{**rest, "type": t} for t in types], {})
        return self.plain(schema)

    def ref(self, ref: str) -> Shape:
        if ref in self.done:
            return self.done[ref]
        if ref in self.stack:
            return Shape(recursive=ref.rsplit("/", 1)[-1])
        self.stack.append(ref)
        try:
            shape = self.shape(self.pointer(ref))
        finally:
            self.stack.pop()
        self.done[ref] = shape
        return shape

    def refine(self, target: Shape, siblings: Mapping[str, Any]) -> Shape:
        """A referenced shape with the keywords written next to the ``$ref`` (3.1) applied."""
        changes = {k: v for k, v in _keywords(siblings).items() if v != getattr(_PLAIN, k)}
        if "constraints" in changes:
            changes["constraints"] = {**target.constraints, **changes["constraints"]}
        if siblings.get("nullable"):
            changes["nullable"] = True
        return replace(target, **changes) if changes else target

    def merge(self, schema: Mapping[str, Any], seen: frozenset[str] = frozenset()) -> dict[str, Any] | bool:
        """``allOf`` as one schema: properties (in member order), required and keywords of every
        member together; the keywords beside ``allOf`` win. A ``true`` member adds nothing, a
        ``false`` one makes the whole unsatisfiable (False); a member met again (a cycle) adds nothing."""
        merged: dict[str, Any] = {"properties": {}, "required": [], wire.ORDER_PROPERTIES: []}
        for member in [*_list(schema["allOf"]), {k: v for k, v in schema.items() if k != "allOf"}]:
            while isinstance(member, Mapping) and "$ref" in member:
                ref = member["$ref"]
                member, seen = ({}, seen) if ref in seen else (self.pointer(ref), seen | {ref})
            if member is True:
                continue
            if member is False:
                return False
            if not isinstance(member, Mapping):
                raise SchemaError(f"At {self.place()}: an allOf member must be a schema, not {member!r:.80}.")
            if "allOf" in member:
                member = self.merge(member, seen)
                if member is False:
                    return False
            for key, value in member.items():
                if key in ("properties", "required", wire.ORDER_PROPERTIES):
                    merged[key] = {**merged[key], **value} if key == "properties" else [*merged[key], *value]
                else:
                    merged[key] = value
        return merged

    def union(self, members: Iterable[Any], outer: Mapping[str, Any]) -> Shape:
        shapes = [self.shape(m) for m in members]
        nullable = any(s.kind == "null" for s in shapes)
        shapes = [s for s in shapes if s.kind != "null"]
        if not shapes:
            return Shape(kind="null", nullable=True)
        if len(shapes) == 1:
            shape = shapes[0]
        elif all(s.enum for s in shapes) and len({s.kind for s in shapes}) == 1:
            shape = replace(shapes[0], enum=tuple(v for s in shapes for v in s.enum))
        elif any(s.kind == "any" for s in shapes):
            shape = Shape()
        else:
            shape = Shape(kind="union", variants=tuple(shapes))
        if nullable and not shape.nullable:
            shape = replace(shape, nullable=True)
        return self.refine(shape, outer) if outer else shape

    def plain(self, schema: Mapping[str, Any]) -> Shape:
        kind = schema.get("type") or _guess_kind(schema)
        enum = (
            tuple(_list(schema.get("enum"))) if "enum" in schema else ((schema["const"],) if "const" in schema else ())
        )
        nullable = bool(schema.get("nullable"))
        if None in enum:
            enum, nullable = tuple(v for v in enum if v is not None), True
        shape = Shape(
            kind=_PLAIN_KINDS.get(kind, "any"),
            nullable=nullable,
            title=str(schema.get("title", "")),
            enum=enum,
            **_keywords(schema),
        )
        if shape.kind == "array":
            items = schema.get("items", {})
            if isinstance(items, list):  # OpenAPI 3.0 tuples: edit as JSON
                return replace(shape, kind="any")
            return replace(shape, items=self.shape(items))
        if shape.kind == "object":
            return replace(shape, fields=self.properties(schema))
        return shape

    def properties(self, schema: Mapping[str, Any]) -> tuple[Field, ...]:
        props: Mapping[str, Any] = schema.get("properties") or {}
        order = [p for p in schema.get(wire.ORDER_PROPERTIES, []) if p in props]
        order += [p for p in props if p not in order]
        required = set(schema.get("required") or [])
        return tuple(self.field(name, props[name], name in required) for name in order if not _hidden(props[name]))

    def field(
        self,
        name: str,
        schema: Any,
        required: bool,
        *,
        location: Location = "body",
        outer: Mapping[str, Any] | None = None,
    ) -> Field:
        if not isinstance(name, str):
            raise SchemaError(f"At {self.place()}: a field name must be a string, not {name!r:.80}.")
        self.where.append(name)
        schema = schema if isinstance(schema, Mapping) else {}
        resolved = self.resolve(schema) if "$ref" in schema else {}
        meta = {**resolved, **schema} if isinstance(resolved, Mapping) else dict(schema)
        meta.update({k: v for k, v in (outer or {}).items() if k in ("description", "example", "examples")})
        shape = _by_name(name, self.shape(schema))
        examples = meta.get("examples")
        if isinstance(examples, Mapping):  # OpenAPI 3.0 parameter examples: {name: {"value": ...}}
            examples = [e.get("value") for e in examples.values() if isinstance(e, Mapping) and "value" in e]
        if not isinstance(examples, list):
            examples = [meta["example"]] if "example" in meta else []
        ui = _mapping(meta.get("ui"))
        title = str(meta.get("title", ""))
        if "$ref" in schema and "title" not in schema:
            title = ""  # a model's title ("Size") is not the field's label
        self.where.pop()
        return Field(
            name=name,
            shape=shape,
            title=title,
            description=str(meta.get("description", "")),
            required=required,
            default=meta.get("default", MISSING),
            examples=tuple(examples),
            important=bool(ui.get("important")),
            location=location,
        )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _keywords(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The constraint and hint keywords of a schema, as :class:`Shape` arguments."""
    ui = _mapping(schema.get("ui"))
    fmt = str(schema.get("format", ""))
    low, high = _bound(schema, "minimum", "exclusiveMinimum"), _bound(schema, "maximum", "exclusiveMaximum")
    lowest, highest = next((b for b in low if b is not None), None), next((b for b in high if b is not None), None)
    if lowest is not None and highest is not None and lowest > highest:
        low = high = (None, None)  # no value fits: leave the verdict to the app
    min_length, max_length = _ordered(_count(schema.get("minLength")), _count(schema.get("maxLength")))
    min_items, max_items = _ordered(_count(schema.get("minItems")), _count(schema.get("maxItems")))
    multiple_of = _number(schema.get("multipleOf"))
    pattern = schema.get("pattern")
    return dict(
        format=fmt,
        multiline=fmt in ("textarea", "multiline") or (max_length or 0) > _LONG_TEXT,
        media=ui.get("field") if ui.get("field") in MEDIA_KINDS else "file" if _uploaded(schema) else "",
        minimum=low[0],
        exclusive_minimum=low[1],
        maximum=high[0],
        exclusive_maximum=high[1],
        multiple_of=multiple_of if multiple_of and multiple_of > 0 else None,
        min_length=min_length,
        max_length=max_length,
        pattern=pattern if isinstance(pattern, str) else None,
        min_items=min_items,
        max_items=max_items,
        constraints=dict(schema["x-fal"]) if isinstance(schema.get("x-fal"), Mapping) else {},
    )


def _uploaded(schema: Mapping[str, Any]) -> bool:
    """A file a form uploads: OpenAPI 3.0's ``format: binary``, 3.1's ``contentMediaType``."""
    return schema.get("type") == "string" and (schema.get("format") == "binary" or "contentMediaType" in schema)


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else []


def _number(value: Any) -> float | None:
    """A usable bound: a finite number a widget can show (JavaScript's safe range), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value if math.isfinite(value) and abs(value) <= MAX_BOUND else None


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_BOUND else None


def _ordered(low: int | None, high: int | None) -> tuple[int | None, int | None]:
    return (None, None) if low is not None and high is not None and low > high else (low, high)


def _guess_kind(schema: Mapping[str, Any]) -> str:
    if "properties" in schema or "additionalProperties" in schema:
        return "object"
    if "items" in schema:
        return "array"
    values = _list(schema.get("enum")) or ([schema["const"]] if "const" in schema else [])
    kinds = {_json_kind(v) for v in values if v is not None}
    return kinds.pop() if len(kinds) == 1 else "any"


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "any"


def _bound(schema: Mapping[str, Any], inclusive: str, exclusive: str) -> tuple[float | None, float | None]:
    """(inclusive, exclusive) bound; OpenAPI 3.0 writes ``exclusiveMinimum: true`` beside ``minimum``."""
    value, flag = _number(schema.get(inclusive)), schema.get(exclusive)
    if isinstance(flag, bool):
        return (None, value) if flag else (value, None)
    return value, _number(flag)


def _hidden(schema: Any) -> bool:
    ui = schema.get("ui") if isinstance(schema, Mapping) else None
    return isinstance(ui, Mapping) and bool(ui.get("hidden"))


def _is_empty_object(schema: Any) -> bool:
    """A model without properties (``class Input(BaseModel): pass``): its body is ``{}``."""
    return (
        isinstance(schema, Mapping)
        and schema.get("type") == "object"
        and not schema.get("properties")
        and not schema.get("additionalProperties")
    )


def _produces(op: Mapping[str, Any], media_type: str) -> bool:
    ok = (op.get("responses") or {}).get("200") or {}
    return media_type in (ok.get("content") or {})


def _by_name(name: str, shape: Shape) -> Shape:
    """fal's older convention: ``*image_url`` / ``*audio_url`` / ... strings are media inputs;
    prose-like names (``prompt``, ``negative_prompt``, ``text``) are long text."""
    target = shape.items if shape.kind == "array" and shape.items is not None else shape
    if target.kind != "string" or target.enum or target.media:
        return shape
    base = name[:-1] if shape is not target and name.endswith("s") else name
    media = next((m for suffix, m in _NAME_MEDIA if base.endswith(suffix)), "")
    if media:
        refined = replace(target, media=media)
    elif shape is target and _PROSE_NAMES.search(name) and (target.max_length or _LONG_TEXT + 1) > 64:
        refined = replace(target, multiline=True)
    else:
        return shape
    return replace(shape, items=refined) if shape is not target else refined
