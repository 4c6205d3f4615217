"""GPU runners (issue 18): a torch model deployed with ``--target local`` on this machine's NVIDIA GPUs,
in the kernel's environment, each figure beside its baseline in the same run:

- deploy → first CUDA answer vs ``fal run --local`` started by hand (alternating rounds);
- sync calls through the gateway vs straight to the runner, each a forward pass on the GPU;

and the runners' GPUs as the gateway hands them out (index, UUID, name, memory) beside what torch
sees inside the runner.

    python -m benchmarks.gpu [--smoke] [--device cpu] [--out DIR]

It needs torch in this Python environment. ``--device cpu`` runs the same model on the CPU, for a
machine without a GPU (the flow is checked; the figures then say nothing about CUDA).
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from .deploy import by_hand, runner_python
from .gateway import overhead
from .harness import (
    Row,
    Sizes,
    app_info,
    deploy,
    deploy_project,
    interleaved,
    load_average,
    machine,
    median,
    private_gateway,
    table,
    tls,
    wait_answer,
    wait_runners,
)

WIDTH = 512
INPUT = {"values": [((i % 7) - 3) / 3 for i in range(WIDTH)]}
#: A small MLP on the GPU: setup() loads it and runs one pass (CUDA context, cuBLAS); each call is
#: one forward pass, so that the call's path, not the arithmetic, is measured.
MODEL = """
import os

import fal
import torch
from pydantic import BaseModel

DEVICE = "__DEVICE__"


class Inputs(BaseModel):
    values: list[float]


class Outputs(BaseModel):
    head: list[float]
    device: str
    devices: int
    visible: str


class TorchModel(fal.App):
    machine_type = "GPU-H100"
    app_auth = "public"
    keep_alive = 600

    def setup(self) -> None:
        torch.manual_seed(0)
        layers = [torch.nn.Linear(__WIDTH__, 4 * __WIDTH__), torch.nn.GELU(), torch.nn.Linear(4 * __WIDTH__, __WIDTH__)]
        self.model = torch.nn.Sequential(*layers).to(DEVICE).eval()
        with torch.inference_mode():
            self.model(torch.zeros(1, __WIDTH__, device=DEVICE))

    @fal.endpoint("/")
    def run(self, data: Inputs) -> Outputs:
        with torch.inference_mode():
            out = self.model(torch.tensor(data.values, device=DEVICE).reshape(1, -1))
            head = out[0, :4].tolist()
        cuda = DEVICE == "cuda"
        return Outputs(
            head=head,
            device=torch.cuda.get_device_name() if cuda else "cpu",
            devices=torch.cuda.device_count() if cuda else 0,
            visible=os.environ.get("CUDA_VISIBLE_DEVICES", "(not set)"),
        )
"""
ROUNDS, CALLS = 5, 400


def model_source(device: str) -> str:
    return MODEL.replace("__DEVICE__", device).replace("__WIDTH__", str(WIDTH))


def answer(url: str) -> dict[str, Any]:
    """The model's answer at ``url``, once it answers (what the runner saw: device, CUDA_VISIBLE_DEVICES)."""
    wait_answer(url, body=INPUT)
    with httpx.Client(timeout=60, verify=tls()) as client:
        response = client.post(url, json=INPUT)
    response.raise_for_status()
    return response.json()


def first_answer(home: Path, name: str, python: str, rounds: int, device: str) -> Row:
    """``python``: the runners' interpreter, which the baseline runs too."""
    from fal_notebook.generate.project import AppProject

    project = AppProject.load(home / "apps" / name)

    def ours() -> list[float]:
        started = time.perf_counter()
        deployment = deploy_project(project, "kernel")
        wait_answer(deployment.url, body=INPUT)
        took = time.perf_counter() - started
        deployment.stop()
        return [took]

    def hand() -> list[float]:
        return [by_hand(home / "apps" / name, python, cls="TorchModel", body=INPUT)]

    got = interleaved({"ours": ours, "hand": hand}, rounds)
    mine, theirs = median(got["ours"]), median(got["hand"])
    return Row(
        f"deploy → first {'CUDA' if device == 'cuda' else 'CPU'} answer (torch MLP, kernel environment) "
        "vs `fal run --local` by hand",
        f"{mine:.2f} s",
        f"{theirs:.2f} s",
        mine / theirs,
        "≤ 1.1×",
        mine / theirs <= 1.1,
    )


