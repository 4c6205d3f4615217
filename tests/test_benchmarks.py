"""The benchmark suite still runs (tiny sizes, figures not checked: the figures live in benchmarks/,
measured side by side, never asserted here)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def smoke(*names: str) -> list[str]:
    """The table's rows for ``python -m benchmarks --smoke --only NAMES``."""
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--only", *names],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r"Benchmarks of \d{4}-\d\d-\d\d .* on \d+ CPUs", run.stdout)
    return [line for line in run.stdout.splitlines() if re.match(r"\| .* \| \d+\.\d\d× \|", line)]


def test_the_gateway_clients_deploy_and_form_benchmarks_run():
    rows = smoke("gateway", "clients", "first-response", "scale-out", "form")
    assert len(rows) == 11, rows


@pytest.mark.docker
def test_the_docker_benchmarks_run(docker_client):
    rows = smoke("docker")
    assert len(rows) == 3, rows
