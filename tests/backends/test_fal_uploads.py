"""File inputs for fal targets go to fal's storage through fal_client, with fal's credentials."""

from __future__ import annotations

import httpx
import pytest

from fal_notebook.errors import FalNotebookError
from fal_notebook.uploads import upload_file

pytestmark = pytest.mark.fal_sdk

FAKE_KEY = "fnbkeyid-0001:fnb-secret-Q7x9-DO-NOT-LEAK-5521"


@pytest.fixture
def storage(monkeypatch):
    """fal's storage API (unreachable here) as an httpx MockTransport under fal_client."""
    seen: list[httpx.Request] = []

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

    real_client = httpx.Client

    class MockedClient(real_client):
        def __init__(self, *args, **kwargs):
            kwargs["transport"] = httpx.MockTransport(handler)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(httpx, "Client", MockedClient)
    return seen


def test_upload_a_file_with_the_profile_key(fal_env, storage, tmp_path):
    (fal_env / ".fal").mkdir()
    (fal_env / ".fal" / "config.toml").write_text(f'[__internal__]\nprofile = "p"\n\n[p]\nkey = "{FAKE_KEY}"\n')
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"\x89PNG fake")
    assert upload_file(photo) == "https://v3.fal.media/files/x/photo.png"
    token, upload = storage
    assert token.headers["Authorization"] == f"Key {FAKE_KEY}"  # fal_client alone would not read the profile
    assert (upload.headers["Content-Type"], upload.content) == ("image/png", b"\x89PNG fake")


def test_upload_bytes_with_a_content_type(fal_env, storage, monkeypatch):
    monkeypatch.setenv("FAL_KEY", FAKE_KEY)
    url = upload_file(b"RIFF....WAVE", "audio/wav", file_name="clip.wav")
    assert url == "https://v3.fal.media/files/x/clip.wav"
    assert storage[-1].headers["Content-Type"] == "audio/wav"


def test_upload_without_credentials_says_how_to_log_in(fal_env, storage):
    with pytest.raises(FalNotebookError, match="not logged in to fal, so nothing was uploaded"):
        upload_file(b"data", "text/plain")
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
    with pytest.raises(FalNotebookError, match="Uploading the file to fal's storage failed") as err:
        upload_file(b"data", "text/plain")
    assert "fnb-secret" not in str(err.value)
