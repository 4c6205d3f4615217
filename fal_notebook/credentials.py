"""fal credentials, found the way fal finds them, and kept out of sight.

Order (fal's ``fal.auth.key_credentials``, first match wins): ``FAL_KEY="<key_id>:<key_secret>"``;
the ``key`` of the active profile in fal's config (``FAL_CONFIG_PATH``, default
``~/.fal/config.toml``; profile from ``FAL_PROFILE`` or the file's ``[__internal__] profile``); the
Colab secret ``FAL_KEY``; ``FAL_KEY_ID`` + ``FAL_KEY_SECRET``. ``FAL_FORCE_AUTH_BY_USER=1`` skips
keys. Without a key, fal uses the login saved by ``fal auth login`` (``FAL_HOME_DIR``, default
``~/.fal``). ``login()`` keeps a key entered in the notebook for the kernel session (in
``FAL_KEY``, so the ``fal`` subprocess and the client see it) and can save it in a fal profile.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError
from .fal_sdk import save_profile_key
from .state import read_gateway_key

DEFAULT_CONFIG_PATH = "~/.fal/config.toml"
DEFAULT_HOME_DIR = "~/.fal"
DEFAULT_PROFILE = "default"
KEYS_PAGE = "https://fal.ai/dashboard/keys"


@dataclass(frozen=True)
class FalCredentials:
    """A fal key and where it was found. Its ``repr`` and ``str`` never show the secret."""

    key_id: str = field(repr=False)
    key_secret: str = field(repr=False)
    source: str

    @property
    def key(self) -> str:
        """``<key_id>:<key_secret>``, the value of ``FAL_KEY`` and of ``Authorization: Key ...``."""
        return f"{self.key_id}:{self.key_secret}"

    @property
    def masked(self) -> str:
        return f"{self.key_id[:4]}…"

    def __repr__(self) -> str:
        return f"FalCredentials(key_id={self.masked!r}, source={self.source!r})"

    def __str__(self) -> str:
        return f"fal key {self.masked} (from {self.source})"


def config_path() -> Path:
    """fal's config file (``FAL_CONFIG_PATH``, default ``~/.fal/config.toml``)."""
    return Path(os.path.expanduser(os.environ.get("FAL_CONFIG_PATH", DEFAULT_CONFIG_PATH)))


def _read_config() -> dict:
    try:
        return tomllib.loads(config_path().read_text())
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"fal's config file {config_path()} is not valid TOML ({exc}); fix or remove it.") from None


def active_profile(config: dict | None = None) -> str | None:
    """The profile fal uses: ``FAL_PROFILE``, else the file's default; None if it does not exist."""
    config = _read_config() if config is None else config
    name = os.environ.get("FAL_PROFILE") or config.get("__internal__", {}).get("profile")
    return name if name and isinstance(config.get(name), dict) else None


def _split(key: str, source: str) -> FalCredentials:
    key_id, sep, key_secret = key.strip().partition(":")
    if not sep or not key_id or not key_secret:
        raise ConfigError(
            f"The fal key in {source} is not in the form <key_id>:<key_secret>. Copy the whole key "
            f"(both parts, with the colon) from {KEYS_PAGE}, then set it again (`%fal_login`)."
        )
    return FalCredentials(key_id, key_secret, source)


def _colab_key() -> str | None:
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    if "google.colab" not in str(get_ipython()):
        return None
    try:
        from google.colab import userdata

        return (userdata.get("FAL_KEY") or "").strip() or None
    except Exception:  # no such secret, or access not granted: fal treats both as "no key"
        return None


#: The user's ``FAL_KEY`` that ``%fal_env`` replaced with the gateway's key in this process.
_set_aside: str | None = None


def set_aside_fal_key() -> None:
    """Keep the user's ``FAL_KEY`` before ``%fal_env`` replaces it with the gateway's key: it stays
    the user's fal key (for deploys to fal, runners, redaction) while fal_client uses the gateway's."""
    global _set_aside
    current = os.environ.get("FAL_KEY", "").strip()
    if current and current != read_gateway_key():
        _set_aside = current


