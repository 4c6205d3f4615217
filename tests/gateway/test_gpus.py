"""The GPU inventory (gateway/gpus.py): found through NVML or nvidia-smi, limited by FAL_NOTEBOOK_GPUS,
handed to runners whole and all or nothing. The tests that deploy runners on it are in test_gpu_runners.py."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from fal_notebook.backends import held_gpu_line
from fal_notebook.errors import GatewayError
from fal_notebook.gateway import gpus, start_gateway
from fal_notebook.gateway.gpus import Gpu, GpuPool, Holder
from tests.gateway_helpers import free_port

SMI_OUTPUT = """\
0, GPU-5b1f0c2e-aaaa-bbbb-cccc-000000000000, NVIDIA H200, 143771
1, GPU-9c2e77d1-aaaa-bbbb-cccc-111111111111, NVIDIA H200, 143771
"""
FOUND = gpus.parse_smi(SMI_OUTPUT)


def test_nvidia_smi_output_is_read_as_gpus():
    assert FOUND == [
        Gpu(0, "GPU-5b1f0c2e-aaaa-bbbb-cccc-000000000000", "NVIDIA H200", 143771),
        Gpu(1, "GPU-9c2e77d1-aaaa-bbbb-cccc-111111111111", "NVIDIA H200", 143771),
    ]
    assert gpus.parse_smi("No devices were found\n") == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        (" all ", None),
        ("none", []),
        ("NONE", []),
        ("0,1", ["0", "1"]),
        ("1, 0,1", ["1", "0"]),
    ],
)
def test_the_selection_variable(value, expected):
    assert gpus.selection(value) == expected


@pytest.mark.parametrize("value", ["0,,1", "gpu0", "0;1", "1-2", "GPU-", "0, x y"])
def test_a_malformed_selection_names_the_variable_and_the_entry(value):
    with pytest.raises(GatewayError, match=r"FAL_NOTEBOOK_GPUS=.*is not a GPU index or UUID.*nvidia-smi -L"):
        gpus.selection(value)


def test_the_selection_limits_what_was_found_by_index_or_uuid():
    assert gpus.choose(FOUND, None) == FOUND
    assert gpus.choose(FOUND, []) == []
    assert gpus.choose(FOUND, ["1"]) == [FOUND[1]]
    assert gpus.choose(FOUND, ["GPU-9c2e77d1", "0"]) == [FOUND[1], FOUND[0]]  # a UUID's unique start, as CUDA
    with pytest.raises(GatewayError, match=r"'2' names no GPU of this machine \(it has 0: GPU-5b1f.*NVIDIA H200"):
        gpus.choose(FOUND, ["2"])
    with pytest.raises(GatewayError, match="'GPU-' names several GPUs"):
        gpus.choose(FOUND, ["GPU-"])


def test_without_a_driver_the_selection_is_the_inventory():
    assert gpus.choose([], ["0", "1"]) == [Gpu(0, "0"), Gpu(1, "1")]
    assert gpus.choose([], ["GPU-abc"]) == [Gpu(0, "GPU-abc")]


def test_this_machine_has_no_driver_and_the_variable_makes_an_inventory(monkeypatch):
    """Neither NVML (nvidia-ml-py is installed, its library is not) nor nvidia-smi answers here."""
    if Path("/proc/driver/nvidia").exists():
        pytest.skip("this machine has an NVIDIA driver")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert gpus.found() == ([], gpus.NO_DRIVER)
    pool = GpuPool.from_env({})
    assert (pool.gpus, pool.managed) == ([], False)  # runners of GPU apps see what the machine has, as before
    pool = GpuPool.from_env({"FAL_NOTEBOOK_GPUS": "0,1"})
    assert (pool.gpus, pool.source, pool.managed) == ([Gpu(0, "0"), Gpu(1, "1")], "FAL_NOTEBOOK_GPUS", True)
    pool = GpuPool.from_env({"FAL_NOTEBOOK_GPUS": "none"})
    assert (pool.gpus, pool.managed) == ([], True)


def test_nvidia_smi_is_asked_where_nvml_does_not_answer(monkeypatch, tmp_path):
    """A stand-in for the driver's nvidia-smi (none can run here), answering the query the gateway makes."""
    if gpus.found()[1] == gpus.NVML:
        pytest.skip("NVML answers on this machine: nvidia-smi is not asked")
    smi = tmp_path / "nvidia-smi"
    smi.write_text(
        '#!/bin/sh\n[ "$1" = --query-gpu=index,uuid,name,memory.total ] && [ "$2" = --format=csv,noheader,nounits ] '
        f"|| exit 9\ncat <<'EOF'\n{SMI_OUTPUT}EOF\n"
    )
    smi.chmod(smi.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}/usr/bin:/bin")
    assert gpus.found() == (FOUND, "nvidia-smi")
    pool = GpuPool.from_env({"FAL_NOTEBOOK_GPUS": "1"})
    assert (pool.gpus, pool.source) == ([FOUND[1]], "nvidia-smi, limited by FAL_NOTEBOOK_GPUS")
    with pytest.raises(GatewayError, match="'7' names no GPU"):
        GpuPool.from_env({"FAL_NOTEBOOK_GPUS": "0,7"})


