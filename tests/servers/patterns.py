"""The checks of servers.ipynb: deploy its apps at once, call each one the ways a user does (fal_client,
the CLI, the Playground; Docker for some), and keep the outcome of each in one table.

A cell of the table is ``✓`` (the answer was the expected one), ``✗ <error>``, or ``— <what to use
instead>`` where the way of calling does not apply to the server (fal_client sends a JSON POST).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

COLUMNS = ("Deploy, first try", "fal_client", "CLI", "Playground", "Docker")
TIMEOUT = 120


@dataclass
class Call:
    """One call of an app and the answer expected: JSON (equal) or text (contained)."""

    path: str
    expect: Any
    arguments: Any = None
    method: str = "POST"
    query: dict[str, str] = field(default_factory=dict)
    form: dict[str, str] = field(default_factory=dict)
    files: dict[str, tuple[str, bytes, str]] = field(default_factory=dict)

    @property
    def plain(self) -> bool:
        """Not a JSON POST: fal's protocol does not carry it."""
        return self.method != "POST" or bool(self.query or self.form or self.files) or self.arguments is None

    def matches(self, answer: Any) -> bool:
        if isinstance(self.expect, str):
            return self.expect in (answer if isinstance(answer, str) else json.dumps(answer))
        return answer == self.expect


class NotApplicable(Exception):
    """This way of calling does not fit the server; the message says what to use."""


class Table:
    def __init__(self, patterns: Iterable[str]):
        self.rows: dict[str, dict[str, str]] = {p: {c: "" for c in COLUMNS} for p in patterns}

    def check(self, pattern: str, column: str, action: Callable[..., str | None], *args: Any) -> None:
        """Record ``action(*args)``: ✓ (with the note it returns), — (not applicable), or ✗."""
        try:
            note = action(*args)
            self.rows[pattern][column] = "✓" + (f" {note}" if note else "")
        except NotApplicable as exc:
            self.rows[pattern][column] = f"— {exc}"
        except Exception as exc:  # the table shows it; the test fails on it
            self.rows[pattern][column] = f"✗ {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"

    def skip(self, pattern: str, column: str, why: str) -> None:
        self.rows[pattern][column] = f"— {why}"

    def failures(self) -> list[str]:
        return [f"{p} / {c}: {v}" for p, row in self.rows.items() for c, v in row.items() if not v or v[0] == "✗"]

    def markdown(self, kinds: dict[str, str]) -> str:
        lines = ["| pattern | kind | " + " | ".join(COLUMNS) + " |", "|" + "---|" * (len(COLUMNS) + 2)]
        for pattern, row in self.rows.items():
            cells = [row[c].replace("|", "\\|") for c in COLUMNS]
            lines.append(f"| `{pattern}` | {kinds[pattern]} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def save(self, path: str | Path, kinds: dict[str, str]) -> None:
        Path(path).write_text(json.dumps({"rows": self.rows, "markdown": self.markdown(kinds)}, indent=2))


def deploy_all(names: Iterable[str], target: str = "local") -> dict[str, Any]:
    """Deploy the apps at once (the gateway builds their environments side by side): name → its
    Deployment, or the error its deploy raised."""
    from fal_notebook import deploy

    def one(name: str) -> Any:
        try:
            return deploy(name, target=target, progress=lambda _line: None)
        except Exception as exc:  # kept for the table
            return exc

    names = list(names)
    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(names, pool.map(one, names), strict=True))


def deployed(outcome: Any) -> str | None:
    if isinstance(outcome, Exception):
        raise outcome
    if outcome.status != "ready":
        raise RuntimeError(f"{outcome.name} is {outcome.status}")
    return None


