"""Keep credentials out of everything fal-notebook writes or shows."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator

_SECRET_NAME = re.compile(r"(KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL)", re.IGNORECASE)
_MIN_SECRET_LENGTH = 8
REDACTED = "***"


def parts(name: str, value: str) -> Iterator[tuple[str, str]]:
    """``(name, value)`` and, for a key ``<id>:<secret>`` (fal's and the gateway's), each half: either
    half alone is still a credential. Values too short to tell apart from ordinary text are left out."""
    key_id, colon, key_secret = value.partition(":")
    pieces = [(name, value)] + ([(f"{name} (id part)", key_id), (f"{name} (secret part)", key_secret)] if colon else [])
    yield from ((label, piece) for label, piece in pieces if len(piece) >= _MIN_SECRET_LENGTH)


def secret_values() -> dict[str, str]:
    """Credentials by name: environment variables that hold them, the fal key in use (which may come
    from fal's profile config or a Colab secret rather than the environment, or be the key that
    ``%fal_env`` set aside), and the local gateway's key; keys also by their halves."""
    from .credentials import find_credentials, user_credentials
    from .errors import ConfigError
    from .state import read_gateway_key

    found = {
        name: value for name, value in os.environ.items() if name.startswith("FAL_KEY") or _SECRET_NAME.search(name)
    }
    for name, find in (("fal key", find_credentials), ("the user's fal key", user_credentials)):
        try:
            credentials = find()
        except ConfigError:  # a malformed key is still a secret, but the environment scan finds it
            credentials = None
        if credentials is not None:
            found[name] = credentials.key
    found["the gateway's key"] = read_gateway_key() or ""
    return {label: piece for name, value in found.items() for label, piece in parts(name, value)}


def secrets_in(text: str) -> list[str]:
    """Names of the credentials whose values appear in ``text``."""
    return [name for name, value in secret_values().items() if value in text]


class Redactor:
    """Replaces credential values with ``***`` in one pass: the known ones (read when it is made, so
    make one where the values are settled, e.g. once per deploy) and ``extra`` values (keys also by
    their halves)."""

    def __init__(self, extra: Iterable[str] = ()):
        values = {*secret_values().values(), *(piece for value in extra for _, piece in parts("", value))}
        ordered = sorted(values, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __call__(self, text: str) -> str:
        return self._pattern.sub(REDACTED, text) if self._pattern is not None else text


def redact(text: str) -> str:
    """``text`` with every known credential value replaced by ``***``."""
    return Redactor()(text)
