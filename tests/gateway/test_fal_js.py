"""fal's own JavaScript client (``@fal-ai/client``, installed by .ci/provision --tests) against the gateway's
HTTPS listener: its queue subscription in streaming mode adds up the log entries of the status
events, so each entry must come once (docs/fal-conformance.md, "Status and results").

fal-js builds ``https://queue.fal.run/...`` URLs; a request middleware (fal-js's own extension point,
fal_js_gateway.js) points them at the gateway, and ``NODE_EXTRA_CA_CERTS`` makes Node trust the gateway's
certificate."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from gateway_apps import FIDELITY
from test_conformance import fal_env  # noqa: F401  (the module's fal_env fixture)

CLIENT = Path(__file__).resolve().parents[2] / ".ci" / "cache" / "fal-js" / "node_modules" / "@fal-ai" / "client"

SUBSCRIBE = """
const fal = require(process.env.FAL_JS_GATEWAY)(process.env.FAL_JS_CLIENT);
(async () => {
  const updates = [];
  const result = await fal.subscribe("local/fidelity-js", {
    input: JSON.parse(process.argv[2]),
    logs: true,
    mode: "streaming",
    onQueueUpdate: (update) => updates.push(update),
  });
  const last = updates[updates.length - 1];
  console.log(JSON.stringify({ data: result.data, requestId: result.requestId, last }));
})().catch((error) => {
  console.error(error);
  process.exit(1);
});
"""


@pytest.fixture(scope="module")
def app(gateway):
    return gateway.deploy(FIDELITY, "fidelity-js", max_concurrency=1)


def test_fal_js_streaming_subscription_sees_each_log_entry_once(gateway, app, fal_env, tmp_path, unavailable):  # noqa: F811
    node = shutil.which("node")
    if node is None or not CLIENT.is_dir():
        unavailable("Node or @fal-ai/client (.ci/cache/fal-js) is not installed")
    script = tmp_path / "subscribe.js"
    script.write_text(SUBSCRIBE)
    counter = tmp_path / "n"
    body = {"status": 503, "headers": {"x-fal-stop-runner": "false"}, "failures": 2, "counter": str(counter)}
    env = {
        "PATH": os.environ["PATH"],
        **fal_env,
        "NODE_EXTRA_CA_CERTS": fal_env["SSL_CERT_FILE"],
        "FAL_JS_CLIENT": str(CLIENT),
        "FAL_JS_GATEWAY": str(Path(__file__).with_name("fal_js_gateway.js")),
    }
    done = subprocess.run(
        [node, str(script), json.dumps(body)], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["data"]["attempt"] == 3
    assert out["last"]["status"] == "COMPLETED" and out["last"]["request_id"] == out["requestId"]
    logged = [entry["message"] for entry in out["last"]["logs"]]
    assert [m for m in logged if m.startswith("attempt ")] == [
        f"attempt {n} on {out['data']['runner']}" for n in (1, 2, 3)
    ], logged
    assert len(logged) == len(set(logged)), logged
