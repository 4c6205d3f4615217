"""The unmodified official `fal_client` against the local gateway, behind a TLS terminator.

fal_client always speaks https to ``FAL_RUN_HOST`` / ``FAL_QUEUE_RUN_HOST``; the terminator (the
``tls`` fixture: a test-only HTTPS reverse proxy with a self-signed certificate) stands where fal's
ingress stands, and ``SSL_CERT_FILE`` makes the client trust it. fal_client reads its hosts at
import, so it runs in a subprocess with that environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from gateway_apps import echo

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
    out["event_logs"] = [entry["message"] for entry in events[-1].logs]
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

    while not started():
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


def test_official_fal_client_works_against_the_gateway(gateway, tls, tmp_path):
    gateway.deploy(echo(), "conformance")  # private: fal_client sends FAL_KEY
    script = tmp_path / "conformance.py"
    script.write_text(SCRIPT)
    env = {
        **os.environ,
        "FAL_RUN_HOST": tls.host,
        "FAL_QUEUE_RUN_HOST": f"{tls.host}/queue",
        "SSL_CERT_FILE": str(tls.cert_file),
        "FAL_KEY": gateway.key,
    }
    done = subprocess.run(
        [sys.executable, str(script)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
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