def find_credentials() -> FalCredentials | None:
    """The fal key fal itself would use (``FAL_KEY`` as it is: what fal_client sends), or None. A
    malformed key raises ConfigError."""
    return _credentials(os.environ.get("FAL_KEY", "").strip())


def user_credentials() -> FalCredentials | None:
    """The user's own fal key (to deploy to fal, and for runners, as fal's have it): as
    ``find_credentials``, but ``FAL_KEY`` holding the local gateway's key (``%fal_env``,
    ``fal-notebook env``) is not the user's: the key it replaced in this process counts instead,
    else fal's other places."""
    env_key = os.environ.get("FAL_KEY", "").strip()
    if env_key and env_key == read_gateway_key():
        env_key = _set_aside or ""
    return _credentials(env_key)


def _credentials(env_key: str) -> FalCredentials | None:
    """fal's order of places for a key, with ``env_key`` as ``FAL_KEY``."""
    if os.environ.get("FAL_FORCE_AUTH_BY_USER") == "1":
        return None
    if env_key:
        return _split(env_key, "the FAL_KEY environment variable")
    config = _read_config()
    profile = active_profile(config)
    if profile and config[profile].get("key"):
        return _split(config[profile]["key"], f"fal profile {profile!r} in {config_path()}")
    colab = _colab_key()
    if colab:
        return _split(colab, "the Colab secret FAL_KEY")
    if os.environ.get("FAL_KEY_ID") and os.environ.get("FAL_KEY_SECRET"):
        key_id, key_secret = os.environ["FAL_KEY_ID"], os.environ["FAL_KEY_SECRET"]
        return FalCredentials(key_id, key_secret, "FAL_KEY_ID and FAL_KEY_SECRET")
    return None


def fal_key() -> str | None:
    """``<key_id>:<key_secret>`` for ``Authorization: Key ...``, or None when no key is set."""
    credentials = find_credentials()
    return credentials.key if credentials else None


def user_login_path() -> Path:
    """Where ``fal auth login`` keeps its token."""
    return Path(os.path.expanduser(os.environ.get("FAL_HOME_DIR", DEFAULT_HOME_DIR))) / "auth0_token"


def logged_in_as_user() -> bool:
    """Whether ``fal auth login`` saved a login that fal falls back to when no key is set."""
    path = user_login_path()
    return path.is_file() and bool(path.read_text().strip())


def not_logged_in_message() -> str:
    return (
        "You are not logged in to fal, so nothing was deployed. Run `%fal_login` in the notebook and "
        f"paste a key from {KEYS_PAGE} (or set FAL_KEY=<key_id>:<key_secret> before starting "
        "Jupyter, or run `fal auth login` in a terminal), then deploy again."
    )


def login(key: str, *, save: bool = False, profile: str | None = None) -> FalCredentials:
    """Use ``key`` for the rest of this kernel session (``FAL_KEY`` in this process's environment);
    with ``save``, also store it as the key of a fal profile (fal's own config file)."""
    credentials = _split(key, "the key you entered")
    os.environ["FAL_KEY"] = credentials.key
    os.environ.pop("FAL_FORCE_AUTH_BY_USER", None)
    if save:
        saved_in = save_to_profile(credentials, profile)
        return FalCredentials(credentials.key_id, credentials.key_secret, f"fal profile {saved_in!r}")
    return FalCredentials(credentials.key_id, credentials.key_secret, "this kernel session (%fal_login)")


def save_to_profile(credentials: FalCredentials, profile: str | None = None) -> str:
    """Store the key in a fal profile as ``fal profile create/set`` and ``fal profile key`` do:
    ``profile``, else the active one, else ``default``. Returns the profile's name."""
    return save_profile_key(credentials.key, profile, DEFAULT_PROFILE)
