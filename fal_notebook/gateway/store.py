"""The gateway's durable state in SQLite: queued requests, their results and logs, deployed apps.

Durability: a request is committed before its submission is answered, and a result before anyone
is told the request completed, so neither is lost when the gateway process is killed (WAL journal:
a commit is in the operating system's hands when it returns). Changes that acknowledge nothing
(a request started, a log line) join one transaction that commits at the next turn of the event
loop, or with the next change that must be durable, whichever comes first.

Bodies are written once and dropped when their request completes. A body of up to INLINE_BODY
bytes (the common case: a JSON input) goes into a table of its own with the request's row, in the
same transaction; a larger one into a file of its own beside the database (``save_body``, which
needs no database and so runs off the event loop), so a large body never passes through SQLite.
A request's row changes a few times; its body never. ``get`` reads a request's state without the
bodies; ``body`` and ``result`` read those.

What leaves the store is typed and frozen: a ``Request`` (a request's state), an ``Answer`` (a
completed request's result), an ``AppRecord`` (what a restarted gateway restores of an app). No
row of SQLite's leaves this module.

The gateway is the database's only writer, so the store also keeps in memory what it wrote of the
requests that are live (queued or running) and of the last ones that completed, with their answers
when small, and each app's queue order: the questions asked per request (its state, its place in
the queue, its result once it completed) are answered without a query. The database stays what
survives the process; a request not in memory is read from it.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import os
import sqlite3
import sys
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from ..statuses import AppStatus
from ..wire import RequestStatus
from .admin_api import DeploySpec
from .retries import Policy

#: How long results stay retrievable, as on fal.
RESULT_TTL = 3600.0
#: Logs returned per status call (a moving window, as on fal; clients de-duplicate).
LOG_WINDOW = 1000
SCHEMA_VERSION = 2
#: Bodies up to this size are kept in the database, larger ones in files.
INLINE_BODY = 64 * 1024
#: A body file that no queued request names is removed after this many seconds (its request was
#: refused, or the gateway died between the file and the row).
ORPHAN_BODY_AGE = 60.0
#: Completed requests kept in memory (the latest), with their answers up to RECENT_ANSWER bytes.
RECENT = 1024
RECENT_ANSWER = 64 * 1024

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS requests (
    seq INTEGER PRIMARY KEY,
    id TEXT UNIQUE NOT NULL,
    app TEXT NOT NULL,
    path TEXT NOT NULL,
    headers TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    runner TEXT,
    created REAL NOT NULL,
    started REAL,
    completed REAL,
    start_deadline REAL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    result_status INTEGER,
    result_type TEXT,
    error TEXT,
    error_type TEXT,
    inference_time REAL,
    webhook TEXT,
    webhook_attempts INTEGER NOT NULL DEFAULT 0,
    webhook_outcome TEXT,
    result_body BLOB
);
CREATE INDEX IF NOT EXISTS requests_queued ON requests (app, priority, seq) WHERE status = '{RequestStatus.IN_QUEUE}';
CREATE INDEX IF NOT EXISTS requests_running ON requests (seq) WHERE status = '{RequestStatus.IN_PROGRESS}';
CREATE INDEX IF NOT EXISTS requests_completed ON requests (completed);
CREATE TABLE IF NOT EXISTS bodies (
    seq INTEGER PRIMARY KEY,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS logs (
    id INTEGER PRIMARY KEY,
    request_id TEXT NOT NULL,
    timestamp TEXT NOT NULL,
    level TEXT NOT NULL,
    source TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS logs_request ON logs (request_id, id);
CREATE TABLE IF NOT EXISTS apps (
    name TEXT PRIMARY KEY,
    record TEXT NOT NULL
);
"""
#: A request's state: every column but the bodies.
_STATE = (
    "seq, id, app, path, headers, priority, status, attempts, runner, created, started, completed, start_deadline,"
    " cancel_requested, result_status, result_type, error, error_type, inference_time, webhook, webhook_attempts,"
    " webhook_outcome"
)
#: (column, type) of ``requests`` added since schema version 2, for databases made before.
_ADDED_COLUMNS = (
    ("webhook", "TEXT"),
    ("webhook_attempts", "INTEGER NOT NULL DEFAULT 0"),
    ("webhook_outcome", "TEXT"),
)


