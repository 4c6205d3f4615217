"""What a runner takes from the machine before it starts, and gives back once it stopped: the
pool's one seam for resources that are not endless (GPUs, handed out per runner).

The pool (pool.py) asks ``take`` before it makes a runner and calls ``release`` once for every
runner it made, on every way out (it failed to start, it exited, it was stopped). A runner that
cannot have what it needs now waits: the pool starts it once a runner gives its resources back,
its app's requests stay queued meanwhile, and the app's log says why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from ...config import AppConfig


@dataclass(frozen=True)
class Claim:
    """What a runner was given: ``env`` is added to its environment (``CUDA_VISIBLE_DEVICES``...)."""

    env: Mapping[str, str] = field(default_factory=dict)


class Resources(Protocol):
    def take(self, runner_id: str, config: AppConfig) -> Claim | str:
        """What runner ``runner_id`` (of an app with ``config``) is given, or why it must wait."""

    def release(self, runner_id: str) -> None:
        """Give back what runner ``runner_id`` took."""


class NoResources:
    """Runners take nothing the machine could run out of."""

    def take(self, runner_id: str, config: AppConfig) -> Claim | str:
        return Claim()

    def release(self, runner_id: str) -> None:
        pass
