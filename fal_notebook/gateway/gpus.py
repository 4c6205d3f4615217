"""The machine's NVIDIA GPUs, and which runner holds each.

The gateway finds the GPUs once, when it starts: through NVML (the optional ``nvidia-ml-py``
package, module ``pynvml``) or, without it, ``nvidia-smi``. ``FAL_NOTEBOOK_GPUS`` limits what it
hands out (indices or UUIDs, or ``none``); where no NVIDIA driver answers, the GPUs it lists are
taken as the inventory, names unknown, which is how assignment is tested on machines without one.

A runner of an app on one of fal's GPU machine types takes ``num_gpus`` whole GPUs (one by
default), all or none, and sees only those: their UUIDs in ``CUDA_VISIBLE_DEVICES``. A runner that
would need a GPU none has free waits; a stopped runner's GPUs are free again. Runners of CPU apps
see none, as on fal's CPU machines.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import GatewayError

GPUS_VARIABLE = "FAL_NOTEBOOK_GPUS"
#: The variables through which CUDA programs, and NVIDIA's container runtime, find their GPUs.
CUDA_VISIBLE = "CUDA_VISIBLE_DEVICES"
NVIDIA_VISIBLE = "NVIDIA_VISIBLE_DEVICES"
#: How long a reading of the GPUs' memory is reused (the panel asks every few seconds).
MEMORY_TTL = 1.0
NVML = "NVML"
NO_DRIVER = "no NVIDIA driver found"
_ENTRY = re.compile(r"[0-9]+|(GPU|MIG)-[0-9A-Za-z-]+")
_SMI_QUERY = ["--query-gpu=index,uuid,name,memory.total", "--format=csv,noheader,nounits"]


@dataclass(frozen=True)
class Gpu:
    """One GPU the gateway may hand out. ``uuid`` is what a runner is told (``GPU-...``), or, for a
    GPU named in FAL_NOTEBOOK_GPUS where no driver answers, the entry as given."""

    index: int
    uuid: str
    name: str | None = None
    memory_mib: int | None = None  # total

    def label(self) -> str:
        return f"GPU {self.index}" + (f" ({self.name})" if self.name else "")


@dataclass(frozen=True)
class Holder:
    app: str
    runner: str


def parse_smi(text: str) -> list[Gpu]:
    """GPUs from ``nvidia-smi --query-gpu=index,uuid,name,memory.total --format=csv,noheader,nounits``."""
    gpus = []
    for line in text.splitlines():
        fields = [field.strip() for field in line.split(",")]
        if len(fields) < 4 or not fields[0].isdigit():
            continue
        index, uuid, memory = int(fields[0]), fields[1], fields[-1]
        name = ",".join(fields[2:-1]).strip() or None
        gpus.append(Gpu(index, uuid, name, int(memory) if memory.isdigit() else None))
    return gpus


def selection(value: str | None) -> list[str] | None:
    """FAL_NOTEBOOK_GPUS as a list of entries: None when unset (or ``all``: every GPU found),
    ``[]`` for ``none``; GatewayError names a malformed entry."""
    text = (value or "").strip()
    if not text or text.lower() == "all":
        return None
    if text.lower() == "none":
        return []
    entries = [entry.strip() for entry in text.split(",")]
    for entry in entries:
        if not _ENTRY.fullmatch(entry):
            raise GatewayError(
                f"{GPUS_VARIABLE}={text[:80]!r}: {entry[:40]!r} is not a GPU index or UUID. List the GPUs the "
                "gateway may hand to runners, e.g. 0,1 or GPU-5b1f...,GPU-9c2e... (`nvidia-smi -L` shows them), "
                "or none."
            )
    return list(dict.fromkeys(entries))


def choose(found: list[Gpu], chosen: list[str] | None) -> list[Gpu]:
    """The GPUs the gateway hands out: those ``chosen`` among those ``found`` (all of them when
    nothing is chosen); with nothing found, the chosen entries themselves (names unknown)."""
    if chosen is None:
        return list(found)
    if not found:
        return [Gpu(int(entry) if entry.isdigit() else number, entry) for number, entry in enumerate(chosen)]
    result: list[Gpu] = []
    for entry in chosen:
        matches = [g for g in found if (str(g.index) == entry if entry.isdigit() else g.uuid.startswith(entry))]
        if len(matches) != 1:
            have = "; ".join(f"{g.index}: {g.uuid}" + (f" {g.name}" if g.name else "") for g in found)
            what = "names no GPU of" if not matches else "names several GPUs of"
            raise GatewayError(f"{GPUS_VARIABLE}: {entry!r} {what} this machine (it has {have}).")
        if matches[0] not in result:
            result.append(matches[0])
    return result


def found() -> tuple[list[Gpu], str]:
    """The machine's NVIDIA GPUs and what found them: NVML, else nvidia-smi; none without a driver."""
    gpus = _nvml_gpus()
    if gpus is not None:
        return gpus, NVML
    gpus = _smi_gpus()
    if gpus is not None:
        return gpus, "nvidia-smi"
    return [], NO_DRIVER