def test_gpus_are_taken_whole_all_or_nothing_and_given_back():
    pool = GpuPool([Gpu(0, "0"), Gpu(1, "1")])
    a, b, c = Holder("a", "a-r1-1"), Holder("b", "b-r1-1"), Holder("c", "c-r1-1")
    assert pool.take(a, 1) == (Gpu(0, "0"),)
    assert pool.take(c, 2) is None  # one is free: it takes none
    assert pool.shortage(2).startswith("it needs 2 GPUs, 1 free (held: 0 by a-r1-1); it starts once a runner")
    assert pool.take(b, 1) == (Gpu(1, "1"),)
    assert pool.shortage(1).startswith("it needs 1 GPU, 0 free (held: 0 by a-r1-1, 1 by b-r1-1)")
    assert pool.shortage(3) == "it needs 3 GPUs and the gateway has 2 (FAL_NOTEBOOK_GPUS)"
    assert pool.held_by("b-r1-1") == (Gpu(1, "1"),)
    assert [(row["index"], row["app"], row["runner"]) for row in pool.describe()] == [
        (0, "a", "a-r1-1"),
        (1, "b", "b-r1-1"),
    ]
    assert pool.release("a-r1-1") == (Gpu(0, "0"),)
    assert pool.release("a-r1-1") == ()
    assert pool.release("b-r1-1") == (Gpu(1, "1"),)
    assert pool.take(c, 2) == (Gpu(0, "0"), Gpu(1, "1"))
    assert gpus.visible(pool.held_by("c-r1-1")) == "0,1"
    assert pool.shortage(1) and not GpuPool([Gpu(0, "0")]).shortage(1)


def test_the_inventory_as_json_has_names_and_memory_where_known():
    pool = GpuPool(FOUND, "nvidia-smi")
    pool.take(Holder("model", "model-r1-1"), 1)
    info = pool.info()
    assert info["source"] == "nvidia-smi"
    assert info["gpus"][0] == {
        "index": 0,
        "uuid": FOUND[0].uuid,
        "name": "NVIDIA H200",
        "memory_mib": 143771,
        "memory_used_mib": None,  # NVML reads it; nvidia-smi was not asked again
        "app": "model",
        "runner": "model-r1-1",
    }
    assert info["gpus"][1]["runner"] is None


def test_a_held_gpu_reads_as_one_line_with_what_is_known():
    """The line the CLI's `apps`, the deployment card and the panel show (list_apps writes it)."""
    held = {**GpuPool(FOUND).describe()[0], "runner": "model-r1-1", "memory_used_mib": 3174}
    assert held_gpu_line(held) == "model-r1-1: GPU 0 NVIDIA H200 (GPU-5b1f0c2e), 3.1 of 140.4 GiB used"
    bare = {**held, "uuid": "0", "name": None, "memory_used_mib": None}  # FAL_NOTEBOOK_GPUS=0, no driver
    assert held_gpu_line(bare) == "model-r1-1: GPU 0"


def test_a_gateway_told_a_malformed_gpu_list_does_not_start_and_says_why(fal_env, monkeypatch):
    monkeypatch.setenv("FAL_NOTEBOOK_GATEWAY_PORT", str(free_port()))
    monkeypatch.setenv("FAL_NOTEBOOK_GATEWAY_TLS_PORT", str(free_port()))
    monkeypatch.setenv("FAL_NOTEBOOK_GPUS", "0;1")
    with pytest.raises(GatewayError, match=r"FAL_NOTEBOOK_GPUS='0;1': '0;1' is not a GPU index or UUID"):
        start_gateway()