@dataclass(frozen=True)
class Request:
    """A request's state (its bodies are read with ``Store.body`` and ``Store.result``)."""

    seq: int
    id: str
    app: str
    path: str  # the app's path, with its query string
    headers: Mapping[str, str]  # what the gateway keeps of the caller's headers (headers.kept_headers)
    priority: int  # 0 normal, 1 low
    status: RequestStatus
    attempts: int
    runner: str | None  # the runner working on it
    created: float
    started: float | None
    completed: float | None
    start_deadline: float | None  # X-Fal-Request-Timeout (wall clock)
    cancel_requested: bool
    result_status: int | None
    result_type: str | None
    error: str | None
    error_type: str | None
    inference_time: float | None
    webhook: str | None
    webhook_attempts: int
    webhook_outcome: str | None

    @classmethod
    def of(cls, row: sqlite3.Row) -> Request:
        values = {f.name: row[f.name] for f in fields(cls)}
        values.update(
            headers=json.loads(values["headers"]),
            status=RequestStatus(values["status"]),
            cancel_requested=bool(values["cancel_requested"]),
        )
        return cls(**values)


@dataclass(frozen=True)
class Answer:
    """A completed request's result: the app's (or the gateway's) status, body and content type."""

    status: int
    body: bytes
    content_type: str
    error_type: str | None = None


@dataclass(frozen=True)
class AppRecord:
    """What the gateway keeps of a deployed app, so that a restarted gateway restores it: its state,
    its serving revision, the spec that deploys it again (no secret values: their names only), and
    the retry settings of the requests a restart interrupts."""

    status: AppStatus = AppStatus.DEPLOYING
    error: str | None = None
    auth: str | None = None
    revision: int | None = None
    digest: str | None = None
    retry: Policy | None = None
    spec: DeploySpec | None = None
    secret_names: tuple[str, ...] = ()
    updated: float = 0.0

    def to_json(self) -> str:
        data: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        retry = self.retry
        data.update(
            spec=self.spec.public() if self.spec is not None else None,
            retry=None if retry is None else {"budgets": dict(retry.budgets), "skip": sorted(retry.skip)},
            secret_names=list(self.secret_names),
        )
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> AppRecord:
        """A record as saved (by this gateway or an earlier one: keys it lacks take their defaults)."""
        data = json.loads(text)
        known = {f.name for f in fields(cls)} & data.keys()
        values: dict[str, Any] = {name: data[name] for name in known}
        values["status"] = AppStatus(data.get("status", AppStatus.DEPLOYING))
        values["spec"] = DeploySpec(**data["spec"]) if data.get("spec") else None
        retry = data.get("retry") or None
        values["retry"] = retry and Policy(budgets=retry.get("budgets") or {}, skip=frozenset(retry.get("skip") or ()))
        values["secret_names"] = tuple(data.get("secret_names") or ())
        return cls(**values)


