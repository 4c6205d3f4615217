"""GPU runners on a machine without a GPU (issue 18): the gateway takes FAL_NOTEBOOK_GPUS=0,1 as its
inventory and hands runners of GPU apps their own GPUs; runners keep what CUDA programs read and,
in the kernel's environment, the kernel's PYTHONPATH; no credential passes."""

from __future__ import annotations

import os

import pytest

import fal_notebook

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
