"""What the gateway reads from an app's AppConfig, with fal's defaults (and local ones where fal has none)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..config import AppConfig
from .retries import Policy

#: fal.App's default keep_alive.
DEFAULT_KEEP_ALIVE = 60
#: fal's platform default startup_timeout.
DEFAULT_STARTUP_TIMEOUT = 600
#: A laptop is not a GPU cloud: without max_concurrency an app gets one local runner.
LOCAL_DEFAULT_MAX_CONCURRENCY = 1
#: fal's platform default request_timeout: a request may run this long on a runner.
DEFAULT_REQUEST_TIMEOUT = 3600


@dataclass(frozen=True)
class Settings:
    min_concurrency: int = 0
    max_concurrency: int = LOCAL_DEFAULT_MAX_CONCURRENCY
    max_multiplexing: int = 1
    concurrency_buffer: int = 0
    concurrency_buffer_perc: int = 0
    keep_alive: float = DEFAULT_KEEP_ALIVE
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT
    #: The app's retry_config and skip_retry_conditions (retries.py applies fal's rules with them).
    retry: Policy = field(default_factory=Policy)

    @classmethod
    def from_config(cls, config: AppConfig, *, single_runner: bool = False) -> Settings:
        low = config.min_concurrency or 0
        high = config.max_concurrency if config.max_concurrency is not None else LOCAL_DEFAULT_MAX_CONCURRENCY
        high = max(high, low, 1)
        if single_runner:
            low, high = min(low, 1), 1
        return cls(
            min_concurrency=low,
            max_concurrency=high,
            max_multiplexing=config.max_multiplexing or 1,
            concurrency_buffer=config.concurrency_buffer or 0,
            concurrency_buffer_perc=config.concurrency_buffer_perc or 0,
            keep_alive=DEFAULT_KEEP_ALIVE if config.keep_alive is None else config.keep_alive,
            request_timeout=config.request_timeout or DEFAULT_REQUEST_TIMEOUT,
            startup_timeout=config.startup_timeout or DEFAULT_STARTUP_TIMEOUT,
            retry=Policy.from_config(config.retry_config, config.skip_retry_conditions),
        )

    def desired_runners(self, work: int) -> int:
        """Runners wanted for ``work`` requests (queued + running): enough for max_multiplexing
        each, plus the concurrency buffer, within min and max concurrency."""
        needed = math.ceil(work / self.max_multiplexing)
        buffer = max(self.concurrency_buffer, math.ceil(needed * self.concurrency_buffer_perc / 100))
        return min(self.max_concurrency, max(self.min_concurrency, needed + buffer))