# -- the ways of calling ---------------------------------------------------------------------------
def with_fal_client(name: str, call: Call) -> None:
    """The official client (after %fal_env), as fal's docs call an app: subscribe, through the queue."""
    if call.files:
        raise NotApplicable("fal_client sends JSON, not files: `fal-notebook call --file`, `.request(files=...)`")
    if call.plain:
        raise NotApplicable(f"fal_client POSTs JSON: `fal-notebook call --method {call.method}`, `.request(...)`")
    import fal_client

    answer = fal_client.subscribe(f"local/{name}", arguments=call.arguments, path=call.path)
    _expect(call, answer)


def with_cli(name: str, call: Call) -> None:
    """``fal-notebook call`` in a process of its own."""
    argv = [str(Path(sys.executable).parent / "fal-notebook"), "call", f"local/{name}", "--path", call.path]
    if call.arguments is not None:
        argv += ["--input", json.dumps(call.arguments)]
    if call.plain:
        argv += ["--method", call.method]
    argv += [f"--query={k}={v}" for k, v in call.query.items()]
    argv += [f"--form={k}={v}" for k, v in call.form.items()]
    folder = Path(tempfile.mkdtemp())
    for field_name, (file_name, content, _kind) in call.files.items():
        (folder / file_name).write_bytes(content)
        argv += [f"--file={field_name}={folder / file_name}"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip() or done.stdout.strip())
    try:
        answer = json.loads(done.stdout)
    except ValueError:
        answer = done.stdout
    _expect(call, answer)


def with_playground(name: str, call: Call) -> str:
    """The Playground: the app's typed form for the path if its schema has one, else the form for
    any request; Run, and the output it shows."""
    from fal_notebook.widgets.fields import named_data_uri
    from fal_notebook.widgets.playground import Playground

    pg = Playground(name)
    typed = [e for e in pg.schema.endpoints if e.path == call.path and e.method == call.method]
    files = {k: named_data_uri(content, kind, file_name) for k, (file_name, content, kind) in call.files.items()}
    if typed and typed[0].protocol == "http":
        pg.select(call.path)
        whole = [f.name for f in typed[0].fields if f.location == "value"]  # a body that is one JSON value
        body = {whole[0]: call.arguments} if whole else (call.arguments or {})
        values = {**body, **call.query, **call.form, **files}
        used = "typed form"
    else:
        pg.select("*")
        values = {"method": call.method, "path": call.path}
        values |= {"query": "&".join(f"{k}={v}" for k, v in call.query.items())} if call.query else {}
        values |= {"json": call.arguments} if call.arguments is not None else {}
        values |= {"form": call.form} if call.form else {}
        values |= {"files": list(files.values()), "file_field": next(iter(files))} if files else {}
        used = "request form" + (" (no OpenAPI schema)" if pg.schema_note else "")
    pg.set_values(values)
    answer = pg.submit().result(timeout=TIMEOUT)
    _expect(call, answer)
    pg.close()
    return used


def with_client(name: str, call: Call) -> None:
    """fal-notebook's client: ``run`` for fal's protocol, ``request`` for anything else."""
    from fal_notebook import connect

    client = connect(f"local/{name}")
    if not call.plain:
        _expect(call, client.run(call.arguments, path=call.path, timeout=TIMEOUT))
        return
    response = client.request(
        call.method, call.path, params=call.query or None, json=call.arguments, data=call.form or None,
        files=list(call.files.items()) or None, timeout=TIMEOUT,
    )  # fmt: skip
    response.raise_for_status()
    _expect(call, response.json() if "json" in response.headers.get("content-type", "") else response.text)


def on_docker(outcome: Any, name: str, call: Call) -> None:
    """Deployed to Docker (``outcome`` of deploy_all), and answering through the same gateway."""
    deployed(outcome)
    if outcome.target != "docker":
        raise RuntimeError(f"{name} serves on {outcome.target}")
    with_client(name, call)


def _expect(call: Call, answer: Any) -> None:
    if not call.matches(answer):
        raise AssertionError(f"expected {call.expect!r}, got {str(answer)[:200]!r}")
