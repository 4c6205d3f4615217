"""What fal's platform gives a runner, given locally through the seams fal's SDK reads
(docs/fal-conformance.md, "Storage" and "/data"):

- **a store for the files it returns**: fal's SDK uploads ``File``/``Image``/``Audio``/``Video`` to
  ``https://$FAL_REST_HOST/storage/...`` with ``FAL_KEY`` (fal ``flags.py``, ``toolkit/file/providers/fal.py``).
  Local runners get the gateway's HTTPS listener as that host, the runners' store key (uploads.py) as
  their key, never the user's fal key, and a CA bundle that trusts the gateway's authority. Docker
  runners cannot reach the host's loopback: they get the store's socket mounted where fal's node-local
  uploader listens on fal (``/run/fal/api.sock``, ``FAL_USE_LOCAL_UPLOADER=1``), and a REST host that
  answers nowhere, so that no fallback leaves the machine;
- **a persistent /data**: Docker runners mount one volume per user there (one per state directory),
  shared by all the user's apps as on fal; local runners have a folder under ``FAL_NOTEBOOK_HOME``
  (``data/``), shared the same way: at ``/data`` where they are sandboxed (a private bind, as on fal),
  else where it is. Their cache variables point into it, unless the user set their own.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from .. import wire
from ..errors import DeployError
from .paths import ensure_key, gateway_dir, runner_key, state_id, store_socket_path

#: Where fal's node-local uploader listens on fal's machines (fal ``toolkit/file/_local_uploader.py``).
FAL_API_SOCKET = "/run/fal/api.sock"
#: fal's persistent volume, and where a Docker runner has it.
DATA_MOUNT = "/data"
#: A REST host for Docker runners that answers nowhere (port 9, "discard", closed in a container).
NOWHERE = "127.0.0.1:9"
#: The caches fal's images keep on /data, relative to the data folder.
CACHES = {
    "HF_HOME": ".cache/huggingface",
    "TORCH_HOME": ".cache/torch",
    "XDG_CACHE_HOME": ".cache",
}
_DATA_LITERAL = re.compile(r"""["']/data(/|["'])""")


def data_dir() -> Path:
    """The local runners' persistent folder (``<FAL_NOTEBOOK_HOME>/data``), shared by the user's apps."""
    folder = gateway_dir().parent / "data"
    folder.mkdir(exist_ok=True, mode=0o700)
    return folder


def data_volume() -> str:
    """The Docker volume mounted at /data in every Docker runner of this state directory."""
    return f"fal-notebook-data-{state_id()}"


def local_environment(tls_port: int, ca_bundle: Path, inherited: Mapping[str, str], data: str) -> dict[str, str]:
    """The store and caches of a runner process on this machine, which sees the data folder at
    ``data`` (:data:`DATA_MOUNT` in a sandbox, else the folder itself); a cache the runner
    ``inherited`` set (the user's own ``HF_HOME``...) stays theirs."""
    env = {name: f"{data}/{path}" for name, path in CACHES.items() if not inherited.get(name)}
    env.update(
        {
            wire.REST_HOST_VARIABLE: f"{wire.GATEWAY_HOST}:{tls_port}",
            wire.FAL_KEY_VARIABLE: runner_key(ensure_key()),
            wire.CA_BUNDLE_VARIABLE: str(ca_bundle),
            "FAL_NOTEBOOK_DATA": data,
        }
    )
    return env


def docker_environment() -> dict[str, str]:
    """The store and caches of a runner container (``docker_mounts`` gives it the socket and /data)."""
    env = {name: f"{DATA_MOUNT}/{path}" for name, path in CACHES.items()}
    env.update(
        {
            "FAL_USE_LOCAL_UPLOADER": "1",
            "FAL_API_SOCKET": FAL_API_SOCKET,
            wire.REST_HOST_VARIABLE: NOWHERE,
            wire.FAL_KEY_VARIABLE: runner_key(ensure_key()),
        }
    )
    return env


def docker_mounts() -> list[str]:
    """``docker run`` arguments: the store's socket at fal's uploader socket, the user's volume at /data."""
    return [
        "--mount",
        f"type=bind,source={store_socket_path()},target={FAL_API_SOCKET}",
        "--mount",
        f"type=volume,source={data_volume()},target={DATA_MOUNT}",
    ]


def check_data_literal(source: str, where: str) -> None:
    """Refuse at deploy an app that writes the literal path /data where unsandboxed local runners
    cannot have it."""
    if not _DATA_LITERAL.search(source):
        return
    target = Path(DATA_MOUNT)
    if target.is_dir() and os.access(target, os.W_OK | os.X_OK):
        return
    raise DeployError(
        f"{where} uses the path {DATA_MOUNT}, which local runners on this machine cannot write (fal mounts its "
        f"persistent volume there; sandboxed runners have a private one, and these are not sandboxed: install "
        f"bubblewrap). Deploy with --target docker (its runners mount a persistent {DATA_MOUNT}), or "
        f"use the cache variables local runners get (HF_HOME, TORCH_HOME, XDG_CACHE_HOME, FAL_NOTEBOOK_DATA: "
        f"folders under FAL_NOTEBOOK_HOME/data), e.g. os.environ.get('FAL_NOTEBOOK_DATA', '{DATA_MOUNT}')."
    )
