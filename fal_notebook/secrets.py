"""Keep credentials out of everything fal-notebook writes or shows."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

_SECRET_NAME = re.compile(r"(KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL)", re.IGNORECASE)
_MIN_SECRET_LENGTH = 8
REDACTED = "***"


def secret_values() -> dict[str, str]:
    """Credentials by name: environment variables that hold them, and the fal key in use (which
    may come from fal's profile config or a Colab secret rather than the environment)."""
    found = _fal_key_in_use()
    for name, value in os.environ.items():
        if name.startswith("FAL_KEY") or _SECRET_NAME.search(name):
            if len(value) >= _MIN_SECRET_LENGTH:
                found[name] = value
    key = os.environ.get("FAL_KEY", "")
    if ":" in key:  # FAL_KEY is "<id>:<secret>"; either half alone is still a credential
        key_id, key_secret = key.split(":", 1)
        if len(key_secret) >= _MIN_SECRET_LENGTH:
            found["FAL_KEY (secret part)"] = key_secret
        if len(key_id) >= _MIN_SECRET_LENGTH:
            found["FAL_KEY (id part)"] = key_id
    return found


def _fal_key_in_use() -> dict[str, str]:
    from .credentials import find_credentials
    from .errors import ConfigError

    try:
        credentials = find_credentials()
    except ConfigError:  # a malformed key is still a secret, but the environment scan below finds it
        return {}
    if credentials is None:
        return {}
    parts = {"fal key": credentials.key, "fal key secret": credentials.key_secret, "fal key id": credentials.key_id}
    return {name: value for name, value in parts.items() if len(value) >= _MIN_SECRET_LENGTH}


def secrets_in(text: str) -> list[str]:
    """Names of the credentials whose values appear in ``text``."""
    return [name for name, value in secret_values().items() if value in text]


class Redactor:
    """Replaces credential values with ``***`` in one pass: the known ones (read when it is made, so
    make one where the values are settled, e.g. once per deploy) and ``extra`` values."""

    def __init__(self, extra: Iterable[str] = ()):
        values = sorted({*secret_values().values(), *(value for value in extra if value)}, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, values))) if values else None

    def __call__(self, text: str) -> str:
        return self._pattern.sub(REDACTED, text) if self._pattern is not None else text


def redact(text: str) -> str:
    """``text`` with every known credential value replaced by ``***``."""
    return Redactor()(text)
