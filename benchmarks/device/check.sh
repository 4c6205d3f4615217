#!/bin/bash
# The GPU check (issue 18), on a lent NVIDIA machine (Python 3.12 with torch and nvidia-ml-py, no
# network, nothing of fal-notebook installed). Fetch the wheels here first
# (`sh benchmarks/device/fetch-wheels.sh`, into the ignored .device/wheels), then, from the
# repository's root on that machine, with .device carried:
#     bash benchmarks/device/check.sh
# It installs the carried wheels into /tmp/site, runs fal-notebook from the tree (PYTHONPATH), shows
# nvidia-smi, runs the GPU tests (tests/gateway/test_gpu_machine.py and the inventory's unit tests)
# and benchmarks/gpu.py with FAL_NOTEBOOK_LOCAL_ENV=kernel, and writes everything under $OUT:
# check.log (all output), nvidia-smi.txt, pytest.txt, gpu-table.md, gpu.json.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-/tmp/gpu-check}"
mkdir -p "$OUT"
exec > >(tee "$OUT/check.log") 2>&1
step() { printf '\n== %s (%s)\n' "$*" "$(date -u +%H:%M:%S)"; }

step "wheels"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .device/wheels/*.whl || exit 1
export PYTHONPATH="/tmp/site:$PWD" FAL_NOTEBOOK_LOCAL_ENV=kernel PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
python3 -c 'import sys, torch, fal, pynvml, fal_notebook
print(sys.version.split()[0], "torch", torch.__version__, "cuda", torch.cuda.is_available(), "fal", fal.__version__)'

step "nvidia-smi"
nvidia-smi | tee "$OUT/nvidia-smi.txt"
nvidia-smi -L | tee -a "$OUT/nvidia-smi.txt"
env | grep -E '^(CUDA|NVIDIA|NCCL|TORCH_CUDA|PYTORCH|TRITON|HF_)' | sort | tee -a "$OUT/nvidia-smi.txt"

step "GPU tests"
timeout 240 python3 -m pytest -p no:cacheprovider -q -rA tests/gateway/test_gpus.py \
    tests/gateway/test_gpu_machine.py 2>&1 | tee "$OUT/pytest.txt"
tests=${PIPESTATUS[0]}

step "benchmarks/gpu.py"
timeout 270 python3 -m benchmarks.gpu --out "$OUT"
bench=$?

step "done: pytest exit $tests, benchmark exit $bench"
[ "$tests" = 0 ] && [ "$bench" = 0 ]
