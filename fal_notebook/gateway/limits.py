"""The gateway's limits, each with its setting (an environment variable of the gateway process) and
a default: how large a body may be, how many bytes of bodies it holds at once, how many requests
may wait in its queue, and how long a client may take to send a request."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from ..errors import GatewayError

MiB = 1024 * 1024
_NUMBER = re.compile(r"[0-9]+(\.[0-9]+)?")


@dataclass(frozen=True)
class Limits:
    #: Largest request body, in bytes (fal answers 413 above its own limit too).
    max_body: int = 32 * MiB
    #: Bytes of request bodies the gateway holds at once, over all requests being read or relayed;
    #: beyond it a request is answered 503 and may be retried.
    max_bodies: int = 128 * MiB
    #: Requests waiting in the queue, over all apps; beyond it a submission is answered 429.
    max_queue: int = 10_000
    #: Seconds a client may take to send a request's line and headers (slow clients are dropped).
    header_timeout: float = 10.0
    #: Seconds a body may stay silent while it is sent.
    body_timeout: float = 30.0
    #: Bytes a second a body must average once it has taken ``body_timeout`` seconds.
    min_body_rate: int = 1024
    #: Seconds an idle keep-alive connection stays open.
    keep_alive: float = 5.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Limits:
        """The limits, with each ``FAL_NOTEBOOK_GATEWAY_<NAME>`` that is set; GatewayError names a bad one."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(variable(f.name), "").strip()
            if not raw:
                continue
            number = float(raw) if _NUMBER.fullmatch(raw) else math.nan
            if not (math.isfinite(number) and number > 0) or (f.type == "int" and not number.is_integer()):
                raise GatewayError(
                    f"{variable(f.name)}={raw[:40]!r} is not a positive {'whole ' if f.type == 'int' else ''}number "
                    f"(default {getattr(cls, f.name)})."
                )
            values[f.name] = int(number) if f.type == "int" else number
        return cls(**values)


def variable(name: str) -> str:
    """The environment variable of a limit: ``max_body`` → ``FAL_NOTEBOOK_GATEWAY_MAX_BODY``."""
    return f"FAL_NOTEBOOK_GATEWAY_{name.upper()}"
