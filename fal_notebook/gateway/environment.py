"""What the gateway and its runners take from the environment they start in (the kernel's view
of the gateway imports it: the kernel starts the gateway with ``gateway_environment``)."""

from __future__ import annotations

import re
from collections.abc import Mapping

#: What a runner takes from the gateway's environment: what programs need to run on this machine
#: (locale, home, temporary files, CA certificates and proxies for HTTPS, GPUs and what CUDA programs
#: read), none of the user's other variables. Credentials come only as the app's declared secrets
#: and fal's key.
INHERITED = (
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "AWS_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS", "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
    "LD_LIBRARY_PATH", "TORCH_CUDA_ARCH_LIST", "PYTORCH_CUDA_ALLOC_CONF", "CUDAHOSTCXX",
    "XDG_CACHE_HOME", "TORCH_HOME",
    "DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CONTEXT", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY",
)  # fmt: skip
#: Families of variables a runner takes too: locale, CUDA, NVIDIA's, NCCL, Triton and Hugging Face's
#: (caches, offline mode), each without what names a credential (INHERITED_NEVER).
INHERITED_PREFIXES = ("LC_", "CUDA_", "NVIDIA_", "NCCL_", "TRITON_", "HF_")
INHERITED_NEVER = re.compile(r"TOKEN|SECRET|PASSW|CREDENTIAL|(^|_)(API_?)?KEY(_|$)", re.IGNORECASE)
#: Variables the gateway takes beyond those its runners inherit (see ``gateway_environment``).
#: (``FAL_HOME_DIR``: where fal keeps the user's login, hidden from runners.)
GATEWAY_SETTINGS = ("FAL_NOTEBOOK_HOME", "FAL_NOTEBOOK_GPUS", "FAL_NOTEBOOK_DOCKER_NETWORK", "FAL_HOME_DIR")
GATEWAY_PREFIXES = ("FAL_NOTEBOOK_GATEWAY_", "UV_", "PIP_", "JUPYTER_", "XDG_")


def inherited(name: str) -> bool:
    """Whether a runner takes the gateway's variable ``name`` (README's security section says the rule)."""
    return name in INHERITED or (name.startswith(INHERITED_PREFIXES) and not INHERITED_NEVER.search(name))


def gateway_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """What the gateway takes from the kernel's environment: what its runners may inherit
    (:func:`inherited`), fal-notebook's settings, the package index settings its environment
    builds use, and where Jupyter keeps its runtime files (hidden from runners). Never the kernel's
    other variables: secrets reach the gateway only as an app's declared secrets, with its deploy."""
    return {
        name: value
        for name, value in environ.items()
        if inherited(name) or name in GATEWAY_SETTINGS or name.startswith(GATEWAY_PREFIXES)
    }
