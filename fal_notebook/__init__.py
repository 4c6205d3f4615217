"""fal-notebook: from a notebook cell to fal's runners, and back as a typed Playground.

``%load_ext fal_notebook`` registers the magics; the same operations are available as functions.
Public names are imported lazily so that ``import fal_notebook`` stays cheap. This module is the top
of the package: it may import every layer, and no layer imports it (ARCHITECTURE.md).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ._version import __version__ as __version__
from .backends.base import Deployment as _Deployment
from .capture import capture as capture  # binds the function over the subpackage of the same name

_PUBLIC = {
    "export_notebook": "fal_notebook.capture.notebook",
    "AppProject": "fal_notebook.generate.project",
    "AppConfig": "fal_notebook.config",
    "FalNotebookError": "fal_notebook.errors",
    "ConfigError": "fal_notebook.errors",
    "CaptureError": "fal_notebook.errors",
    "ProjectConflictError": "fal_notebook.errors",
    "DeployError": "fal_notebook.errors",
    "RequestError": "fal_notebook.errors",
    "RequestTimeoutError": "fal_notebook.errors",
    "InputError": "fal_notebook.errors",
    "GatewayError": "fal_notebook.errors",
    "NotFoundError": "fal_notebook.errors",
    "connect": "fal_notebook.client",
    "EndpointClient": "fal_notebook.client",
    "RequestHandle": "fal_notebook.client",
    "AsyncRequestHandle": "fal_notebook.client",
    "Queued": "fal_notebook.client",
    "InProgress": "fal_notebook.client",
    "Completed": "fal_notebook.client",
    "deploy": "fal_notebook.jobs",
    "Deployment": "fal_notebook.backends",
    "Playground": "fal_notebook.widgets.playground",
}

__all__ = sorted([*_PUBLIC, "capture", "__version__"])

if TYPE_CHECKING:  # pragma: no cover
    from .backends import Deployment as Deployment
    from .capture.notebook import export_notebook as export_notebook
    from .client import (
        AsyncRequestHandle as AsyncRequestHandle,
        Completed as Completed,
        EndpointClient as EndpointClient,
        InProgress as InProgress,
        Queued as Queued,
        RequestHandle as RequestHandle,
        connect as connect,
    )
    from .config import AppConfig as AppConfig
    from .errors import (
        CaptureError as CaptureError,
        ConfigError as ConfigError,
        DeployError as DeployError,
        FalNotebookError as FalNotebookError,
        GatewayError as GatewayError,
        InputError as InputError,
        NotFoundError as NotFoundError,
        ProjectConflictError as ProjectConflictError,
        RequestError as RequestError,
        RequestTimeoutError as RequestTimeoutError,
    )
    from .generate.project import AppProject as AppProject
    from .jobs import deploy as deploy
    from .widgets.playground import Playground as Playground


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'fal_notebook' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))


class _WidgetViews:
    """How a notebook shows a Deployment: the widget layer's card and Playground, imported when first
    shown. Installed here, at the top, because backends never import widgets (widgets import backends)."""

    def card(self, deployment: Deployment) -> Any:
        from .widgets.deployment import deployment_view

        return deployment_view(deployment)

    def playground(self, deployment: Deployment, endpoint: str) -> Any:
        from .widgets.playground import Playground

        return Playground(deployment, endpoint=endpoint)


_Deployment.views = _WidgetViews()


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext fal_notebook``: register the magics."""
    from .magics import FalMagics

    ipython.register_magics(FalMagics)


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """The jupyter-server extension: REST routes for the JupyterLab panel."""
    return [{"module": "fal_notebook.server"}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """The prebuilt JupyterLab extension (the fal sidebar), built into ``fal_notebook/labextension``."""
    return [{"src": "labextension", "dest": "fal-notebook"}]
