"""The states of a deployed app, its revisions and its runners, as ``str`` enums: one vocabulary for
the gateway that sets them, the backends and front ends that show them, and the records and the
admin API's JSON that keep their strings. (fal's request statuses, cancel answers and error types
are fal's wire vocabulary: ``wire.py``.)"""

from __future__ import annotations

from enum import StrEnum


class AppStatus(StrEnum):
    """An app behind the gateway, or on fal (a Deployment's status)."""

    DEPLOYING = "deploying"  # its first revision (or a redeploy after a failure) is rolling out
    READY = "ready"  # a revision serves
    CRASH_LOOPING = "crash-looping"  # its runners keep failing: the gateway backs off and tries again
    FAILED = "failed"  # its first deploy failed: nothing serves until a redeploy
    STOPPED = "stopped"


#: Apps whose serving revision takes work (a crash-looping one as soon as a runner is ready).
SERVING = (AppStatus.READY, AppStatus.CRASH_LOOPING)
#: Apps that take no work at all until they are deployed again.
DOWN = (AppStatus.FAILED, AppStatus.STOPPED)


class RevisionStatus(StrEnum):
    DEPLOYING = "deploying"
    READY = "ready"
    FAILED = "failed"
    SUPERSEDED = "superseded"  # a newer deploy replaced it before it served
    CANCELLED = "cancelled"  # its deploy was cancelled before it served


class RunnerState(StrEnum):
    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"  # finishes its requests, takes no new ones, then stops
    STOPPING = "stopping"
    DEAD = "dead"


#: Runners that count as live capacity (ready, or about to be).
LIVE = (RunnerState.STARTING, RunnerState.READY)
#: Runners on their way out.
GOING = (RunnerState.STOPPING, RunnerState.DEAD)
