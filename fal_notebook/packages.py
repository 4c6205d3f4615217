"""pip requirements as fal-notebook handles them: canonical names, merging, fal's own packages.

Capture infers and merges them, the generators write them, the gateway and the fal checks install
or resolve them: all read the same rules from here.
"""

from __future__ import annotations

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from .errors import ConfigError

#: Packages fal's own runtime depends on; in a container running fal.App code they go last.
FAL_RUNTIME_PACKAGES = frozenset({"fal", "pydantic", "protobuf", "boto3"})


def requirement_name(spec: str, *, where: str = "requirements") -> str:
    """Canonical distribution name of a pip requirement, or a ConfigError naming the bad entry."""
    try:
        return canonicalize_name(Requirement(spec).name)
    except InvalidRequirement as exc:
        raise ConfigError(
            f"`{spec}` in {where} is not a valid pip requirement ({exc}). "
            "Use the form 'package==1.2.3' or 'package>=1.0'."
        ) from None


def merge(declared: list[str], inferred: list[str]) -> list[str]:
    """Declared requirements win over inferred ones of the same distribution; sorted by name."""
    by_name = {requirement_name(r): r for r in inferred}
    by_name.update({requirement_name(r): r for r in declared})
    return [by_name[k] for k in sorted(by_name)]


def split_fal_runtime(requirements: list[str]) -> tuple[list[str], list[str]]:
    """(the user's dependencies, fal's runtime packages) — the latter are installed last."""
    user: list[str] = []
    runtime: list[str] = []
    for req in requirements:
        (runtime if requirement_name(req) in FAL_RUNTIME_PACKAGES else user).append(req)
    return user, runtime


def without_fal(requirements: list[str]) -> list[str]:
    """The requirements less fal itself, which the runner of a fal.App brings."""
    return [r for r in requirements if requirement_name(r) != "fal"]
