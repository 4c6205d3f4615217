"""User-facing errors: each message says what is wrong, where, and what to do."""

from __future__ import annotations


class FalNotebookError(Exception):
    """Base of every error fal-notebook shows to a user (displayed without a traceback)."""


class ConfigError(FalNotebookError, ValueError):
    """A configuration value is invalid; the message names the key."""


class CaptureError(FalNotebookError):
    """A cell cannot become a deployable app; the message names the cell line or variable."""


class ProjectConflictError(FalNotebookError):
    """Files of a generated project were edited by the user and would be overwritten."""

    def __init__(self, path, edited: list[str]):
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


class GatewayError(FalNotebookError):
    """The local gateway cannot start or does not answer; the message says why and what to do."""
