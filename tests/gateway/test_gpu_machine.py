"""On a machine with NVIDIA GPUs (issue 18's GPU check; deselected where the gateway finds none, as in CI):
torch runners deployed with --target local in the kernel's environment get a GPU of their own, by
UUID, with its name and memory as NVML reads them; a runner that would need one none has free
waits; a CPU app's runners see none. Issue 18's GPU check runs it on a lent GPU machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import fal_notebook
from fal_notebook.backends.local import LocalBackend
from fal_notebook.gateway import gpus
from tests.polling import wait_for

FOUND, SOURCE = gpus.found()
pytestmark = pytest.mark.gpu  # deselected where the gateway finds no GPU (tests/conftest.py)

TORCH_APP = """
import os

import fal
import torch
from pydantic import BaseModel


class Seen(BaseModel):
    cuda: bool
    devices: int
    name: str
    visible: str
    allocated_mib: int


class Cuda(fal.App):
    app_auth = "public"

    def setup(self) -> None:
        if torch.cuda.is_available():  # 512 MiB on the GPU, so that its memory shows
            self.block = torch.ones(128, 1024, 1024, device="cuda")

    @fal.endpoint("/")
    def run(self) -> Seen:
        cuda = torch.cuda.is_available()
        return Seen(
            cuda=cuda,
            devices=torch.cuda.device_count() if cuda else 0,
            name=torch.cuda.get_device_name() if cuda else "",
            visible=os.environ.get("CUDA_VISIBLE_DEVICES", "(not set)"),
            allocated_mib=torch.cuda.memory_allocated() // 2**20 if cuda else 0,
        )
"""


def deploy(gateway, name: str, *, wait: bool = True, **options):
    project = gateway.capture(TORCH_APP, name, keep_alive=600, **options)
    return LocalBackend(env="kernel").deploy(project, wait=wait, progress=print)


def cli(gateway, *args: str) -> str:
    env = {**os.environ, "FAL_NOTEBOOK_HOME": str(gateway.home), "FAL_NOTEBOOK_GATEWAY_PORT": str(gateway.port)}
    done = subprocess.run([sys.executable, "-m", "fal_notebook.cli", *args], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    print(f"$ fal-notebook {' '.join(args)}\n{done.stdout}")
    return done.stdout


def test_a_gpu_runner_gets_a_gpu_of_its_own_and_a_cpu_runner_none(gateway):
    pytest.importorskip("torch")
    deployment = deploy(gateway, "cuda-app", machine_type=["GPU-H100"], max_concurrency=len(FOUND) + 1)
    seen = fal_notebook.connect(deployment.endpoint_id).run({})
    print("the GPU runner saw:", seen)
    by_uuid = {g.uuid: g for g in FOUND}
    assert seen["cuda"] and seen["devices"] == 1 and seen["visible"] in by_uuid
    assert seen["name"] == by_uuid[seen["visible"]].name and seen["allocated_mib"] >= 512
    [runner] = gateway.info("cuda-app")["runners"]
    [held] = runner["gpus"]
    assert held["uuid"] == seen["visible"] and held["name"] == seen["name"] and held["memory_mib"]
    wait_for(  # NVML reads what the runner allocated (readings are kept a second)
        lambda: (gateway.info("cuda-app")["runners"][0]["gpus"][0]["memory_used_mib"] or 0) >= 512,
        "the runner's GPU memory in use to show its 512 MiB",
    )

    status = cli(gateway, "gateway", "status")
    assert f"held by {runner['id']}" in status and seen["name"] in status
    [row] = [r for r in json.loads(cli(gateway, "apps", "--json")) if r["name"] == "cuda-app"]
    assert [(g["runner"], g["uuid"]) for g in row["gpus"]] == [(runner["id"], seen["visible"])]
    line = row["gpus"][0]["line"]  # what the panel and `fal-notebook apps` show: name and memory in use
    assert line.startswith(f"{runner['id']}: GPU {held['index']} {seen['name']} (") and line.endswith(" GiB used"), line

    cpu = deploy(gateway, "cpu-app")
    seen_cpu = fal_notebook.connect(cpu.endpoint_id).run({})
    assert not seen_cpu["cuda"] and seen_cpu["visible"] == ""
    cpu.stop()

    if len(FOUND) == 1:  # a second GPU app waits while the first holds the only GPU, then starts
        deploy(gateway, "cuda-two", machine_type=["GPU-H100"], wait=False)
        wait_for(lambda: "0 free" in (gateway.info("cuda-two").get("waiting") or ""), "cuda-two to wait")
        deployment.stop()
        wait_for(lambda: gateway.info("cuda-two")["status"] == "ready", "cuda-two to serve", timeout=120)
        assert fal_notebook.connect("local/cuda-two").run({})["visible"] == seen["visible"]
        fal_notebook.backends.get_deployment("cuda-two").stop()
    deployment.stop()
