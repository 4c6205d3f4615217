"""File inputs for fal deployments: upload to fal's storage with ``fal_client`` and pass the URL."""

from __future__ import annotations

import os
from pathlib import Path

from .credentials import fal_key, logged_in_as_user, not_logged_in_message
from .errors import FalNotebookError
from .secrets import redact


def upload_file(
    data: str | os.PathLike | bytes, content_type: str | None = None, *, file_name: str | None = None
) -> str:
    """Upload a file (a path, or its bytes) to fal's storage and return its URL.

    ``content_type`` defaults to the one guessed from the file name (``application/octet-stream``
    for bytes). Uses the credentials fal uses (a profile key and ``%fal_login`` included).
    """
    import fal_client

    key = fal_key()
    if key is None and not logged_in_as_user():
        raise FalNotebookError(not_logged_in_message().replace("nothing was deployed", "nothing was uploaded"))
    label = file_name or ("the file" if isinstance(data, bytes) else Path(data).name)
    client = fal_client.SyncClient(key=key)
    try:
        if isinstance(data, bytes):
            return client.upload(data, content_type or "application/octet-stream", file_name=file_name)
        if content_type is None:
            return client.upload_file(Path(data))
        return client.upload(Path(data).read_bytes(), content_type, file_name=label)
    except Exception as exc:  # httpx's and fal_client's errors alike: say what failed and what to do
        raise FalNotebookError(
            f"Uploading {label} to fal's storage failed ({redact(str(exc)) or type(exc).__name__}). "
            "Check the connection and your key (`%fal_login`), then submit again."
        ) from None
