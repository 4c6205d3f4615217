"""One deployed app inside the gateway: its runtime (``AppRuntime``, runtime.py) and its rooms."""

from __future__ import annotations

from .host import Host
from .outcome import Outcome
from .queue import Unavailable
from .resources import Claim, GpuResources, NoResources, Resources
from .revision import Build
from .runtime import AppRuntime

__all__ = [
    "AppRuntime",
    "Build",
    "Claim",
    "GpuResources",
    "Host",
    "NoResources",
    "Outcome",
    "Resources",
    "Unavailable",
]
