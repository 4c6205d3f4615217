"""What the gateway and its runners take from the environment they start in (the kernel's view
of the gateway imports it: the kernel starts the gateway with ``gateway_environment``)."""

from __future__ import annotations

from collections.abc import Mapping

#: What a runner takes from the gateway's environment: what programs need to run on this machine
#: (locale, home, temporary files, CA certificates and proxies for HTTPS, GPUs), none of the user's
#: other variables. Credentials come only as the app's declared secrets and fal's key.
INHERITED = (
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "AWS_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS", "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
    "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "LD_LIBRARY_PATH",
    "XDG_CACHE_HOME", "HF_HOME", "TORCH_HOME",
    "DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CONTEXT", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY",
)  # fmt: skip
INHERITED_PREFIXES = ("LC_",)
#: Variables the gateway takes beyond those its runners inherit (see ``gateway_environment``).
GATEWAY_SETTINGS = ("FAL_NOTEBOOK_HOME", "FAL_NOTEBOOK_GPUS")
GATEWAY_PREFIXES = ("FAL_NOTEBOOK_GATEWAY_", "UV_", "PIP_", "JUPYTER_", "XDG_")


def gateway_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """What the gateway takes from the kernel's environment: what its runners may inherit
    (:data:`INHERITED`), fal-notebook's settings, the package index settings its environment
    builds use, and where Jupyter keeps its runtime files (hidden from runners). Never the kernel's
    other variables: secrets reach the gateway only as an app's declared secrets, with its deploy."""
    prefixes = (*INHERITED_PREFIXES, *GATEWAY_PREFIXES)
    names = (*INHERITED, *GATEWAY_SETTINGS)
    return {name: value for name, value in environ.items() if name in names or name.startswith(prefixes)}
