"""The Playground's history: one record per call, kept in memory and persisted per app (the last
``limit`` calls) under the state directory, so a new Playground of the same app shows them again.

The file lives in ``FAL_NOTEBOOK_HOME`` next to the gateway's state (``gateway/``) rather than inside
it: the kernel writes it, not the gateway process, and apps on fal have a history too."""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import ConfigError
from ..secrets import redact
from ..state import home, read_json, write_json_atomic

_MAX_PERSISTED_TEXT = 64 * 1024


@dataclass
class Call:
    """One call made from the Playground."""

    endpoint: str
    arguments: dict[str, Any]
    status: str = "RUNNING"  # RUNNING | COMPLETED | FAILED | CANCELLED
    request_id: str = ""
    started: float = field(default_factory=time.time)
    duration: float | None = None
    output: Any = None
    error: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)

    def finish(self, status: str, *, output: Any = None, error: str = "") -> None:
        self.status, self.output, self.error = status, output, error
        self.duration = time.time() - self.started


class HistoryStore:
    """``<FAL_NOTEBOOK_HOME>/history/<endpoint id>.json``: the last ``limit`` calls of one app."""

    def __init__(self, app: str, limit: int = 50):
        self.path = home() / "history" / f"{re.sub(r'[^A-Za-z0-9._-]+', '_', app) or 'app'}.json"
        self.limit = limit

    def load(self) -> list[Call]:
        try:
            records = read_json(self.path, [])
        except (ConfigError, OSError):
            return []  # a damaged history is not worth failing a Playground for
        if not isinstance(records, list):
            return []
        known = Call.__dataclass_fields__
        return [Call(**{k: v for k, v in r.items() if k in known}) for r in records if isinstance(r, dict)]

    def add(self, call: Call) -> None:
        """Append one call to what the file holds now (other Playgrounds of the app may have added some)."""
        self.save([*self.load(), call])

    def save(self, calls: list[Call]) -> None:
        records = [compact(asdict(c)) for c in calls[-self.limit :]]
        write_json_atomic(self.path, json.loads(redact(json.dumps(records))))


def compact(value: Any) -> Any:
    """``value`` with very long strings (inline ``data:`` files) replaced by a short note."""
    if isinstance(value, dict):
        return {k: compact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [compact(v) for v in value]
    if isinstance(value, str) and len(value) > _MAX_PERSISTED_TEXT:
        head = value.split(",", 1)[0] if value.startswith("data:") else value[:40]
        return f"{head}… (not kept: {len(value)} characters)"
    return value
