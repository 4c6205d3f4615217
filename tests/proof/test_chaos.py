"""The proof suite (marker ``proof``): chaos against a real gateway, on the local and the Docker target.

Invariants: every accepted request ends (with the app's output, or an explicit error in fal's shape),
none is executed more often than the retry policy allows (fal's 10 attempts), and nothing (process,
container, port) outlives the gateway. ``FAL_NOTEBOOK_PROOF_SIZE=full`` runs the issue's full size;
the reports land in ``test-artifacts/proof/``.
"""

from __future__ import annotations

import random
import re
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import docker
import pytest

from fal_notebook.backends import deploy
from fal_notebook.gateway import start_gateway, stop_gateway
from fal_notebook.gateway.containers import STATE_LABEL
from fal_notebook.gateway.paths import app_log_path, snapshots_dir, state_id
from fal_notebook.gateway.retries import MAX_ATTEMPTS
from tests.gateway_helpers import LocalGateway, free_port

from .chaos import DOCKER_SIZES, LOCAL_SIZES, Report, Target, chosen, kill_runner_process, run_chaos
from .chaos import runner_processes as marked_processes

pytestmark = pytest.mark.proof

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "proof"
#: A fal.App whose calls take 50-200 ms; each execution first appends its request id to a ledger in
#: the revision's snapshot (the runners' working directory, the same across gateway restarts).
CHAOS_APP = """
import asyncio
import os
import random

import fal
from fastapi import Header
from pydantic import BaseModel


class Job(BaseModel):
    n: int


class Done(BaseModel):
    n: int
    pid: int


class Chaos(fal.App):
    @fal.endpoint("/")
    async def run(self, job: Job, x_fal_request_id: str | None = Header(None)) -> Done:
        with open("ledger", "a") as ledger:
            ledger.write(f"{x_fal_request_id}\\n")
        await asyncio.sleep(random.uniform(0.05, 0.2))
        return Done(n=job.n, pid=os.getpid())
"""

#: The same as a server in a container: each execution is a line of its output (the app's log).
CHAOS_SERVER = """
import asyncio
import os
import random

from fastapi import FastAPI, Header
from pydantic import BaseModel


class Job(BaseModel):
    n: int


app = FastAPI()


@app.post("/")
async def run(job: Job, x_fal_request_id: str | None = Header(None)) -> dict:
    print(f"EXEC {x_fal_request_id}", flush=True)
    await asyncio.sleep(random.uniform(0.05, 0.2))
    return {"n": job.n, "pid": os.getpid()}
"""


def check(report: Report) -> None:
    path = report.save(ARTIFACTS)
    print(f"\n{report.row()}\n(report: {path})")
    assert report.accepted == report.requests and report.runner_kills > 0 and report.gateway_kills > 0
    assert report.lost == [], f"{len(report.lost)} accepted requests never ended: {report.lost[:5]}"
    assert report.unexplained_errors == []
    assert report.over_executed == {}, f"executed more than {MAX_ATTEMPTS} times: {report.over_executed}"
    assert report.leaked == []
    assert report.uncounted == 0, "requests answered without an execution recorded: the count is not trustworthy"


def test_chaos_on_the_local_target(tmp_path, monkeypatch):
    size = chosen(LOCAL_SIZES)
    port = free_port()
    monkeypatch.setenv("FAL_NOTEBOOK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FAL_NOTEBOOK_GATEWAY_PORT", str(port))
    ledger = snapshots_dir("chaos") / "rev-1" / "ledger"
    gateway = LocalGateway(home=tmp_path / "home", port=port, apps_dir=tmp_path / "apps")
    start_gateway()
    try:
        gateway.deploy(CHAOS_APP, "chaos", auth="public", max_concurrency=3, max_multiplexing=2, keep_alive=300)

        def executions() -> Counter[str]:
            return Counter(ledger.read_text().split() if ledger.exists() else [])

        def leftovers() -> list[str]:
            return [f"runner process {pid}" for pid in marked_processes()]

        target = Target("local", "chaos", kill_runner_process, executions, leftovers)
        report = run_chaos(target, size, gateway.base)
    finally:
        stop_gateway()
    check(report)


@pytest.mark.docker
def test_chaos_on_the_docker_target(tmp_path, monkeypatch, docker_client):
    size = chosen(DOCKER_SIZES)
    port = free_port()
    monkeypatch.setenv("FAL_NOTEBOOK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FAL_NOTEBOOK_GATEWAY_PORT", str(port))
    monkeypatch.delenv("FAL_NOTEBOOK_BASE_IMAGE", raising=False)
    name = f"chaos-{uuid.uuid4().hex[:6]}"
    gateway = LocalGateway(home=tmp_path / "home", port=port, apps_dir=tmp_path / "apps")
    label = {"label": f"{STATE_LABEL}={state_id()}"}
    start_gateway()
    try:
        project = gateway.capture(CHAOS_SERVER, name, auth="public", max_concurrency=3, max_multiplexing=4)
        deploy(project, target="docker", progress=lambda line: None)

        def kill_container(runner: dict[str, Any] | None) -> bool:
            """SIGKILL the runner's container (``docker kill``), or a random one of this gateway's."""
            running = docker_client.containers.list(filters={**label, "status": "running"})
            if runner is not None:
                running = [c for c in running if c.name == f"fal-notebook-{runner['id']}-{state_id()[:8]}"]
            if not running:
                return False
            try:
                random.choice(running).kill()
            except docker.errors.APIError:  # it ended meanwhile
                return False
            return True

        def executions() -> Counter[str]:
            log = app_log_path(name)
            text = "".join(p.read_text(errors="replace") for p in (log.with_name(log.name + ".1"), log) if p.exists())
            return Counter(re.findall(r"\] EXEC ([0-9a-f-]{36})$", text, re.MULTILINE))

        def leftovers() -> list[str]:
            containers = [f"container {c.name}" for c in docker_client.containers.list(all=True, filters=label)]
            return containers + [f"runner process {pid}" for pid in marked_processes()]

        target = Target("docker", name, kill_container, executions, leftovers)
        report = run_chaos(target, size, gateway.base)
    finally:
        stop_gateway()
        for container in docker_client.containers.list(all=True, filters=label):
            container.remove(force=True)
        for image in docker_client.images.list(name=f"fal-notebook/{name}"):
            docker_client.images.remove(image.id, force=True)
    check(report)
