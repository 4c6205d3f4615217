"""jupyter-server extension: the REST routes the JupyterLab panel calls, under ``<base_url>/fal-notebook/``.

Every handler is a thin, authenticated and authorized view over the Python API (the same calls as
the magics and the CLI); long operations run in worker threads or as deploy jobs, so the server
stays responsive.
"""

from __future__ import annotations

from pathlib import Path

from jupyter_server.utils import url_path_join

from .handlers import ROUTES, Context


def _load_jupyter_server_extension(serverapp) -> None:
    base = url_path_join(serverapp.web_app.settings["base_url"], "fal-notebook")
    serverapp.web_app.settings["fal_notebook"] = Context(Path(serverapp.root_dir))
    serverapp.web_app.add_handlers(".*$", [(url_path_join(base, pattern), handler) for pattern, handler in ROUTES])
    serverapp.log.info("fal-notebook: REST routes under %s", base)
