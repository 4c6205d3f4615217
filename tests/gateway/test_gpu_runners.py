"""GPU runners on a machine without a GPU (issue 18): the gateway takes FAL_NOTEBOOK_GPUS=0,1 as its
inventory and hands runners of GPU apps their own GPUs, whole, all or none, and takes them back when
they stop; a runner that would need a GPU none has free waits with its app's requests queued; runners
keep what CUDA programs read and, in the kernel's environment, the kernel's PYTHONPATH; no credential
passes. On a machine with an NVIDIA driver, test_gpu_machine.py checks the same on its real GPUs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import fal_notebook
from fal_notebook import cli
from fal_notebook.backends import list_apps
from fal_notebook.backends.local import LocalBackend
from fal_notebook.errors import DeployError
from fal_notebook.wire import Queued
from tests.polling import wait_for

pytestmark = pytest.mark.skipif(
    Path("/proc/driver/nvidia").exists(), reason="this machine has an NVIDIA driver: test_gpu_machine.py runs there"
)

#: What a GPU machine's environment holds (the variables seen on an H200 machine, and more).
CUDA_ENV = {
    "CUDA_HOME": "/usr/local/cuda",
    "CUDA_VERSION": "13.0.1",
    "CUDA_MODULE_LOADING": "LAZY",
    "NCCL_VERSION": "2.27.7-1",
    "NCCL_DEBUG": "WARN",
    "NVIDIA_DRIVER_CAPABILITIES": "compute,utility",
    "NVIDIA_PRODUCT_NAME": "CUDA",
    "NVIDIA_REQUIRE_CUDA": "cuda>=13.0",
    "TORCH_CUDA_ARCH_LIST": "9.0",
    "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True",
    "CUDAHOSTCXX": "/usr/bin/g++",
    "TRITON_CACHE_DIR": "/tmp/triton-cache",
    "HF_HOME": "/tmp/hf-home",
    "HF_HUB_OFFLINE": "1",
    "LD_LIBRARY_PATH": "/usr/local/nvidia/lib64",
}
#: Credentials in the same families: none reaches a runner.
SECRETS = {"HF_TOKEN": "hf_secret", "NVIDIA_API_KEY": "nvapi-secret", "TRITON_PASSWORD": "pw", "NCCL_SECRET": "s"}

ENV_SERVER = """
import os

import kernel_only_pkg
from fastapi import FastAPI

app = FastAPI()


@app.post("/")
def run() -> dict:
    return {"env": dict(os.environ), "kernel_only": kernel_only_pkg.VALUE}
"""


@pytest.fixture(scope="module")
def gpu_environment():
    """The gateway's environment: two GPUs by FAL_NOTEBOOK_GPUS (no driver here), CUDA's variables, credentials."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FAL_NOTEBOOK_GPUS", "0,1")
        for name, value in {**CUDA_ENV, **SECRETS}.items():
            mp.setenv(name, value)
        yield


@pytest.fixture(scope="module")
def gpu_gateway(gpu_environment, gateway):
    return gateway


@pytest.fixture
def kernel_path(tmp_path, monkeypatch):
    """A package the kernel finds only through its PYTHONPATH (set after the gateway started)."""
    package = tmp_path / "path" / "kernel_only_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('VALUE = "found through the kernel\'s PYTHONPATH"\n')
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(package.parent), os.environ.get("PYTHONPATH")])))
    return package.parent


def test_a_kernel_environment_runner_keeps_cuda_variables_and_the_kernels_pythonpath(gpu_gateway, kernel_path):
    deployment = gpu_gateway.deploy(ENV_SERVER, "env-gpu", mode="server", machine_type=["GPU-H100"], auth="public")
    try:
        answer = fal_notebook.connect(deployment.endpoint_id).run({})
    finally:
        deployment.stop()
    env = answer["env"]
    assert answer["kernel_only"] == "found through the kernel's PYTHONPATH"
    assert str(kernel_path) in env["PYTHONPATH"].split(os.pathsep)
    assert {name: env.get(name) for name in CUDA_ENV} == CUDA_ENV
    assert not set(SECRETS) & set(env)
    assert any("Runners use the kernel's Python environment as it is" in line for line in gpu_gateway.progress[:1])


VISIBLE = """
import os

from fastapi import FastAPI

app = FastAPI()


@app.post("/")
def run() -> dict:
    return {"visible": os.environ.get("CUDA_VISIBLE_DEVICES")}
"""


def visible(name: str) -> str | None:
    return fal_notebook.connect(f"local/{name}").run({})["visible"]


