"""The gateway's durable state in SQLite: queued requests, their results and logs, deployed apps.

A request is committed before the gateway answers its submission, so it survives a crash of the
gateway process (WAL journal: a commit is durable against a killed process). Its body is written
once, to a file of its own beside the database (``save_body``, which needs no database and so runs
off the event loop), and deleted when the request completes: a large body never passes through
SQLite, and status updates never rewrite it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from ..wire import COMPLETED, IN_PROGRESS, IN_QUEUE

#: How long results stay retrievable, as on fal.
RESULT_TTL = 3600.0
#: Logs returned per status call (a moving window, as on fal; clients de-duplicate).
LOG_WINDOW = 1000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
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
    result_body BLOB,
    result_type TEXT,
    error TEXT,
    error_type TEXT,
    inference_time REAL,
    webhook TEXT,
    webhook_attempts INTEGER NOT NULL DEFAULT 0,
    webhook_outcome TEXT
);
CREATE INDEX IF NOT EXISTS requests_queue ON requests (app, status, priority, seq);
CREATE INDEX IF NOT EXISTS requests_completed ON requests (completed);
CREATE TABLE IF NOT EXISTS logs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
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


#: (column, type) of ``requests`` added after the first release, for databases made before.
_ADDED_COLUMNS = (
    ("webhook", "TEXT"),
    ("webhook_attempts", "INTEGER NOT NULL DEFAULT 0"),
    ("webhook_outcome", "TEXT"),
)


class Store:
    def __init__(self, path: Path):
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA busy_timeout=5000")
        self.db.executescript(_SCHEMA)
        self._add_columns()
        path.chmod(0o600)
        self.bodies = path.parent / "bodies"
        self.bodies.mkdir(mode=0o700, exist_ok=True)
        if "body" in {r["name"] for r in self.db.execute("PRAGMA table_info(requests)")}:  # an older gateway's
            for row in self.db.execute("SELECT id, body FROM requests WHERE status != ?", (COMPLETED,)).fetchall():
                self.save_body(row["id"], row["body"])
            self.db.execute("ALTER TABLE requests DROP COLUMN body")

    def close(self) -> None:
        self.db.close()

    def _add_columns(self) -> None:
        """Columns added since a state directory's database was made."""
        present = {r["name"] for r in self.db.execute("PRAGMA table_info(requests)")}
        for column, kind in _ADDED_COLUMNS:
            if column not in present:
                self.db.execute(f"ALTER TABLE requests ADD COLUMN {column} {kind}")

    # -- requests ----------------------------------------------------------------------------
    def save_body(self, request_id: str, body: bytes) -> None:
        """Write a request's body durably (before its row: a crash leaves at most an unused file)."""
        target = self.bodies / request_id
        partial = target.with_name(f".{request_id}.partial")
        with open(partial, "wb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, target)

    def body(self, request_id: str) -> bytes:
        return (self.bodies / request_id).read_bytes()

    def add_request(
        self,
        request_id: str,
        app: str,
        path: str,
        headers: dict[str, str],
        *,
        priority: int = 0,
        start_deadline: float | None = None,
        webhook: str | None = None,
    ) -> None:
        """Queue a request whose body ``save_body`` wrote."""
        self.db.execute(
            "INSERT INTO requests (id, app, path, headers, priority, status, created, start_deadline, webhook)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                request_id,
                app,
                path,
                json.dumps(headers),
                priority,
                IN_QUEUE,
                time.time(),
                start_deadline,
                webhook,
            ),
        )

    def get(self, request_id: str) -> sqlite3.Row | None:
        return self.db.execute("SELECT * FROM requests WHERE id = ?", (request_id,)).fetchone()

    def queued(self, app: str) -> list[sqlite3.Row]:
        return self.db.execute(
            "SELECT * FROM requests WHERE app = ? AND status = ? ORDER BY priority, seq", (app, IN_QUEUE)
        ).fetchall()

    def in_progress(self) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM requests WHERE status = ?", (IN_PROGRESS,)).fetchall()

    def queue_length(self, app: str) -> int:
        (queued,) = self.db.execute(
            "SELECT COUNT(*) FROM requests WHERE app = ? AND status = ?", (app, IN_QUEUE)
        ).fetchone()
        return queued

    def queue_position(self, row: sqlite3.Row) -> int:
        (ahead,) = self.db.execute(
            "SELECT COUNT(*) FROM requests WHERE app = ? AND status = ? AND (priority < ? OR "
            "(priority = ? AND seq < ?))",
            (row["app"], IN_QUEUE, row["priority"], row["priority"], row["seq"]),
        ).fetchone()
        return ahead

    def start(self, request_id: str, attempts: int, runner: str) -> None:
        self.db.execute(
            "UPDATE requests SET status = ?, attempts = ?, runner = ?, started = ? WHERE id = ?",
            (IN_PROGRESS, attempts, runner, time.time(), request_id),
        )

    def requeue(self, request_id: str) -> None:
        """Back in the queue (its attempts so far are kept)."""
        self.db.execute("UPDATE requests SET status = ?, runner = NULL WHERE id = ?", (IN_QUEUE, request_id))

    def cancel_requested(self, request_id: str) -> bool:
        row = self.get(request_id)
        return row is not None and bool(row["cancel_requested"])

    def position(self, request_id: str) -> int:
        """The request's place in its app's queue (0: next, or not queued)."""
        row = self.get(request_id)
        return self.queue_position(row) if row is not None and row["status"] == IN_QUEUE else 0

    def request_cancel(self, request_id: str) -> None:
        self.db.execute("UPDATE requests SET cancel_requested = 1 WHERE id = ?", (request_id,))

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
        self.db.execute(
            "UPDATE requests SET status = ?, completed = ?, result_status = ?, result_body = ?,"
            " result_type = ?, error = ?, error_type = ?, inference_time = ?, runner = NULL WHERE id = ?",
            (
                COMPLETED,
                time.time(),
                status_code,
                body,
                content_type,
                error,
                error_type,
                inference_time,
                request_id,
            ),
        )
        (self.bodies / request_id).unlink(missing_ok=True)

    def purge(self, older_than: float = RESULT_TTL) -> int:
        """Forget completed requests (and their logs) older than ``older_than`` seconds."""
        cutoff = time.time() - older_than
        ids = [
            r[0]
            for r in self.db.execute(  # a webhook still to deliver keeps its request
                "SELECT id FROM requests WHERE completed < ? AND (webhook IS NULL OR webhook_outcome IS NOT NULL)",
                (cutoff,),
            )
        ]
        if ids:
            marks = ",".join("?" * len(ids))
            self.db.execute(f"DELETE FROM logs WHERE request_id IN ({marks})", ids)
            self.db.execute(f"DELETE FROM requests WHERE id IN ({marks})", ids)
        waiting = {r[0] for r in self.db.execute("SELECT id FROM requests WHERE status != ?", (COMPLETED,))}
        for file in self.bodies.iterdir():  # bodies of requests that completed, or were never queued
            if file.name not in waiting and file.stat().st_mtime < time.time() - 60:
                file.unlink(missing_ok=True)
        return len(ids)

    # -- webhooks ----------------------------------------------------------------------------
    def webhook_attempt(self, request_id: str, attempt: int) -> None:
        """Attempt ``attempt`` of the request's webhook is about to be made (counted before it is)."""
        self.db.execute("UPDATE requests SET webhook_attempts = ? WHERE id = ?", (attempt, request_id))

    def webhook_ended(self, request_id: str, outcome: str) -> None:
        """The request's webhook was delivered or given up (``outcome`` says which, and why)."""
        self.db.execute("UPDATE requests SET webhook_outcome = ? WHERE id = ?", (outcome, request_id))

    def pending_webhooks(self) -> list[sqlite3.Row]:
        """Completed requests whose webhook has not ended (the gateway stopped before it did)."""
        return self.db.execute(
            "SELECT * FROM requests WHERE status = ? AND webhook IS NOT NULL AND webhook_outcome IS NULL"
            " ORDER BY completed",
            (COMPLETED,),
        ).fetchall()

    # -- logs --------------------------------------------------------------------------------
    def add_log(self, request_id: str, entry: dict[str, str]) -> None:
        self.db.execute(
            "INSERT INTO logs (request_id, timestamp, level, source, message) VALUES (?, ?, ?, ?, ?)",
            (request_id, entry["timestamp"], entry["level"], entry["source"], entry["message"]),
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
    def save_app(self, name: str, record: dict[str, Any]) -> None:
        self.db.execute(
            "INSERT INTO apps (name, record) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET record = excluded.record",
            (name, json.dumps(record)),
        )

    def apps(self) -> dict[str, dict[str, Any]]:
        return {r["name"]: json.loads(r["record"]) for r in self.db.execute("SELECT * FROM apps ORDER BY name")}
