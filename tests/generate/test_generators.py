"""Generators are pure: the full text is compared with golden files, and fal's validator reads the TOML."""

import os
from pathlib import Path

import pytest

from fal_notebook.config import AppConfig
from fal_notebook.generate.dockerfile import base_image
from fal_notebook.generate.project import render_files
from fal_notebook.generate.pyproject import pyproject

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("FAL_NOTEBOOK_UPDATE_GOLDEN") == "1"

CASES = {
    "app": (
        {
            "name": "text-stats",
            "mode": "app",
            "class_name": "TextStats",
            "python_version": "3.11",
            "machine_type": "GPU-H100",
            "keep_alive": 300,
            "max_concurrency": 4,
            "auth": "private",
        },
        "import fal\n\nclass TextStats(fal.App):\n    pass\n",
        ["fal==1.83.0", "numpy==2.1.0", "pydantic==2.14.4"],
    ),
    "server": (
        {
            "name": "hello-server",
            "mode": "server",
            "exposed_port": 8000,
            "python_version": "3.11",
            "min_concurrency": 1,
            "health_check": {"path": "/hello"},
        },
        "from fastapi import FastAPI\n\napp = FastAPI()\n",
        ["fastapi==0.136.3", "uvicorn==0.54.0"],
    ),
    "cmd": (
        {
            "name": "static-files",
            "mode": "server",
            "exposed_port": 9000,
            "python_version": "3.12",
            "cmd": "python -m http.server $PORT",
            "base_image": "python:3.12-bookworm",
        },
        "print('static')\n",
        [],
    ),
}


@pytest.fixture(autouse=True)
def no_base_image_override(monkeypatch):
    monkeypatch.delenv("FAL_NOTEBOOK_BASE_IMAGE", raising=False)


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_files(case):
    values, module, requirements = CASES[case]
    files = render_files(AppConfig.build(values), module, requirements, {})
    folder = GOLDEN / case
    if UPDATE:
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (folder / name).write_text(text)
    expected = {p.name: p.read_text() for p in folder.iterdir()}
    assert files == expected


def test_base_image_choice():
    cpu = AppConfig.build({"name": "a", "mode": "app", "class_name": "A", "python_version": "3.12"})
    gpu = cpu.updated(machine_type=["GPU-A100"])
    assert base_image(cpu, {}) == "python:3.12-slim"
    assert base_image(gpu, {}) == "falai/base:3.12-12.1.0"
    assert base_image(cpu, {"FAL_NOTEBOOK_BASE_IMAGE": "mine:1"}) == "mine:1"
    assert base_image(cpu.updated(base_image="flag:2"), {"FAL_NOTEBOOK_BASE_IMAGE": "mine:1"}) == "flag:2"


def test_dockerfile_has_no_buildkit_syntax_and_orders_layers():
    for values, module, requirements in CASES.values():
        lines = render_files(AppConfig.build(values), module, requirements, {})["Dockerfile"].splitlines()
        assert not any("--mount" in line or line.startswith("# syntax=") for line in lines)
        copies = [i for i, line in enumerate(lines) if line.startswith("COPY ")]
        cmd = next(i for i, line in enumerate(lines) if line.startswith("CMD "))
        assert lines[copies[0]] == "COPY requirements.txt ." and copies[-1] < cmd


def test_pyproject_round_trip_keeps_foreign_content():
    config = AppConfig.build({"name": "a", "mode": "app", "class_name": "A", "keep_alive": 10})
    first = pyproject(config)
    edited = "[project]\nname = 'mine'  # keep me\n\n" + first + 'regions = ["us-east"]\n'
    second = pyproject(config.updated(keep_alive=20), edited, previous={"ref": "app.py::A", "keep_alive": 10})
    assert "name = 'mine'  # keep me" in second and 'regions = ["us-east"]' in second
    assert "keep_alive = 20" in second and "keep_alive = 10" not in second
