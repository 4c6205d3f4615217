"""File inputs for apps on fal: ``connect(...).upload(...)`` stores them in fal's CDN with fal's
credentials, through fal_client when it is installed, else with fal's CDN protocol (fal's cloud is
unreachable here: its storage API is a MockTransport)."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from fal_notebook import connect, uploads
from fal_notebook.errors import ConfigError, FalNotebookError

pytestmark = pytest.mark.fal_sdk

FAKE_KEY = "fnbkeyid-0001:fnb-secret-Q7x9-DO-NOT-LEAK-5521"


def fals_storage(seen: list[httpx.Request]):
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/storage/auth/token":
            return httpx.Response(
                200,
                json={
                    "token": "cdn-token",
                    "token_type": "Bearer",
                    "base_url": "https://v3.fal.media",
                    "expires_at": "2099-01-01T00:00:00+00:00",
                },
            )
        if request.url.path == "/files/upload":
            name = request.headers.get("X-Fal-File-Name", "blob")
            return httpx.Response(200, json={"access_url": f"https://v3.fal.media/files/x/{name}"})
        return httpx.Response(404)

    return handler


@pytest.fixture
def storage(monkeypatch):
    """fal's storage API under fal_client, which makes its own httpx clients."""
    seen: list[httpx.Request] = []
    real_client = httpx.Client

    class MockedClient(real_client):
        def __init__(self, *args, **kwargs):
            kwargs["transport"] = httpx.MockTransport(fals_storage(seen))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(httpx, "Client", MockedClient)
    return seen


def test_upload_a_file_with_the_profile_key(fal_env, storage, tmp_path):
    (fal_env / ".fal").mkdir()
    (fal_env / ".fal" / "config.toml").write_text(f'[__internal__]\nprofile = "p"\n\n[p]\nkey = "{FAKE_KEY}"\n')
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"\x89PNG fake")
    assert uploads.via_fal_client(connect("alice/painter").address)
    assert connect("alice/painter").upload(photo) == "https://v3.fal.media/files/x/photo.png"
    token, upload = storage
    assert token.headers["Authorization"] == f"Key {FAKE_KEY}"  # fal_client alone would not read the profile
    assert (upload.headers["Content-Type"], upload.content) == ("image/png", b"\x89PNG fake")


def test_upload_bytes_with_a_content_type_and_an_expiry(fal_env, storage, monkeypatch):
    monkeypatch.setenv("FAL_KEY", FAKE_KEY)
    url = connect("alice/painter").upload(b"RIFF....WAVE", "audio/wav", file_name="clip.wav", expires_in=3600)
    assert url == "https://v3.fal.media/files/x/clip.wav"
    assert storage[-1].headers["Content-Type"] == "audio/wav"
    assert json.loads(storage[-1].headers["X-Fal-Object-Lifecycle-Preference"]) == {"expiration_duration_seconds": 3600}


def test_upload_without_credentials_says_how_to_log_in(fal_env, storage):
    with pytest.raises(FalNotebookError, match="not logged in to fal, so nothing was uploaded"):
        connect("alice/painter").upload(b"data", "text/plain")
    assert storage == []


def test_upload_failure_is_explained_without_the_key(fal_env, monkeypatch):
    monkeypatch.setenv("FAL_KEY", FAKE_KEY)

    class Refusing(httpx.Client):
        def __init__(self, *args, **kwargs):
            kwargs["transport"] = httpx.MockTransport(
                lambda request: httpx.Response(401, json={"detail": "No user found for Key ID and Secret"})
            )
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(httpx, "Client", Refusing)
    with pytest.raises(FalNotebookError, match="Uploading upload.bin to fal.s storage failed") as err:
        connect("alice/painter").upload(b"data", "text/plain")
    assert "fnb-secret" not in str(err.value)


def test_without_fal_client_fals_cdn_protocol_is_spoken_directly(fal_env, monkeypatch):
    monkeypatch.setattr(uploads, "via_fal_client", lambda address: False)
    seen: list[httpx.Request] = []
    client = connect(
        "alice/painter",
        key=FAKE_KEY,
        transport=httpx.MockTransport(fals_storage(seen)),
        async_transport=httpx.MockTransport(fals_storage(seen)),
    )
    assert client.upload(b"%PDF-1.4", file_name="doc.pdf") == "https://v3.fal.media/files/x/doc.pdf"
    token, upload = seen
    assert str(token.url) == "https://rest.fal.ai/storage/auth/token?storage_type=fal-cdn-v3"
    assert token.headers["Authorization"] == f"Key {FAKE_KEY}"
    assert (
        str(upload.url) == "https://v3.fal.media/files/upload" and upload.headers["Authorization"] == "Bearer cdn-token"
    )
    assert (upload.headers["Content-Type"], upload.headers["X-Fal-File-Name"], upload.content) == (
        "application/pdf",
        "doc.pdf",
        b"%PDF-1.4",
    )
    assert asyncio.run(client.upload_async(b"x", "text/plain", file_name="a.txt")).endswith("/a.txt")


def test_bad_arguments_name_what_is_wrong(fal_env, tmp_path):
    client = connect("alice/painter", key=FAKE_KEY)
    with pytest.raises(ConfigError, match="is not a file"):
        client.upload(tmp_path / "missing.png")
    with pytest.raises(ConfigError, match="bytes or the path of a file"):
        client.upload(42)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="expires_in must be a positive whole number"):
        client.upload(b"x", expires_in=0)
    for server in ("https://example.com/app", "http://127.0.0.1:9/"):  # a server of one's own has no store
        with pytest.raises(ConfigError, match="neither behind the local gateway nor on fal"):
            connect(server).upload(b"x")
        assert not uploads.can_upload(connect(server).address)
