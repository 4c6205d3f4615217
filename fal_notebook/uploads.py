"""Files for an app's inputs, stored where the app reads them (``EndpointClient.upload`` does the I/O).

- Apps behind the local gateway (local and Docker targets, and fal's hosts pointed at the gateway by
  ``%fal_env``): the gateway's store, which speaks fal's CDN upload (``wire.STORAGE_TOKEN_PATH``,
  ``wire.CDN_UPLOAD_PATH``) with the gateway's key. Nothing leaves the machine.
- Apps on fal: fal's CDN, with fal's key, through fal_client when it is installed (its multipart
  uploads for large files, its fallback repositories), else with the same CDN protocol spoken here.
- Other servers have no store: their file inputs take URLs they can reach, or ``data:`` URIs.
"""

from __future__ import annotations

import importlib.util
import json
import mimetypes
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from . import wire
from .credentials import fal_key, logged_in_as_user, not_logged_in_message
from .errors import ConfigError, FalNotebookError
from .protocol import Address
from .secrets import redact

OCTET_STREAM = "application/octet-stream"


@dataclass(frozen=True)
class FileToUpload:
    """A file to store: its bytes (or where they are on disk), type, name, and how long to keep it."""

    content: bytes | Path
    content_type: str
    file_name: str
    expires_in: int | None = None

    def read(self) -> bytes:
        return self.content if isinstance(self.content, bytes) else self.content.read_bytes()

    def headers(self) -> dict[str, str]:
        """The CDN upload's headers: type, name, and fal's lifecycle preference when it has one."""
        headers = {"Content-Type": self.content_type, wire.FILE_NAME: self.file_name}
        if self.expires_in is not None:
            headers[wire.LIFECYCLE_PREFERENCE] = json.dumps({wire.EXPIRATION_KEY: self.expires_in})
        return headers


def file_to_upload(
    data: bytes | str | os.PathLike, content_type: str | None, file_name: str | None, expires_in: int | None
) -> FileToUpload:
    """What ``upload(...)`` was given, checked: bytes or the path of a file; the type guessed from the
    name when not given; ``expires_in`` whole seconds (as fal's lifecycle preference takes them)."""
    if expires_in is not None and (isinstance(expires_in, bool) or not isinstance(expires_in, int) or expires_in <= 0):
        raise ConfigError(f"expires_in must be a positive whole number of seconds, not {expires_in!r}.")
    if isinstance(data, (bytes, bytearray, memoryview)):
        content: bytes | Path = bytes(data)
        name = file_name or "upload.bin"
    elif isinstance(data, (str, os.PathLike)):
        content = Path(data)
        if not content.is_file():
            raise ConfigError(f"upload(): {str(data)!r} is not a file. Pass the path of a file, or its bytes.")
        name = file_name or content.name
    else:
        raise ConfigError(f"upload() takes bytes or the path of a file, not {type(data).__name__}.")
    kind = content_type or mimetypes.guess_type(name)[0] or OCTET_STREAM
    return FileToUpload(content, kind, name, expires_in)


def behind_gateway(address: Address) -> bool:
    """Whether the address's app is served by the local gateway (``local/<name>``, or fal's hosts pointed
    at the gateway); a server of the user's own on loopback is not."""
    return address.kind == "local" or (address.kind == "fal" and address.loopback)


def store_origin(address: Address) -> str:
    """Where files for the address's app are stored: the gateway that serves it, or fal's REST host."""
    if behind_gateway(address):
        url = httpx.URL(address.app_url)
        return f"{url.scheme}://{url.netloc.decode()}"
    if address.kind == "fal":
        return f"https://{wire.STORAGE_REST_HOST}"
    raise ConfigError(
        f"{address.endpoint_id} is neither behind the local gateway nor on fal, so there is no store to upload "
        "to: give its file inputs a URL it can reach, or the file as a data: URI."
    )


def via_fal_client(address: Address) -> bool:
    """Whether uploads for the address's app go through fal_client (an app on fal, fal_client installed)."""
    return address.kind == "fal" and not address.loopback and importlib.util.find_spec("fal_client") is not None


def can_upload(address: Address) -> bool:
    """Whether files for the address's app can be stored: always behind the gateway; on fal, with
    fal's credentials (a key, or fal's own login when fal_client does the upload)."""
    if behind_gateway(address):
        return True
    if address.kind != "fal":
        return False
    return fal_key() is not None or (via_fal_client(address) and logged_in_as_user())


def no_key_error() -> FalNotebookError:
    return FalNotebookError(not_logged_in_message().replace("nothing was deployed", "nothing was uploaded"))


def token_of(answer: Any) -> tuple[str, str]:
    """``(Authorization value, base URL)`` from the answer to the token request."""
    try:
        return f"{answer['token_type']} {answer['token']}", str(answer["base_url"]).rstrip("/")
    except (TypeError, KeyError):
        raise ValueError(f"no upload token in {str(answer)[:200]!r}") from None


def access_url(answer: Any) -> str:
    """The stored file's URL from the upload's answer."""
    url = answer.get("access_url") if isinstance(answer, dict) else None
    if not isinstance(url, str) or not url:
        raise ValueError(f"no access_url in {str(answer)[:200]!r}")
    return url


def upload_with_fal_client(file: FileToUpload, key: str | None) -> str:
    """fal_client's upload to fal's CDN (multipart for large files), with ``key`` (None: fal's login)."""
    import fal_client

    if key is None and not logged_in_as_user():
        raise no_key_error()
    client = fal_client.SyncClient(key=key)
    lifecycle = fal_client.StorageSettings(expires_in=file.expires_in) if file.expires_in is not None else None
    try:  # fal_client's upload goes multipart itself for large files
        return client.upload(file.read(), file.content_type, file_name=file.file_name, lifecycle=lifecycle)
    except Exception as exc:  # httpx's and fal_client's errors alike: say what failed and what to do
        raise FalNotebookError(
            f"Uploading {file.file_name} to fal's storage failed ({redact(str(exc)) or type(exc).__name__}). "
            "Check the connection and your key (`%fal_login`), then try again."
        ) from None
