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
#: fal's health check defaults, from the fal SDK (fal/sdk.py, ``HealthCheck``'s docstring, fal 1.83):
#: ``call_regularly`` True = a check every 15 s, ``timeout_seconds`` 5, ``failure_threshold`` 3,
#: ``start_period_seconds`` 30, "replaced by startup_timeout of the application if it's less than it".
HEALTH_INTERVAL = 15.0
HEALTH_TIMEOUT = 5.0
HEALTH_FAILURE_THRESHOLD = 3
HEALTH_START_PERIOD = 30.0
#: A fal.App serves GET /health (fal's own route, ``fal run`` included): it is probed when the app
#: declares no health check of its own.
APP_HEALTH_PATH = "/health"


@dataclass(frozen=True)
class HealthProbe:
    """How the gateway checks a ready runner: ``method path`` every ``interval`` s, failed when it
    errs, answers 5xx or takes over ``timeout`` s; ``failure_threshold`` failures in a row replace the
    runner, once it has run for ``start_period`` s."""

    path: str
    method: str = "GET"
    interval: float = HEALTH_INTERVAL
    timeout: float = HEALTH_TIMEOUT
    failure_threshold: int = HEALTH_FAILURE_THRESHOLD
    start_period: float = HEALTH_START_PERIOD

    @classmethod
    def from_config(cls, config: AppConfig, startup_timeout: float) -> HealthProbe | None:
        """The app's ``health_check`` with fal's defaults; for a fal.App without one, its /health.
        None when nothing is probed: a server without a health check, or ``call_regularly = false``
        (fal then checks only on request, with a header no local caller sends)."""
        check = config.health_check
        if check is None:
            if config.mode != "app":
                return None
            return cls(APP_HEALTH_PATH, start_period=max(HEALTH_START_PERIOD, startup_timeout))
        if check.call_regularly is False:
            return None
        start_period = check.start_period_seconds if check.start_period_seconds is not None else HEALTH_START_PERIOD
        return cls(
            check.path,
            check.method or ("POST" if config.mode == "app" else "GET"),  # fal's defaults per mode
            timeout=HEALTH_TIMEOUT if check.timeout_seconds is None else check.timeout_seconds,
            failure_threshold=check.failure_threshold or HEALTH_FAILURE_THRESHOLD,
            start_period=max(start_period, startup_timeout),
        )


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
    health: HealthProbe | None = None

    @classmethod
    def from_config(cls, config: AppConfig, *, single_runner: bool = False) -> Settings:
        low = config.min_concurrency or 0
        high = config.max_concurrency if config.max_concurrency is not None else LOCAL_DEFAULT_MAX_CONCURRENCY
        high = max(high, low, 1)
        if single_runner:
            low, high = min(low, 1), 1
        startup_timeout = config.startup_timeout or DEFAULT_STARTUP_TIMEOUT
        return cls(
            min_concurrency=low,
            max_concurrency=high,
            max_multiplexing=config.max_multiplexing or 1,
            concurrency_buffer=config.concurrency_buffer or 0,
            concurrency_buffer_perc=config.concurrency_buffer_perc or 0,
            keep_alive=DEFAULT_KEEP_ALIVE if config.keep_alive is None else config.keep_alive,
            request_timeout=config.request_timeout or DEFAULT_REQUEST_TIMEOUT,
            startup_timeout=startup_timeout,
            retry=Policy.from_config(config.retry_config, config.skip_retry_conditions),
            health=HealthProbe.from_config(config, startup_timeout),
        )

    def desired_runners(self, work: int) -> int:
        """Runners wanted for ``work`` requests (queued + running): enough for max_multiplexing
        each, plus the concurrency buffer, within min and max concurrency."""
        needed = math.ceil(work / self.max_multiplexing)
        buffer = max(self.concurrency_buffer, math.ceil(needed * self.concurrency_buffer_perc / 100))
        return min(self.max_concurrency, max(self.min_concurrency, needed + buffer))
