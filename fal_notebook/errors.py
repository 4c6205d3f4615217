"""User-facing errors: each message says what is wrong, where, and what to do."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class FalNotebookError(Exception):
    """Base of every error fal-notebook shows to a user (displayed without a traceback)."""

    def _render_traceback_(self) -> list[str]:
        """IPython shows this instead of a traceback: the message is the whole story."""
        return [f"\x1b[0;31m{type(self).__name__}\x1b[0m: {self}"]


class ConfigError(FalNotebookError, ValueError):
    """A configuration value is invalid; the message names the key, ``fields`` lists the keys."""

    def __init__(self, message: str, fields: list[str] | tuple[str, ...] = ()):
        super().__init__(message)
        self.fields = list(fields)


class ConfigConflictError(ConfigError):
    """Keys (``fields``) were changed both in the cell and in the project's ``pyproject.toml`` since
    the last capture; the message names each key, both values, and how to settle it."""


class CaptureError(FalNotebookError):
    """A cell cannot become a deployable app; the message names the cell line or variable."""


class ProjectConflictError(FalNotebookError):
    """Files of a generated project were edited by the user and would be overwritten."""

    def __init__(self, path: Path, edited: list[str]):
        self.path = path
        self.edited = edited
        names = ", ".join(edited)
        super().__init__(
            f"Not writing {path}: you edited {names} since fal-notebook generated "
            f"{'it' if len(edited) == 1 else 'them'}. Move your changes into the notebook cell, "
            "or re-run with --force (force=True) to overwrite them."
        )


class DeployError(FalNotebookError):
    """A deployment failed; the message says which step and includes the relevant log."""


class NotFoundError(FalNotebookError, LookupError):
    """No captured or deployed app has that name."""


class RequestError(FalNotebookError):
    """A call to an endpoint failed; the message names the endpoint, the status, the detail and what to do.

    ``detail`` is the app's own ``detail`` (for 422, pydantic's list of ``{loc, msg, type}``);
    ``status_code`` is None when the endpoint could not be reached at all.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        detail: Any = None,
        request_id: str | None = None,
        endpoint_id: str | None = None,
        error_type: str | None = None,
    ):
        super().__init__(message)
        self.status_code = status_code
        self.detail = detail
        self.request_id = request_id
        self.endpoint_id = endpoint_id
        self.error_type = error_type


class RequestTimeoutError(RequestError, TimeoutError):
    """No answer in the time the caller allowed; a queued request keeps running (``handle.cancel()`` stops it)."""


class RealtimeError(RequestError):
    """A realtime session ended badly: the app sent fal's error message (``error_type`` is its code,
    such as ``INTERNAL_ERROR`` or ``TIMEOUT``, ``detail`` its reason), or the connection broke
    (``CONNECTION_CLOSED``)."""


class InputError(FalNotebookError, ValueError):
    """Values for an app's input do not fit its schema; the message names the fields."""

    def __init__(self, message: str, issues: list | tuple = ()):
        super().__init__(message)
        self.issues = list(issues)


class GatewayError(FalNotebookError):
    """The local gateway cannot start or does not answer; the message says why and what to do."""


class DeployCancelled(DeployError):
    """A deploy was cancelled before it finished; a revision that served before keeps serving."""
