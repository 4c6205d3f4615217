"""What the gateway reads from an app's AppConfig, with fal's defaults (and local ones where fal has none)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..config import AppConfig
from ..wire import RETRY_CONDITIONS

#: fal.App's default keep_alive.
DEFAULT_KEEP_ALIVE = 60
#: fal's platform default startup_timeout.
DEFAULT_STARTUP_TIMEOUT = 600
#: A laptop is not a GPU cloud: without max_concurrency an app gets one local runner.
LOCAL_DEFAULT_MAX_CONCURRENCY = 1
#: fal retries a queued request up to 10 attempts on server_error, connection_error and timeout.
DEFAULT_ATTEMPTS = 10


@dataclass(frozen=True)
class Settings:
    min_concurrency: int = 0
    max_concurrency: int = LOCAL_DEFAULT_MAX_CONCURRENCY
    max_multiplexing: int = 1
    concurrency_buffer: int = 0
    concurrency_buffer_perc: int = 0
    keep_alive: float = DEFAULT_KEEP_ALIVE
    request_timeout: float | None = None
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT
    attempts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RETRY_CONDITIONS, DEFAULT_ATTEMPTS))

    @classmethod
    def from_config(cls, config: AppConfig, *, single_runner: bool = False) -> Settings:
        low = config.min_concurrency or 0
        high = config.max_concurrency if config.max_concurrency is not None else LOCAL_DEFAULT_MAX_CONCURRENCY
        high = max(high, low, 1)
        if single_runner:
            low, high = min(low, 1), 1
        skipped = set(config.skip_retry_conditions or ())
        retries: dict[str, int] = {k: v.retries for k, v in (config.retry_config or {}).items()}
        attempts = {
            c: 1 if c in skipped else retries[c] + 1 if c in retries else DEFAULT_ATTEMPTS for c in RETRY_CONDITIONS
        }
        return cls(
            min_concurrency=low,
            max_concurrency=high,
            max_multiplexing=config.max_multiplexing or 1,
            concurrency_buffer=config.concurrency_buffer or 0,
            concurrency_buffer_perc=config.concurrency_buffer_perc or 0,
            keep_alive=DEFAULT_KEEP_ALIVE if config.keep_alive is None else config.keep_alive,
            request_timeout=config.request_timeout,
            startup_timeout=config.startup_timeout or DEFAULT_STARTUP_TIMEOUT,
            attempts=attempts,
        )

    def desired_runners(self, work: int) -> int:
        """Runners wanted for ``work`` requests (queued + running): enough for max_multiplexing
        each, plus the concurrency buffer, within min and max concurrency."""
        needed = math.ceil(work / self.max_multiplexing)
        buffer = max(self.concurrency_buffer, math.ceil(needed * self.concurrency_buffer_perc / 100))
        return min(self.max_concurrency, max(self.min_concurrency, needed + buffer))