def deploy(gateway, name: str, *, wait: bool = True, source: str = VISIBLE, **options):
    """Deploy a server that tells its CUDA_VISIBLE_DEVICES (``wait=False``: in the background)."""
    project = gateway.capture(source, name, mode="server", auth="public", keep_alive=600, **options)
    return LocalBackend(env="kernel").deploy(project, wait=wait, progress=lambda line: None)


def waiting(gateway, name: str, reason: str) -> str:
    """The app's reason to wait, once it is ``reason``."""
    return wait_for(
        lambda: reason in (gateway.info(name).get("waiting") or "") and gateway.info(name)["waiting"],
        f"{name} to wait: {reason}",
        timeout=60,
    )


def holders(gateway) -> dict[int, str | None]:
    with gateway.http() as client:
        return {gpu["index"]: gpu["runner"] for gpu in client.get("/_fal_notebook/gpus").json()["gpus"]}


def test_gpus_are_handed_out_whole_waited_for_and_given_back(gpu_gateway, capsys):
    gateway = gpu_gateway
    gpu = {"machine_type": ["GPU-H100"], "max_concurrency": 1}
    deploy(gateway, "gpu-a", **gpu)
    deploy(gateway, "gpu-b", **gpu)
    deploy(gateway, "cpu-app")
    a, b = visible("gpu-a"), visible("gpu-b")
    assert {a, b} == {"0", "1"}  # two GPU apps, two GPUs: different ones
    assert visible("cpu-app") == ""  # as on fal's CPU machines
    assert holders(gateway) == {int(a): "gpu-a-r1-1", int(b): "gpu-b-r1-1"}
    [runner] = gateway.info("gpu-a")["runners"]
    assert [(g["index"], g["uuid"], g["name"]) for g in runner["gpus"]] == [(int(a), a, None)]  # names unknown
    rows = {row["name"]: row for row in list_apps()}  # what `fal-notebook apps --json` prints
    assert [(g["runner"], g["index"], g["line"]) for g in rows["gpu-a"]["gpus"]] == [
        ("gpu-a-r1-1", int(a), f"gpu-a-r1-1: GPU {a}")  # the line the panel and the CLI show
    ]
    assert cli.main(["apps"]) == 0
    assert f"\n    gpu-a-r1-1: GPU {a}\n" in capsys.readouterr().out
    assert rows["cpu-app"]["gpus"] == [] and rows["cpu-app"]["waiting"] is None

    deploy(gateway, "gpu-c", wait=False, **gpu)  # a third runner: none is free
    reason = waiting(gateway, "gpu-c", "it needs 1 GPU, 0 free")
    assert "gpu-a-r1-1" in reason and "gpu-b-r1-1" in reason
    handle = fal_notebook.connect("local/gpu-c").submit({})
    assert isinstance(handle.status(), Queued)
    fal_notebook.backends.get_deployment("gpu-a").stop()  # its GPU is free again: gpu-c's runner starts on it
    assert handle.result(timeout=120) == {"visible": a}
    assert gateway.info("gpu-c")["waiting"] is None

    deploy(gateway, "gpu-two", wait=False, num_gpus=2, **gpu)  # both, or it waits
    waiting(gateway, "gpu-two", "it needs 2 GPUs, 0 free")
    fal_notebook.backends.get_deployment("gpu-b").stop()
    waiting(gateway, "gpu-two", "it needs 2 GPUs, 1 free")  # all or nothing: one is not enough
    fal_notebook.backends.get_deployment("gpu-c").stop()
    wait_for(lambda: gateway.info("gpu-two")["status"] == "ready", "gpu-two to serve", timeout=120)
    assert visible("gpu-two") == "0,1"

    # a redeploy: the new revision's runner needs the GPUs the old one holds, which makes way for it
    deploy(gateway, "gpu-two", num_gpus=2, source=VISIBLE + "# revision 2\n", **gpu)
    assert visible("gpu-two") == "0,1" and gateway.info("gpu-two")["revision"] == 2
    fal_notebook.backends.get_deployment("gpu-two").stop()
    assert holders(gateway) == {0: None, 1: None}


def test_an_app_that_wants_more_gpus_than_the_gateway_has_fails_to_deploy(gpu_gateway):
    with pytest.raises(DeployError, match=r"num_gpus=3: the gateway has 2 GPUs \(FAL_NOTEBOOK_GPUS\)"):
        deploy(gpu_gateway, "gpu-three", machine_type=["GPU-H100"], num_gpus=3)