_loaded: list[Any] = []  # the NVML binding, once initialised


def _nvml() -> Any:
    """The NVML binding, initialised (once per process), or None (not installed, or no driver)."""
    if _loaded:
        return _loaded[0]
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return None
    _loaded.append(pynvml)
    return pynvml


def _nvml_gpus() -> list[Gpu] | None:
    nvml = _nvml()
    if nvml is None:
        return None
    try:
        gpus = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle).total // (1024 * 1024)
            gpus.append(
                Gpu(index, _text(nvml.nvmlDeviceGetUUID(handle)), _text(nvml.nvmlDeviceGetName(handle)), memory)
            )
        return gpus
    except nvml.NVMLError:
        return None


def _smi_gpus() -> list[Gpu] | None:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        done = subprocess.run([smi, *_SMI_QUERY], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_smi(done.stdout) if done.returncode == 0 else None


def _text(value: str | bytes) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


class GpuPool:
    """The GPUs the gateway hands out and who holds each. ``source`` says where they came from
    (NVML, nvidia-smi, FAL_NOTEBOOK_GPUS, or that no driver answered)."""

    def __init__(self, gpus: list[Gpu], source: str = GPUS_VARIABLE):
        self.gpus = list(gpus)
        self.source = source
        self._holders: dict[str, Holder] = {}  # uuid -> holder
        self._memory: tuple[float, dict[str, int]] = (-MEMORY_TTL, {})

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> GpuPool:
        """The pool of a starting gateway: the GPUs found, limited by FAL_NOTEBOOK_GPUS."""
        chosen = selection(environ.get(GPUS_VARIABLE))
        if chosen == []:
            return cls([], f"{GPUS_VARIABLE}=none")
        gpus, source = found()
        if chosen is not None and not gpus:
            source = GPUS_VARIABLE
        elif chosen is not None:
            source = f"{source}, limited by {GPUS_VARIABLE}"
        return cls(choose(gpus, chosen), source)

    @property
    def managed(self) -> bool:
        """Whether the gateway decides what runners see: it found GPUs, or was told which (or none)."""
        return self.source != NO_DRIVER

    def free(self) -> list[Gpu]:
        return [g for g in self.gpus if g.uuid not in self._holders]

    def take(self, holder: Holder, count: int) -> tuple[Gpu, ...] | None:
        """``count`` free GPUs for ``holder`` (lowest indices first), or None while fewer are free."""
        free = self.free()
        if count > len(free):
            return None
        taken = tuple(free[:count])
        for gpu in taken:
            self._holders[gpu.uuid] = holder
        return taken

    def release(self, runner: str) -> tuple[Gpu, ...]:
        """Free what ``runner`` holds; returns it."""
        freed = self.held_by(runner)
        for gpu in freed:
            del self._holders[gpu.uuid]
        return freed

    def held_by(self, runner: str) -> tuple[Gpu, ...]:
        return tuple(g for g in self.gpus if (h := self._holders.get(g.uuid)) is not None and h.runner == runner)

    def shortage(self, count: int) -> str:
        """Why a runner that needs ``count`` GPUs cannot start now (empty when it can)."""
        if count <= len(self.free()):
            return ""
        if count > len(self.gpus):
            return f"it needs {count} GPU{'s' * (count > 1)} and the gateway has {len(self.gpus)} ({self.source})"
        held = ", ".join(f"{g.index} by {self._holders[g.uuid].runner}" for g in self.gpus if g.uuid in self._holders)
        return (
            f"it needs {count} GPU{'s' * (count > 1)}, {len(self.free())} free (held: {held}); it starts once a "
            "runner gives its GPUs back"
        )

    def memory_used(self) -> dict[str, int]:
        """MiB in use on each GPU, by UUID, where NVML says (read at most once a MEMORY_TTL)."""
        now = time.monotonic()
        if now - self._memory[0] < MEMORY_TTL:
            return self._memory[1]
        used: dict[str, int] = {}
        nvml = _nvml() if self.gpus and self.source.startswith(NVML) else None
        if nvml is not None:
            for gpu in self.gpus:
                try:
                    handle = nvml.nvmlDeviceGetHandleByIndex(gpu.index)
                    used[gpu.uuid] = nvml.nvmlDeviceGetMemoryInfo(handle).used // (1024 * 1024)
                except nvml.NVMLError:
                    continue
        self._memory = (now, used)
        return used

    def describe(self, gpus: tuple[Gpu, ...] | list[Gpu] | None = None) -> list[dict[str, Any]]:
        """The GPUs (all, or ``gpus``) as JSON: index, uuid, name, memory (MiB) and who holds each."""
        used = self.memory_used()
        rows = []
        for gpu in self.gpus if gpus is None else gpus:
            holder = self._holders.get(gpu.uuid)
            rows.append(
                {
                    "index": gpu.index,
                    "uuid": gpu.uuid,
                    "name": gpu.name,
                    "memory_mib": gpu.memory_mib,
                    "memory_used_mib": used.get(gpu.uuid),
                    "app": holder.app if holder else None,
                    "runner": holder.runner if holder else None,
                }
            )
        return rows

    def info(self) -> dict[str, Any]:
        return {"source": self.source, "gpus": self.describe()}


@dataclass(frozen=True)
class Plan:
    """What each runner of an app takes: ``count`` GPUs of the pool. ``visible``: its
    CUDA_VISIBLE_DEVICES names them (empty for none); False only for a GPU app where the gateway
    found no GPU and was told none, whose runners see the machine as it is."""

    count: int
    visible: bool = True
    note: str | None = None


def plan(pool: GpuPool, wanted: int, machine_types: list[str]) -> Plan:
    """The Plan for runners that want ``wanted`` GPUs each (0: a CPU app); GatewayError when they
    want more than the gateway has, so they could never start."""
    if not wanted:
        return Plan(0)
    kind = f"machine_type {', '.join(machine_types)}"
    if not pool.managed:
        return Plan(0, False, f"{kind} applies on fal; {pool.source} here, so runners see this machine as it is.")
    if not pool.gpus:
        return Plan(0, True, f"{kind}: the gateway hands out no GPU ({pool.source}); runners get none.")
    if wanted > len(pool.gpus):
        raise GatewayError(
            f"{kind} with num_gpus={wanted}: the gateway has {len(pool.gpus)} GPU{'s' * (len(pool.gpus) != 1)} "
            f"({pool.source}), so no runner could start. Lower --num-gpus, or list more GPUs in {GPUS_VARIABLE}."
        )
    each = f"{wanted} GPU{'s' * (wanted > 1)}"
    return Plan(wanted, True, f"{kind}: each runner gets {each} of its own ({pool.source}), by UUID in {CUDA_VISIBLE}.")


def visible(gpus: tuple[Gpu, ...]) -> str:
    """The value of CUDA_VISIBLE_DEVICES for a runner holding ``gpus`` (empty: no GPU)."""
    return ",".join(g.uuid for g in gpus)