def forward_pass(client: httpx.Client, url: str) -> None:
    response = client.post(url, json=INPUT)
    assert response.status_code == 200, response.text


def runners_gpus(name: str, seen: dict[str, Any]) -> list[str]:
    """One line per runner: the GPUs the gateway gave it, and what torch saw inside it."""
    lines = []
    for runner in app_info(name)["runners"]:
        gpus = runner.get("gpus") or []
        held = "; ".join(
            f"GPU {g['index']} {g.get('name') or '(name unknown)'} {g['uuid']}"
            + (
                f", {g['memory_used_mib']} of {g['memory_mib']} MiB used"
                if g.get("memory_used_mib") is not None
                else ""
            )
            for g in gpus
        )
        lines.append(
            f"{runner['id']}: {held or 'no GPU from the gateway'}; inside it torch sees {seen['devices']} "
            f"device(s), {seen['device']}, CUDA_VISIBLE_DEVICES={seen['visible']}"
        )
    return lines


def gateway_gpus() -> dict[str, Any]:
    from fal_notebook.gateway.control import admin

    with admin() as client:
        response = client.get("/_fal_notebook/gpus")
    return response.json() if response.status_code == 200 else {"error": response.text}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="one round, 20 calls: checks that it runs")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--out", type=Path, help="also write the table and the GPUs here (gpu-table.md, gpu.json)")
    args = parser.parse_args(argv)
    import torch  # here: the model's runners import it from this environment too

    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("torch sees no CUDA device here; --device cpu runs the same flow on the CPU")
    rounds, count = (1, 20) if args.smoke else (ROUNDS, CALLS)
    started, load = time.monotonic(), load_average()
    with private_gateway() as home:
        deployment = deploy(home, model_source(args.device), "torch-model")
        seen = answer(deployment.url)
        runner = f"http://127.0.0.1:{wait_runners('torch-model', 1)[0]['port']}/"
        gpus = runners_gpus("torch-model", seen)
        inventory = gateway_gpus()
        python = runner_python(home, "torch-model")
        rows = [overhead(deployment.url, runner, Sizes(calls=count), forward_pass, "sync calls (a forward pass each)")]
        deployment.stop()
        rows.insert(0, first_answer(home, "torch-model", python, rounds, args.device))
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    device = torch.cuda.get_device_name() if args.device == "cuda" else "the CPU (--device cpu)"
    text = "\n".join(
        [
            f"GPU benchmarks of {when} on {machine()}, the model on {device}; torch {torch.__version__}; "
            f"load average {load} at the start, {load_average()} at the end",
            f"({'smoke' if args.smoke else 'full'} sizes, {time.monotonic() - started:.0f} s; "
            "medians of interleaved runs)",
            "",
            table(rows),
            "",
            "The gateway's GPUs: "
            + (
                "; ".join(
                    f"GPU {g['index']} {g.get('name') or '(name unknown)'} {g['uuid']}"
                    for g in inventory.get("gpus", [])
                )
                or "none"
            )
            + f" (found by {inventory.get('source', '?')})",
            "The runners' GPUs:",
            *(f"- {line}" for line in gpus),
        ]
    )
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gpu-table.md").write_text(text + "\n")
        report = {"rows": [row.__dict__ for row in rows], "inventory": inventory, "runners": gpus, "seen": seen}
        (args.out / "gpu.json").write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