class Store:
    def __init__(self, path: Path):
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA busy_timeout=5000")
        _migrate(self.db)
        self.db.executescript(_SCHEMA)
        self._add_columns()
        self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        path.chmod(0o600)
        self.bodies = path.parent / "bodies"
        self.bodies.mkdir(mode=0o700, exist_ok=True)
        self._open = False  # a transaction holds changes that acknowledge nothing yet
        self._commit_soon: asyncio.Handle | None = None
        self._live: dict[str, Request] = {}  # requests not completed, as written (once written or read)
        self._recent: OrderedDict[str, tuple[Request, Answer | None]] = OrderedDict()  # the last completed
        self._queues: dict[str, list[tuple[int, int]]] = {}  # each app's queued requests: (priority, seq), in order
        for app, priority, seq in self.db.execute(
            f"SELECT app, priority, seq FROM requests WHERE status = '{RequestStatus.IN_QUEUE}' ORDER BY priority, seq"
        ):
            self._queues.setdefault(app, []).append((priority, seq))

    def _add_columns(self) -> None:
        """Columns added since a state directory's database was made."""
        present = {r["name"] for r in self.db.execute("PRAGMA table_info(requests)")}
        for column, kind in _ADDED_COLUMNS:
            if column not in present:
                self.db.execute(f"ALTER TABLE requests ADD COLUMN {column} {kind}")

    def close(self) -> None:
        self.commit()
        self.db.close()

    # -- transactions ------------------------------------------------------------------------
    def _write(self, sql: str, params: tuple[Any, ...] = (), *, durable: bool) -> sqlite3.Cursor:
        """Run a change; ``durable``: committed (with every change before it) when this returns."""
        if not self._open:
            self.db.execute("BEGIN")
            self._open = True
        cursor = self.db.execute(sql, params)
        if durable:
            self.commit()
        elif self._commit_soon is None:
            try:
                self._commit_soon = asyncio.get_running_loop().call_soon(self._commit_later)
            except RuntimeError:  # no event loop (tools, tests): nothing to batch with
                self.commit()
        return cursor

    def commit(self) -> None:
        if self._commit_soon is not None:
            self._commit_soon.cancel()
            self._commit_soon = None
        if self._open:
            self._open = False
            try:
                self.db.execute("COMMIT")
            except sqlite3.Error:
                self.db.execute("ROLLBACK")
                raise

    def _commit_later(self) -> None:
        self._commit_soon = None
        try:
            self.commit()
        except sqlite3.Error as exc:  # lost: changes that acknowledged nothing; the next durable one tells
            print(f"fal-notebook gateway: a deferred commit failed: {exc}", file=sys.stderr)

    # -- requests ----------------------------------------------------------------------------
    def save_body(self, request_id: str, body: bytes) -> None:
        """Write a body larger than INLINE_BODY to its file, durably, before its request's row (a
        crash leaves at most an unused file). Needs no database: run it off the event loop."""
        target = self.bodies / request_id
        partial = target.with_name(f".{request_id}.partial")
        with open(partial, "wb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, target)

    def add_request(
        self,
        request_id: str,
        app: str,
        path: str,
        headers: dict[str, str],
        *,
        body: bytes | None = None,
        priority: int = 0,
        start_deadline: float | None = None,
        webhook: str | None = None,
    ) -> None:
        """Store a submitted request, with its ``body`` (at most INLINE_BODY bytes), or without one
        when ``save_body`` wrote it; committed when this returns."""
        created = time.time()
        cursor = self._write(
            "INSERT INTO requests (id, app, path, headers, priority, status, created, start_deadline, webhook)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                request_id,
                app,
                path,
                json.dumps(headers),
                priority,
                RequestStatus.IN_QUEUE,
                created,
                start_deadline,
                webhook,
            ),
            durable=body is None,
        )
        seq = cursor.lastrowid
        assert seq is not None
        if body is not None:
            self._write("INSERT INTO bodies (seq, body) VALUES (?, ?)", (seq, body), durable=True)
        self._live[request_id] = Request(
            seq, request_id, app, path, dict(headers), priority, RequestStatus.IN_QUEUE, 0, None, created, None, None,
            start_deadline, False, None, None, None, None, None, webhook, 0, None,
        )  # fmt: skip
        bisect.insort(self._queues.setdefault(app, []), (priority, seq))

    def get(self, request_id: str) -> Request | None:
        """The request's state (no bodies: ``body`` and ``result`` read those)."""
        known = self._live.get(request_id) or self._recent.get(request_id, (None, None))[0]
        if known is not None:
            return known
        row = self.db.execute(f"SELECT {_STATE} FROM requests WHERE id = ?", (request_id,)).fetchone()
        if row is None:
            return None
        request = Request.of(row)
        if request.status != RequestStatus.COMPLETED:
            self._live[request_id] = request
        return request

    def body(self, request_id: str) -> bytes | None:
        """The body of a request not completed yet (None once it completed: its body went with it)."""
        row = self.db.execute(
            "SELECT body FROM bodies WHERE seq = (SELECT seq FROM requests WHERE id = ?)", (request_id,)
        ).fetchone()
        if row is not None:
            return row[0]
        try:
            return (self.bodies / request_id).read_bytes()
        except FileNotFoundError:
            return None

    def result(self, request_id: str) -> Answer | None:
        """A completed request's answer (None while it is not completed)."""
        if request_id in self._live:
            return None
        answer = self._recent.get(request_id, (None, None))[1]
        if answer is not None:
            return answer
        row = self.db.execute(
            "SELECT result_status, result_body, result_type, error_type FROM requests WHERE id = ? AND status = ?",
            (request_id, RequestStatus.COMPLETED),
        ).fetchone()
        return Answer(*row) if row is not None else None

    # (the statuses are spelled out in the queries below, as in the partial indexes they use)
    def queued(self, app: str) -> list[Request]:
        rows = self.db.execute(
            f"SELECT {_STATE} FROM requests WHERE status = '{RequestStatus.IN_QUEUE}' AND app = ?"
            " ORDER BY priority, seq",
            (app,),
        )
        return [Request.of(row) for row in rows]

    def in_progress(self) -> list[Request]:
        rows = self.db.execute(f"SELECT {_STATE} FROM requests WHERE status = '{RequestStatus.IN_PROGRESS}'")
        return [Request.of(row) for row in rows]

    def queue_length(self, app: str) -> int:
        return len(self._queues.get(app, ()))

    def queue_position(self, request: Request) -> int:
        """How many queued requests of the app go before this one."""
        return bisect.bisect_left(self._queues.get(request.app, []), (request.priority, request.seq))

    def start(self, request_id: str, attempts: int, runner: str) -> None:
        before, started = self.get(request_id), time.time()
        self._write(
            "UPDATE requests SET status = ?, attempts = ?, runner = ?, started = ? WHERE id = ?",
            (RequestStatus.IN_PROGRESS, attempts, runner, started, request_id),
            durable=False,
        )
        self._changed(before, status=RequestStatus.IN_PROGRESS, attempts=attempts, runner=runner, started=started)

    def requeue(self, request_id: str) -> None:
        """Back in the queue (its attempts so far are kept)."""
        before = self.get(request_id)
        self._write(
            "UPDATE requests SET status = ?, runner = NULL WHERE id = ?",
            (RequestStatus.IN_QUEUE, request_id),
            durable=False,
        )
        self._changed(before, status=RequestStatus.IN_QUEUE, runner=None)

    def _changed(self, before: Request | None, **changes: Any) -> None:
        """What is in memory of a request (``before``: as it was before its change was written) made
        what the database now has, its place in its app's queue too."""
        if before is None:
            return
        after = replace(before, **changes)
        place = (before.priority, before.seq)
        if before.status == RequestStatus.IN_QUEUE and after.status != RequestStatus.IN_QUEUE:
            queue = self._queues.get(before.app, [])
            index = bisect.bisect_left(queue, place)
            if index < len(queue) and queue[index] == place:
                del queue[index]
        elif after.status == RequestStatus.IN_QUEUE and before.status != RequestStatus.IN_QUEUE:
            bisect.insort(self._queues.setdefault(before.app, []), place)
        if before.id in self._live:
            self._live[before.id] = after
        elif before.id in self._recent:
            self._recent[before.id] = (after, self._recent[before.id][1])

    def cancel_requested(self, request_id: str) -> bool:
        request = self.get(request_id)
        return request is not None and request.cancel_requested

    def position(self, request_id: str) -> int:
        """The request's place in its app's queue (0: next, or not queued)."""
        request = self.get(request_id)
        return self.queue_position(request) if request is not None and request.status == RequestStatus.IN_QUEUE else 0

    def request_cancel(self, request_id: str) -> None:
        before = self.get(request_id)
        self._write("UPDATE requests SET cancel_requested = 1 WHERE id = ?", (request_id,), durable=True)
        self._changed(before, cancel_requested=True)

    def complete(
        self,
        request_id: str,
        status_code: int,
        body: bytes,
        content_type: str,
        *,
        error: str | None = None,
        error_type: str | None = None,
        inference_time: float | None = None,
    ) -> None:
        """Record the request's answer (its body goes); committed when this returns."""
        before, completed = self.get(request_id), time.time()
        inline = self._write(
            "DELETE FROM bodies WHERE seq = (SELECT seq FROM requests WHERE id = ?)", (request_id,), durable=False
        ).rowcount
        self._write(
            "UPDATE requests SET status = ?, completed = ?, result_status = ?, result_body = ?,"
            " result_type = ?, error = ?, error_type = ?, inference_time = ?, runner = NULL WHERE id = ?",
            (
                RequestStatus.COMPLETED,
                completed,
                status_code,
                body,
                content_type,
                error,
                error_type,
                inference_time,
                request_id,
            ),
            durable=True,
        )
        if not inline:  # its body was in a file
            (self.bodies / request_id).unlink(missing_ok=True)
        self._changed(
            before,
            status=RequestStatus.COMPLETED,
            completed=completed,
            result_status=status_code,
            result_type=content_type,
            error=error,
            error_type=error_type,
            inference_time=inference_time,
            runner=None,
        )
        request = self._live.pop(request_id, None)
        if request is not None:
            answer = Answer(status_code, body, content_type, error_type) if len(body) <= RECENT_ANSWER else None
            self._recent[request_id] = (request, answer)
            if len(self._recent) > RECENT:
                self._recent.popitem(last=False)

    def purge(self, older_than: float = RESULT_TTL) -> int:
        """Forget completed requests (and their logs) older than ``older_than`` seconds."""
        cutoff = time.time() - older_than
        rows = self.db.execute(  # a webhook still to deliver keeps its request
            "SELECT seq, id FROM requests WHERE completed < ? AND (webhook IS NULL OR webhook_outcome IS NOT NULL)",
            (cutoff,),
        ).fetchall()
        for row in rows:
            self._recent.pop(row["id"], None)
            self._live.pop(row["id"], None)
        for start in range(0, len(rows), 500):
            chunk = rows[start : start + 500]
            marks = ",".join("?" * len(chunk))
            self._write(f"DELETE FROM logs WHERE request_id IN ({marks})", tuple(r["id"] for r in chunk), durable=False)
            self._write(f"DELETE FROM bodies WHERE seq IN ({marks})", tuple(r["seq"] for r in chunk), durable=False)
            self._write(f"DELETE FROM requests WHERE seq IN ({marks})", tuple(r["seq"] for r in chunk), durable=False)
        self.commit()
        waiting = {
            r[0] for r in self.db.execute(f"SELECT id FROM requests WHERE status != '{RequestStatus.COMPLETED}'")
        }
        for file in self.bodies.iterdir():  # body files of requests that completed, or were never queued
            if file.name not in waiting and file.stat().st_mtime < time.time() - ORPHAN_BODY_AGE:
                file.unlink(missing_ok=True)
        return len(rows)

    # -- webhooks ----------------------------------------------------------------------------
    def webhook_attempt(self, request_id: str, attempt: int) -> None:
        """Attempt ``attempt`` of the request's webhook is about to be made (counted, durably, before it is)."""
        before = self.get(request_id)
        self._write("UPDATE requests SET webhook_attempts = ? WHERE id = ?", (attempt, request_id), durable=True)
        self._changed(before, webhook_attempts=attempt)

    def webhook_ended(self, request_id: str, outcome: str) -> None:
        """The request's webhook was delivered or given up (``outcome`` says which, and why)."""
        before = self.get(request_id)
        self._write("UPDATE requests SET webhook_outcome = ? WHERE id = ?", (outcome, request_id), durable=True)
        self._changed(before, webhook_outcome=outcome)

    def pending_webhooks(self) -> list[Request]:
        """Completed requests whose webhook has not ended (the gateway stopped before it did)."""
        rows = self.db.execute(
            f"SELECT {_STATE} FROM requests WHERE status = '{RequestStatus.COMPLETED}' AND webhook IS NOT NULL"
            " AND webhook_outcome IS NULL ORDER BY completed"
        )
        return [Request.of(row) for row in rows]

    # -- logs --------------------------------------------------------------------------------
    def add_log(self, request_id: str, entry: dict[str, str]) -> None:
        self._write(
            "INSERT INTO logs (request_id, timestamp, level, source, message) VALUES (?, ?, ?, ?, ?)",
            (request_id, entry["timestamp"], entry["level"], entry["source"], entry["message"]),
            durable=False,
        )

    def logs(self, request_id: str) -> list[dict[str, str]]:
        rows = self.db.execute(
            "SELECT timestamp, level, source, message FROM (SELECT * FROM logs WHERE request_id = ?"
            " ORDER BY id DESC LIMIT ?) ORDER BY id",
            (request_id, LOG_WINDOW),
        ).fetchall()
        return [dict(r) for r in rows]

    def logs_after(self, request_id: str, after: int) -> tuple[list[dict[str, str]], int]:
        """The request's log entries added after entry ``after`` (0: from the start), and the last one's number."""
        rows = self.db.execute(
            "SELECT id, timestamp, level, source, message FROM logs WHERE request_id = ? AND id > ? ORDER BY id",
            (request_id, after),
        ).fetchall()
        entries = [{k: r[k] for k in ("timestamp", "level", "source", "message")} for r in rows]
        return entries, rows[-1]["id"] if rows else after

    # -- apps --------------------------------------------------------------------------------
    def save_app(self, name: str, record: AppRecord) -> None:
        self._write(
            "INSERT INTO apps (name, record) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET record = excluded.record",
            (name, record.to_json()),
            durable=True,
        )

    def apps(self) -> dict[str, AppRecord]:
        rows = self.db.execute("SELECT name, record FROM apps ORDER BY name")
        return {name: AppRecord.from_json(record) for name, record in rows}


