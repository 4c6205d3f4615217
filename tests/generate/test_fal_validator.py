"""Every generated pyproject.toml passes fal's own validator, run inside the project folder."""

import json
import subprocess
import sys

import pytest

from fal_notebook import capture

pytestmark = pytest.mark.fal_sdk

# fal caches the project root per process, as `fal deploy` runs once per process: so do we.
VALIDATE = """
import json, sys
from fal.cli._utils import get_app_data_from_toml
data = get_app_data_from_toml(sys.argv[1])
env = data.options.environment
print(json.dumps({
    "ref": data.ref, "name": data.name, "auth": data.auth, "host": data.options.host,
    "gateway": data.options.gateway, "python_version": env.get("python_version"),
    "kind": env.get("kind"), "dockerfile": (env.get("image") or {}).get("dockerfile_str"),
}, default=str))
"""

APP = "import fal\n\nclass Demo(fal.App):\n    @fal.endpoint('/')\n    def run(self) -> dict:\n        return {}\n"
SERVER = "from fastapi import FastAPI\n\napp = FastAPI()\n"

APP_OPTIONS = [
    {},
    {"machine_type": ["GPU-H100", "GPU-A100"], "num_gpus": 2, "keep_alive": 300},
    {
        "min_concurrency": 1,
        "max_concurrency": 4,
        "concurrency_buffer": 1,
        "concurrency_buffer_perc": 20,
        "max_multiplexing": 2,
        "scaling_delay": 5,
        "request_timeout": 60,
        "startup_timeout": 900,
    },
    {"auth": "public", "deployment_strategy": "recreate", "team": "my-team", "app_scale_settings": True},
    {
        "regions": ["us-east", "eu-west"],
        "secrets": ["HF_TOKEN"],
        "data_mounts": ["/data"],
        "termination_grace_period_seconds": 30,
        "metrics_port": 9191,
    },
    {
        "skip_retry_conditions": ["timeout"],
        "retry_config": {"server_error": {"retries": 2}},
        "app_files": ["weights.txt"],
        "app_files_ignore": [r"\.tmp$"],
        "python_version": "3.11",
    },
    {
        "health_check": {
            "path": "/health",
            "start_period_seconds": 10,
            "timeout_seconds": 5,
            "failure_threshold": 3,
            "call_regularly": True,
        }
    },
]
SERVER_OPTIONS = [
    {},
    {"exposed_port": 9000, "machine_type": "M", "keep_alive": 30, "auth": "shared"},
    {"min_concurrency": 0, "max_concurrency": 2, "max_multiplexing": 8, "health_check": {"path": "/", "method": "GET"}},
    {"image": {"dockerfile": "Dockerfile", "build_args": {"MODE": "fast"}}, "regions": ["us-west"]},
    {"cmd": "python -m http.server $PORT", "secrets": ["OPENAI_API_KEY"], "request_timeout": 30},
    {"app_files": ["model.pkl"]},  # fal refuses app_files beside image: the Dockerfile copies them instead
]


def validate(project):
    done = subprocess.run(
        [sys.executable, "-c", VALIDATE, project.name], cwd=project.path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("options", APP_OPTIONS)
def test_app_mode(tmp_path, monkeypatch, options):
    monkeypatch.setenv("FAL_NOTEBOOK_HOME", str(tmp_path / "home"))
    for name in options.get("app_files", ()):
        (tmp_path / name).write_text("weights")
    project = capture(APP, "demo", out_dir=tmp_path, search_dir=tmp_path, **options)
    data = validate(project)
    assert data["ref"] == f"{project.path}/app.py::Demo" and data["name"] == "demo"
    for key in ("keep_alive", "min_concurrency", "max_concurrency", "num_gpus", "regions", "secrets"):
        if key in options:
            assert data["host"][key] == options[key]
    assert data["auth"] == options.get("auth")
    assert data["python_version"] == project.config.effective_python_version


@pytest.mark.parametrize("options", SERVER_OPTIONS)
def test_server_mode(tmp_path, monkeypatch, options):
    monkeypatch.setenv("FAL_NOTEBOOK_HOME", str(tmp_path / "home"))
    for name in options.get("app_files", ()):
        (tmp_path / name).write_text("weights")
    project = capture(SERVER if "cmd" not in options else "", "web", out_dir=tmp_path, search_dir=tmp_path, **options)
    data = validate(project)
    assert data["ref"] is None and data["kind"] == "container"
    assert data["gateway"]["exposed_port"] == options.get("exposed_port", 8000)
    assert data["dockerfile"] == (project.path / "Dockerfile").read_text()
