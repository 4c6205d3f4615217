"""History persisted per app under FAL_NOTEBOOK_HOME."""

from __future__ import annotations

import json

from fal_notebook.widgets.history import Call, HistoryStore, compact


def test_round_trip_keeps_the_last_calls(tmp_path, monkeypatch):
    monkeypatch.setenv("FAL_NOTEBOOK_HOME", str(tmp_path))
    store = HistoryStore("local/my app", limit=2)
    calls = [Call("/", {"n": i}) for i in range(3)]
    calls[-1].finish("COMPLETED", output={"ok": True})
    store.save(calls)
    loaded = HistoryStore("local/my app").load()
    assert [c.arguments for c in loaded] == [{"n": 1}, {"n": 2}]
    assert loaded[-1].status == "COMPLETED" and loaded[-1].output == {"ok": True}
    assert store.path == tmp_path / "history" / "local_my_app.json"
    assert oct(store.path.stat().st_mode & 0o777) == "0o600"


def test_credentials_and_big_inline_files_are_not_written(tmp_path, monkeypatch):
    monkeypatch.setenv("FAL_NOTEBOOK_HOME", str(tmp_path))
    monkeypatch.setenv("FAL_KEY", "key-id-123:very-secret-value")
    big = "data:image/png;base64," + "A" * 100_000
    store = HistoryStore("app")
    store.save([Call("/", {"token": "very-secret-value", "image": big})])
    text = store.path.read_text()
    assert "very-secret-value" not in text and "AAAA" not in text
    (saved,) = store.load()
    assert saved.arguments["image"].startswith("data:image/png;base64… (not kept: 100022 characters)")


def test_damaged_history_is_ignored(tmp_path, monkeypatch):
    monkeypatch.setenv("FAL_NOTEBOOK_HOME", str(tmp_path))
    store = HistoryStore("app")
    store.path.parent.mkdir(parents=True)
    store.path.write_text("{not json")
    assert store.load() == []


def test_compact_leaves_normal_values_alone():
    value = {"a": [1, "short", {"b": None}]}
    assert compact(value) == value and json.dumps(compact(value))