def _migrate(db: sqlite3.Connection) -> None:
    """Bring a database of an earlier gateway to this schema, keeping its requests and apps (bodies in
    its rows move to the bodies table; body files stay where they are)."""
    (version,) = db.execute("PRAGMA user_version").fetchone()
    columns = {row[1] for row in db.execute("PRAGMA table_info(requests)")}
    if version >= SCHEMA_VERSION or not columns:
        return
    # version 1: AUTOINCREMENT, one index over every request's status, maybe the body in the row
    kept = ", ".join(c for c in _STATE.replace(" ", "").split(",") if c in columns)
    bodies = "INSERT INTO bodies (seq, body) SELECT seq, body FROM requests_v1;" if "body" in columns else ""
    db.executescript(
        f"""
        BEGIN;
        ALTER TABLE requests RENAME TO requests_v1;
        DROP INDEX IF EXISTS requests_queue;
        DROP INDEX IF EXISTS requests_completed;
        {_SCHEMA}
        INSERT INTO requests ({kept}, result_body) SELECT {kept}, result_body FROM requests_v1;
        {bodies}
        DELETE FROM bodies WHERE seq IN (SELECT seq FROM requests WHERE status = '{RequestStatus.COMPLETED}');
        DROP TABLE requests_v1;
        COMMIT;
        """
    )
