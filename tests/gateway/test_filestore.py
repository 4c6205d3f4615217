"""The gateway's file store (gateway/filestore.py) on its own: uploads in parts, names and content types,
the size cap, and expiry as fal's lifecycle preference asks."""

from __future__ import annotations

import asyncio

import pytest

from fal_notebook.gateway.filestore import FileStore, StoreFull, UnknownUpload, content_type_of, expiration, file_name


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _chunks(*parts: bytes):
    for part in parts:
        yield part


def put(store: FileStore, data: bytes, lifecycle=None, name="a.bin"):
    return asyncio.run(store.put(name, None, _chunks(data), lifecycle))


def test_parts_are_joined_in_order_and_a_part_sent_again_replaces_itself(tmp_path):
    store = FileStore(tmp_path, max_bytes=1 << 20, ttl=60)
    upload = store.start("clip.mp4", "video/mp4")
    asyncio.run(store.receive(upload, _chunks(b"second"), 2))
    asyncio.run(store.receive(upload, _chunks(b"wrong"), 1))
    asyncio.run(store.receive(upload, _chunks(b"first "), 1))
    assert store.get(upload.file_id) is None  # not served before it is complete
    stored = store.complete(upload, [1, 2])
    found = store.get(stored.id)
    assert found is not None and found[1].read_bytes() == b"first second"
    assert (stored.name, stored.content_type, stored.size) == ("clip.mp4", "video/mp4", 12)
    assert store.used == 12
    with pytest.raises(UnknownUpload):
        store.pending(upload.id)  # completed: its upload URL is spent


def test_names_and_content_types_from_what_uploaders_send():
    assert file_name("../../etc/passwd") == "passwd" and file_name("") == "upload.bin"
    assert file_name("a b/c<d>.png") == "c_d_.png"
    assert content_type_of(None, "x.png") == "image/png" and content_type_of("", "x") == "application/octet-stream"
    assert content_type_of("text/plain; charset=utf-8", "x.png") == "text/plain; charset=utf-8"


def test_the_cap_refuses_an_upload_that_does_not_fit_and_keeps_nothing_of_it(tmp_path):
    store = FileStore(tmp_path, max_bytes=10, ttl=60)
    put(store, b"123456")
    with pytest.raises(StoreFull):
        put(store, b"123456")
    assert store.used == 6 and len(list(tmp_path.iterdir())) == 2  # the file and .pending/, nothing half-written


def test_files_expire_after_the_ttl_or_what_the_lifecycle_preference_asks(tmp_path):
    clock = Clock()
    store = FileStore(tmp_path, max_bytes=1 << 20, ttl=60, clock=clock)
    default = put(store, b"kept a minute")
    brief = put(store, b"kept a second", '{"expiration_duration_seconds": 1}')
    assert expiration({"expiration_duration_seconds": 0}) is None and expiration("not json") is None
    clock.now += 2
    assert store.get(brief.id) is None and store.get(default.id) is not None
    clock.now += 60
    assert store.get(default.id) is None
    assert store.sweep(force=True) == 2 and store.used == 0
    assert [p.name for p in tmp_path.iterdir()] == [".pending"]


def test_a_store_started_again_counts_what_it_holds_and_forgets_unfinished_uploads(tmp_path):
    store = FileStore(tmp_path, max_bytes=1 << 20, ttl=60)
    stored = put(store, b"abc")
    upload = store.start("half.bin", None)
    asyncio.run(store.receive(upload, _chunks(b"half"), 1))
    again = FileStore(tmp_path, max_bytes=1 << 20, ttl=60)
    assert again.used == 3 and again.get(stored.id) is not None
    with pytest.raises(UnknownUpload):
        again.pending(upload.id)
