"""Form values checked against a schema's shapes, in the kernel, before anything is sent; a server's
422 detail turned into the same issues; and the minimal input (optional values at their default
left out) that snippets and history show."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .schema import Field, Shape


@dataclass(frozen=True)
class Invalid:
    """A value a widget could not turn into JSON (e.g. unparsable JSON text), with the reason."""

    text: str
    message: str


Issue = tuple[tuple[str | int, ...], str]  # (path to the field, message)


def validate(shape: Shape, value: Any, path: tuple[str | int, ...] = ()) -> list[Issue]:
    """Every problem of ``value`` against ``shape``, each with the path of the field it concerns."""
    if isinstance(value, Invalid):
        return [(path, value.message)]
    if value is None:
        return [] if shape.nullable or shape.kind in ("null", "any") else [(path, "is required (it cannot be null)")]
    kind = shape.kind
    if shape.enum:
        if value not in shape.enum or (isinstance(value, bool) != any(isinstance(v, bool) for v in shape.enum)):
            return [(path, "must be one of " + ", ".join(map(_show, shape.enum)))]
        return []
    if kind == "union":
        found = [validate(v, value, path) for v in shape.variants]
        if any(not issues for issues in found):
            return []
        typed = [issues for v, issues in zip(shape.variants, found, strict=True) if _fits(v, value)]
        return typed[0] if typed else [(path, "must be " + " or ".join(v.label() for v in shape.variants))]
    if kind == "any":
        return []
    check = _TYPE_CHECKS.get(kind)
    if check and not check[0](value):
        return [(path, check[1])]
    if kind == "string":
        return _check_string(shape, value, path)
    if kind in ("integer", "number"):
        return _check_number(shape, value, path)
    if kind == "array":
        issues = _check_count(shape, value, path)
        if shape.items is not None:
            for i, item in enumerate(value):
                issues += validate(shape.items, item, (*path, i))
        return issues
    if kind == "object":
        return validate_object(shape.fields, value, path)
    return []


def validate_object(fields: Iterable[Field], value: Mapping[str, Any], path: tuple[str | int, ...] = ()) -> list[Issue]:
    issues: list[Issue] = []
    for f in fields:
        if f.name in value:
            issues += validate(f.shape, value[f.name], (*path, f.name))
        elif f.required:
            issues.append(((*path, f.name), "is required"))
    return issues


def _fits(shape: Shape, value: Any) -> bool:
    check = _TYPE_CHECKS.get(shape.kind)
    return check is None or check[0](value)


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)


def _is_int(value: Any) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, float) and value.is_integer())


_TYPE_CHECKS = {
    "string": (lambda v: isinstance(v, str), "must be text"),
    "integer": (_is_int, "must be a whole number"),
    "number": (
        lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
        "must be a number",
    ),
    "boolean": (lambda v: isinstance(v, bool), "must be true or false"),
    "array": (lambda v: isinstance(v, list), "must be a list"),
    "object": (lambda v: isinstance(v, Mapping), "must be an object"),
    "null": (lambda v: v is None, "must be null"),
}


def _check_string(shape: Shape, value: str, path: tuple) -> list[Issue]:
    if shape.min_length is not None and len(value) < shape.min_length:
        return [(path, "is required" if not value else f"must be at least {shape.min_length} characters")]
    if shape.max_length is not None and len(value) > shape.max_length:
        return [(path, f"must be at most {shape.max_length} characters (it has {len(value)})")]
    if shape.pattern and not _matches(shape.pattern, value):
        return [(path, f"must match the pattern {shape.pattern}")]
    return []


def _matches(pattern: str, value: str) -> bool:
    try:
        return re.search(pattern, value) is not None
    except re.error:  # an ECMA-only pattern Python cannot compile: leave it to the server
        return True


def _check_number(shape: Shape, value: float, path: tuple) -> list[Issue]:
    if shape.minimum is not None and value < shape.minimum:
        return [(path, f"must be at least {_num(shape.minimum)}")]
    if shape.exclusive_minimum is not None and value <= shape.exclusive_minimum:
        return [(path, f"must be greater than {_num(shape.exclusive_minimum)}")]
    if shape.maximum is not None and value > shape.maximum:
        return [(path, f"must be at most {_num(shape.maximum)}")]
    if shape.exclusive_maximum is not None and value >= shape.exclusive_maximum:
        return [(path, f"must be less than {_num(shape.exclusive_maximum)}")]
    if shape.multiple_of and not math.isclose(value / shape.multiple_of, round(value / shape.multiple_of)):
        return [(path, f"must be a multiple of {_num(shape.multiple_of)}")]
    return []


def _check_count(shape: Shape, value: list, path: tuple) -> list[Issue]:
    if shape.min_items is not None and len(value) < shape.min_items:
        return [(path, f"needs at least {shape.min_items} item{'s' * (shape.min_items != 1)}")]
    if shape.max_items is not None and len(value) > shape.max_items:
        return [(path, f"takes at most {shape.max_items} item{'s' * (shape.max_items != 1)}")]
    return []


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def issues_from_422(detail: Any) -> list[Issue]:
    """A server's pydantic/FastAPI validation ``detail`` as issues on form paths (``body``/``query``
    prefixes dropped); a detail that is not a list becomes one issue on the whole form."""
    if not isinstance(detail, list):
        return [((), detail if isinstance(detail, str) else str(detail))] if detail else []
    issues: list[Issue] = []
    for item in detail:
        if not isinstance(item, Mapping):
            issues.append(((), str(item)))
            continue
        loc = list(item.get("loc") or [])
        if loc and loc[0] in ("body", "query"):
            loc = loc[1:]
        issues.append((tuple(loc), str(item.get("msg", "is invalid"))))
    return issues


# -- the minimal input ----------------------------------------------------------------------------


def prune(shape: Shape, value: Any) -> Any:
    """``value`` without the optional object properties that equal their default (recursively):
    the smallest input the server reads the same way. Snippets and history show this form."""
    if shape.kind == "union":
        match = next((v for v in shape.variants if not validate(v, value)), None)
        return prune(match, value) if match is not None else value
    if shape.kind == "array" and shape.items is not None and isinstance(value, list):
        return [prune(shape.items, item) for item in value]
    if shape.kind != "object" or not shape.fields or not isinstance(value, Mapping):
        return value
    known = {f.name: f for f in shape.fields}
    out = {}
    for name, item in value.items():
        f = known.get(name)
        if f is None:
            out[name] = item
            continue
        item = prune(f.shape, item)
        if not f.required and f.has_default and same(item, prune(f.shape, f.default)):
            continue
        out[name] = item
    return out


def same(a: Any, b: Any) -> bool:
    """JSON equality: ``1 == 1.0`` but ``True != 1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if a != b:
        return False
    return type(a) is type(b) or (isinstance(a, (int, float)) and isinstance(b, (int, float)))
