"""How an app's AppConfig becomes the gateway's scaling and retry settings."""

from __future__ import annotations

from fal_notebook.config import AppConfig
from fal_notebook.gateway.retries import Policy
from fal_notebook.gateway.settings import Settings


def config(**values) -> AppConfig:
    return AppConfig.build({"name": "app", "mode": "app", "class_name": "App", **values})


def test_defaults_follow_fal_with_one_local_runner():
    settings = Settings.from_config(config())
    assert (settings.min_concurrency, settings.max_concurrency, settings.max_multiplexing) == (0, 1, 1)
    assert settings.keep_alive == 60 and settings.startup_timeout == 600
    assert settings.request_timeout == 3600  # fal's default: a hung request does not hold a runner forever
    assert settings.retry == Policy()


def test_desired_runners_cover_the_work_plus_the_buffer_within_min_and_max():
    settings = Settings.from_config(
        config(min_concurrency=1, max_concurrency=4, max_multiplexing=2, concurrency_buffer=1)
    )
    assert settings.desired_runners(0) == 1
    assert settings.desired_runners(1) == 2
    assert settings.desired_runners(3) == 3
    assert settings.desired_runners(100) == 4
    percent = Settings.from_config(config(max_concurrency=10, concurrency_buffer_perc=50))
    assert percent.desired_runners(4) == 6


def test_retry_settings():
    settings = Settings.from_config(
        config(skip_retry_conditions=["timeout"], retry_config={"server_error": {"retries": 2}})
    )
    assert settings.retry == Policy(budgets={"server_error": 2}, skip=frozenset({"timeout"}))


def test_a_fixed_port_means_a_single_runner():
    settings = Settings.from_config(config(min_concurrency=2, max_concurrency=5), single_runner=True)
    assert (settings.min_concurrency, settings.max_concurrency) == (1, 1)
