"""The unmodified official `fal_client` against the local gateway, with nothing but the environment
that `fal-notebook env` prints: the gateway's HTTPS listener (fal_client speaks only https), the CA
bundle that trusts its self-signed certificate, and its key. fal_client reads its hosts at import, so
each script runs in a subprocess with that environment alone."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import textwrap

import certifi
import pytest
from gateway_apps import echo


@pytest.fixture(scope="module")
def fal_env(gateway) -> dict[str, str]:
    """What `fal-notebook env --shell` prints for the module's gateway, parsed as a shell would."""
    done = subprocess.run(
        [sys.executable, "-m", "fal_notebook.cli", "env", "--shell"],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ,
        check=True,
    )
    env = {}
    for line in done.stdout.splitlines():
        words = shlex.split(line)
        assert words[0] == "export", line
        name, _, value = words[1].partition("=")
        env[name] = value
    return env


def run_fal_client(script: str, env: dict[str, str], tmp_path) -> dict:
    """Run ``script`` (which prints one JSON line last) with only ``env`` (and PATH) in its environment."""
    path = tmp_path / "script.py"
    path.write_text(textwrap.dedent(script))
    done = subprocess.run(
        [sys.executable, str(path)],
        env={"PATH": os.environ["PATH"], **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_env_names_the_https_listener_the_ca_bundle_and_the_key(gateway, fal_env):
    host = f"127.0.0.1:{gateway.tls_port}"
    assert fal_env["FAL_RUN_HOST"] == host
    assert fal_env["FAL_QUEUE_RUN_HOST"] == f"{host}/queue"
    assert fal_env["FAL_KEY"] == gateway.key
    bundle = open(fal_env["SSL_CERT_FILE"]).read()
    assert fal_env["SSL_CERT_FILE"].startswith(str(gateway.home))
    certificate = (gateway.home / "gateway" / "tls" / "cert.pem").read_text()
    trusted = open(os.environ.get("SSL_CERT_FILE") or certifi.where()).read()
    assert bundle.endswith(certificate) and bundle.startswith(trusted.rstrip("\n"))  # what the caller trusted too


def test_env_without_shell_prints_name_value_lines(gateway):
    done = subprocess.run(
        [sys.executable, "-m", "fal_notebook.cli", "env"], capture_output=True, text=True, timeout=60, check=True
    )
    names = [line.partition("=")[0] for line in done.stdout.splitlines()]
    assert names == ["FAL_RUN_HOST", "FAL_QUEUE_RUN_HOST", "SSL_CERT_FILE", "FAL_KEY"]


def test_fal_env_magic_sets_the_environment_and_never_shows_the_key(gateway, fal_env, monkeypatch):
    from fal_notebook.gateway import apply_client_environment

    for name in fal_env:
        monkeypatch.delenv(name, raising=False)  # restored after the test
    shown = apply_client_environment()
    assert {name: os.environ[name] for name in fal_env} == fal_env
    assert gateway.key not in shown and gateway.key.partition(":")[2] not in shown
    assert "FAL_KEY=<the gateway key>" in shown and f"FAL_RUN_HOST={fal_env['FAL_RUN_HOST']}" in shown


def test_fal_env_keeps_the_users_fal_key_a_secret(gateway, fal_env, monkeypatch, tmp_path):
    """After %fal_env points FAL_KEY at the gateway's key, the user's fal key is still the fal key
    (deploys, runners) and still a secret, and so is the gateway's key: both, whole or in halves."""
    from fal_notebook import capture, credentials
    from fal_notebook.config import AppConfig
    from fal_notebook.errors import CaptureError, ConfigError
    from fal_notebook.gateway import apply_client_environment
    from fal_notebook.secrets import redact

    user_key = "user-id-0123456789:user-secret-abcdefghij"
    monkeypatch.setattr(credentials, "_set_aside", None, raising=False)  # restored after the test
    for name in fal_env:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FAL_KEY", user_key)
    monkeypatch.chdir(tmp_path)
    apply_client_environment()
    assert os.environ["FAL_KEY"] == gateway.key
    assert credentials.user_credentials().key == user_key  # what deploys to fal and runners get
    pieces = [user_key, *user_key.split(":"), gateway.key, *gateway.key.split(":")]
    for piece in pieces:
        shown = redact(f"the value {piece} is wrong")
        assert piece not in shown and "***" in shown
        with pytest.raises(ConfigError) as raised:
            AppConfig.build({"name": "web", "mode": "server", "exposed_port": 9000, "base_image": piece + "!"})
        assert piece not in str(raised.value)
        with pytest.raises(CaptureError, match="Nothing was written"):
            capture(f"TOKEN = {piece!r}\nfrom fastapi import FastAPI\napp = FastAPI()\n", "web", port=9000)
    assert not (tmp_path / "fal_apps").exists()


SCRIPT = textwrap.dedent(
    """
    import json
    import time

    import fal_client

    app = "local/conformance"
    out = {"run": fal_client.run(app, {"text": "the cat and the hat"})}

    handle = fal_client.submit(app, {"text": "one two", "delay": 0.5})
    events = list(handle.iter_events(with_logs=True, interval=0.05))
    out["events"] = [type(e).__name__ for e in events]
    out["event_logs"] = [entry["message"] for entry in events[-1].logs]  # polled: the window each time
    status = fal_client.status(app, handle.request_id, with_logs=True)
    out["status"] = type(status).__name__
    out["status_logs"] = [entry["message"] for entry in status.logs]
    out["inference_time"] = status.metrics["inference_time"]
    out["result"] = fal_client.result(app, handle.request_id)
    out["get"] = handle.get()

    slow = fal_client.submit(app, {"text": "x", "delay": 30}, path="/slow")
    def started():  # IN_PROGRESS means handed to a runner; the app logs when its task runs
        logs = getattr(slow.status(with_logs=True), "logs", None) or []
        return "slow work started" in [entry["message"] for entry in logs]

    deadline = time.monotonic() + 60
    while not started():
        assert time.monotonic() < deadline, "the slow request never started"
        time.sleep(0.05)
    fal_client.cancel(app, slow.request_id)
    try:
        slow.get(interval=0.05)
        out["cancelled"] = None
    except fal_client.FalClientHTTPError as exc:
        out["cancelled"] = exc.status_code

    out["stream"] = list(fal_client.stream(app, {"text": "red green blue"}))
    print(json.dumps(out))
    """
)


def test_official_fal_client_works_against_the_gateway(gateway, fal_env, tmp_path):
    gateway.deploy(echo(), "conformance")  # private: fal_client sends FAL_KEY
    out = run_fal_client(SCRIPT, fal_env, tmp_path)
    assert out["run"]["words"] == 5
    assert out["events"][-1] == "Completed"
    assert "InProgress" in out["events"]
    assert out["event_logs"] == ["counting 'one two'", "done counting"]
    assert out["status"] == "Completed"
    assert out["status_logs"] == ["counting 'one two'", "done counting"]
    assert out["inference_time"] >= 0.5
    assert out["result"]["words"] == 2 and out["get"] == out["result"]
    assert out["cancelled"] == 499
    assert out["stream"] == [{"word": "red"}, {"word": "green"}, {"word": "blue"}]
