"""The gateway's file store: the files runners return (fal.toolkit ``File``, ``Image``, ``Audio``,
``Video``) and the files clients upload, kept under ``<FAL_NOTEBOOK_HOME>/gateway/files/`` and served
back by URL, as fal's CDN keeps them (docs/fal-conformance.md, "Storage").

A stored file is a folder ``<id>/`` with ``data`` and ``meta.json`` (name, content type, size, when it
expires). An upload in progress is a folder ``.pending/<upload id>/`` holding its parts; it becomes a
file only when complete, so a file's URL never serves half a body. Files expire after the store's
``ttl`` or what the uploader asked for (fal's ``X-Fal-Object-Lifecycle-Preference``:
``{"expiration_duration_seconds": n}``); an expired file is not served, and its folder goes at the
next sweep. The bytes of all files and uploads together stay within ``max_bytes``.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import re
import secrets
import shutil
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .. import wire

#: A pending upload that is not completed within this many seconds is dropped.
PENDING_TTL = 3600.0
#: Expired files and abandoned uploads are swept at most this often.
SWEEP_EVERY = 60.0
DEFAULT_NAME = "upload.bin"
OCTET_STREAM = "application/octet-stream"
_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")
_UNSAFE_NAME = re.compile(r"[^\w.\- ()+,=@]")


class StoreFull(Exception):
    """Storing these bytes would take the store past its cap."""


class UnknownUpload(Exception):
    """No pending upload (or part) by that id: never started, completed, or expired."""


@dataclass(frozen=True)
class StoredFile:
    id: str
    name: str
    content_type: str
    size: int
    created: float
    expires_at: float | None


@dataclass(frozen=True)
class PendingUpload:
    id: str  # the upload's own id, a capability: who knows it may send the bytes
    file_id: str
    name: str
    content_type: str
    expires_in: float | None
    started: float


def file_name(raw: Any) -> str:
    """A safe file name from what an uploader sent: its last path segment, odd characters replaced."""
    name = str(raw or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    name = _UNSAFE_NAME.sub("_", name)[:200].strip(". ")
    return name or DEFAULT_NAME


def content_type_of(raw: Any, name: str) -> str:
    """The content type an uploader sent, else the one its name suggests, else octet-stream."""
    value = str(raw or "").strip()
    if value and "/" in value and len(value) < 200 and value.isascii() and "\n" not in value:
        return value
    return mimetypes.guess_type(name)[0] or OCTET_STREAM


def expiration(preference: Any) -> float | None:
    """Seconds from ``X-Fal-Object-Lifecycle-Preference`` (JSON, or its parsed dict); None: the default."""
    if isinstance(preference, str):
        try:
            preference = json.loads(preference)
        except ValueError:
            return None
    if not isinstance(preference, dict):
        return None
    seconds = preference.get(wire.EXPIRATION_KEY)  # fal_client ``_normalize_upload_lifecycle``
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 < seconds < 1e10:
        return None
    return float(seconds)


class FileStore:
    def __init__(self, root: Path, *, max_bytes: int, ttl: float, clock: Callable[[], float] = time.time):
        self.root, self.max_bytes, self.ttl, self.clock = root, max_bytes, ttl, clock
        self.pending_dir = root / ".pending"
        shutil.rmtree(self.pending_dir, ignore_errors=True)  # uploads do not outlive their gateway
        self.pending_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._pending: dict[str, PendingUpload] = {}
        self._last_sweep = 0.0
        self.used = sum(f.size for f in self._files())

    # -- uploads --------------------------------------------------------------------------------
    def start(self, name: Any, content_type: Any, lifecycle: Any = None) -> PendingUpload:
        """A new upload (its parts come with :meth:`receive`, then :meth:`complete`)."""
        self.sweep()
        clean = file_name(name)
        upload = PendingUpload(
            id=secrets.token_urlsafe(24),
            file_id=secrets.token_urlsafe(16),
            name=clean,
            content_type=content_type_of(content_type, clean),
            expires_in=expiration(lifecycle),
            started=self.clock(),
        )
        (self.pending_dir / upload.id).mkdir(mode=0o700)
        self._pending[upload.id] = upload
        return upload

    def pending(self, upload_id: str) -> PendingUpload:
        upload = self._pending.get(upload_id)
        if upload is None or self.clock() - upload.started > PENDING_TTL:
            raise UnknownUpload(upload_id)
        return upload

    async def receive(self, upload: PendingUpload, chunks: AsyncIterator[bytes], part: int = 1) -> str:
        """Write one part of ``upload`` from ``chunks`` (a part sent again replaces itself); its ETag."""
        path = self.pending_dir / upload.id / f"{part:05d}"
        digest, size = hashlib.md5(usedforsecurity=False), 0
        replaced = path.stat().st_size if path.exists() else 0
        self.used -= replaced
        try:
            with path.open("wb") as out:
                async for chunk in chunks:
                    if self.used + len(chunk) > self.max_bytes:
                        self.sweep(force=True)
                        if self.used + len(chunk) > self.max_bytes:
                            raise StoreFull(self.max_bytes)
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                    self.used += len(chunk)
        except BaseException:
            self.used -= size
            path.unlink(missing_ok=True)
            raise
        return f'"{digest.hexdigest()}"'

    def complete(self, upload: PendingUpload, parts: list[int] | None = None) -> StoredFile:
        """Join the parts (``parts``: their numbers in order; None: all, in order) into the stored file."""
        folder = self.pending_dir / upload.id
        present = sorted(int(p.name) for p in folder.iterdir())
        order = present if parts is None else parts
        missing = [n for n in order if n not in present]
        if missing or not order:
            raise UnknownUpload(f"part {missing[0] if missing else 1}")
        target = self.root / upload.file_id
        target.mkdir(mode=0o700)
        with (target / "data").open("wb") as out:
            for number in order:
                with (folder / f"{number:05d}").open("rb") as part:
                    shutil.copyfileobj(part, out, 1 << 20)
            size = out.tell()
        self.used += size - sum((folder / f"{n:05d}").stat().st_size for n in present)
        shutil.rmtree(folder, ignore_errors=True)
        del self._pending[upload.id]
        now = self.clock()
        ttl = upload.expires_in if upload.expires_in is not None else self.ttl
        stored = StoredFile(upload.file_id, upload.name, upload.content_type, size, now, now + ttl)
        _write_json(target / "meta.json", asdict(stored))
        return stored

    def abort(self, upload: PendingUpload) -> None:
        folder = self.pending_dir / upload.id
        self.used -= sum(p.stat().st_size for p in folder.iterdir()) if folder.is_dir() else 0
        shutil.rmtree(folder, ignore_errors=True)
        self._pending.pop(upload.id, None)

    async def put(
        self, name: Any, content_type: Any, chunks: AsyncIterator[bytes], lifecycle: Any = None
    ) -> StoredFile:
        """One upload in one piece."""
        upload = self.start(name, content_type, lifecycle)
        try:
            await self.receive(upload, chunks)
        except BaseException:
            self.abort(upload)
            raise
        return self.complete(upload)

    # -- files ----------------------------------------------------------------------------------
    def get(self, file_id: str) -> tuple[StoredFile, Path] | None:
        """A stored file that has not expired, and its data's path."""
        if not _ID.fullmatch(file_id):
            return None
        stored = _read_meta(self.root / file_id)
        if stored is None or (stored.expires_at is not None and stored.expires_at <= self.clock()):
            return None
        return stored, self.root / file_id / "data"

    def sweep(self, force: bool = False) -> int:
        """Remove expired files and abandoned uploads (at most once a ``SWEEP_EVERY``); how many files went."""
        now = self.clock()
        if not force and now - self._last_sweep < SWEEP_EVERY:
            return 0
        self._last_sweep = now
        for upload in [u for u in list(self._pending.values()) if now - u.started > PENDING_TTL]:
            self.abort(upload)
        removed = 0
        for stored in self._files():
            if stored.expires_at is not None and stored.expires_at <= now:
                shutil.rmtree(self.root / stored.id, ignore_errors=True)
                self.used -= stored.size
                removed += 1
        return removed

    def _files(self) -> list[StoredFile]:
        found = []
        for folder in self.root.iterdir():
            if folder.name != self.pending_dir.name and (stored := _read_meta(folder)) is not None:
                found.append(stored)
        return found


def _read_meta(folder: Path) -> StoredFile | None:
    try:
        return StoredFile(**json.loads((folder / "meta.json").read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)
