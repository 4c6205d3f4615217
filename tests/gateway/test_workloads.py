"""fal's real workloads on local runners, with the network cut (offline.py: a network namespace with loopback
only, so nothing can leave the machine): an app returning an image and a file through fal's toolkit, the
unmodified fal_client uploading files that the app reads back, expiry, a 200 MiB multipart upload, and a
weight file written in setup() found by the next runners after a redeploy (docs/fal-conformance.md,
"Storage", "Uploads", "/data"). media_scenario.py is what runs inside the namespace."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import offline
import pytest

from fal_notebook.gateway.platform_env import CACHES
from fal_notebook.gateway.sandbox import detect
from tests.gateway_helpers import free_port

SCENARIO = str(Path(__file__).with_name("media_scenario.py"))
FAL_JS = Path(__file__).resolve().parents[2] / ".ci" / "cache" / "fal-js" / "node_modules" / "@fal-ai" / "client"


def scenario(tmp_path: Path, env: str, *flags: str, network: bool = False) -> dict:
    home = tmp_path / "home"
    variables = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("FAL_", "HTTPS_PROXY", "https_proxy"))},
        **{name: "" for name in CACHES},  # the runners' caches are the gateway's own folder's here
        "FAL_NOTEBOOK_HOME": str(home),
        "FAL_NOTEBOOK_GATEWAY_PORT": str(free_port()),
        "FAL_NOTEBOOK_GATEWAY_TLS_PORT": str(free_port()),
        "FAL_NOTEBOOK_GATEWAY_PROXY_PORT": str(free_port()),
        "APPS_DIR": str(tmp_path),
    }
    argv = [sys.executable, SCENARIO, env, *flags]
    if network:
        import subprocess

        done = subprocess.run(argv, env=variables, capture_output=True, text=True, timeout=600)
    else:
        done = offline.run(argv, env=variables, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-6000:]
    return json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else {}


@pytest.fixture(scope="module")
def fal_js(unavailable) -> Path:
    """The @fal-ai/client that .ci/provision installs, and Node to run it."""
    if shutil.which("node") is None or not FAL_JS.is_dir():
        unavailable("Node or @fal-ai/client (.ci/cache/fal-js) is not installed")
    return FAL_JS


@pytest.fixture(scope="module")
def cut(unavailable):
    if not offline.available():
        unavailable("a network namespace (`unshare -n`, as root)")


@pytest.mark.parametrize("env", ["kernel", "isolated"])
def test_media_apps_and_uploads_on_local_runners_with_nothing_leaving(env, cut, fal_js, tmp_path):
    if env == "isolated":  # the environment is built with the network, then everything runs without it
        scenario(tmp_path, env, "--prepare", network=True)
        shutil.rmtree(tmp_path / "home" / "data")  # the weights its runner wrote: the scenario starts afresh
    flags = ("--large",) if env == "kernel" else ()
    seen = scenario(tmp_path, env, *flags, "--js", str(fal_js))
    assert seen["no_route"], "the scenario ran with a route off the machine"
    client = seen["client"]

    image = client["image"]
    assert image["url"].startswith("http://127.0.0.1:") and "/files/" in image["url"]
    assert image["status"] == 200 and image["type"] == "image/png" and image["png"]
    assert image["content_type"] == "image/png" and image["width"] == 24
    assert client["file"]["text"] == "a note" and client["file"]["content_type"] == "text/plain"

    read = client["upload_file"]["read"]
    assert read == {"size": len(b"bytes from the user's disk"), "text": "bytes from the user's disk"}
    assert client["upload"]["body"] == "raw bytes" and client["upload"]["type"] == "application/octet-stream"
    assert client["upload_image"]["type"] == "image/png"
    assert client["upload_file_async"]["body"] == "bytes from the user's disk"

    js = seen["fal_js"]  # fal's JavaScript client: outputs fetched, fal.storage.upload and a Blob input read back
    assert js["image"]["status"] == 200 and js["image"]["type"] == "image/png" and js["image"]["png"]
    assert js["image"]["width"] == 20 and js["file"]["text"] == "from fal-js"
    assert js["stored"]["url"].startswith("http://127.0.0.1:") and "/files/" in js["stored"]["url"]
    assert js["stored"]["read"]["text"] == "stored by fal.storage" and js["blob"]["text"] == "a Blob in the input"

    ours = seen["ours"]  # our client's upload(...), sync and async
    assert ours["url"].startswith("http://127.0.0.1:") and ours["type"].startswith("text/plain")
    assert ours["read"] == {"size": len(b"our client's bytes"), "text": "our client's bytes"}
    assert ours["async"]["url"].endswith("/ours.bin") and ours["async"]["body"] == "\x00\x01 from a path"
    assert ours["async"]["type"] == "application/octet-stream"
    assert ours["brief"]["type"].startswith("text/plain") and ours["brief"]["later"] == 404  # expires_in=1

    assert client["expiry"] == {"first": 200, "later": 404}
    assert client["app_expiry"] == 404  # the caller's X-Fal-Object-Lifecycle-Preference reached the app

    first, redeployed = seen["weights_first"], seen["weights_redeployed"]
    assert not first["found"] and redeployed["found"] and first["path"] == redeployed["path"]
    data = tmp_path / "home" / "data"  # at /data in the runners' sandbox, as on fal
    assert first["path"] == ("/data" if detect().bwrap else str(data)) + "/.cache/huggingface/weights.bin"
    assert (data / ".cache" / "huggingface" / "weights.bin").stat().st_size == 4096
    assert first["key_id"] == "runners"  # the gateway's store key, never a fal key

    if env == "kernel":
        assert client["large"]["same"], "the 200 MiB upload came back different"
        print(f"\n200 MiB through fal_client's multipart upload and back: {client['large']['seconds']:.1f} s")


def test_the_storage_proxy_needs_the_gateways_key_and_speaks_only_connect(gateway):
    import base64
    import socket

    port = int(os.environ["FAL_NOTEBOOK_GATEWAY_PROXY_PORT"])  # the module gateway's

    def ask(head: str) -> str:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(head.encode())
            return s.recv(4096).decode("latin-1").split("\r\n", 1)[0]

    assert ask("CONNECT rest.fal.ai:443 HTTP/1.1\r\nHost: rest.fal.ai:443\r\n\r\n").startswith("HTTP/1.1 407")
    wrong = base64.b64encode(b"someone:else").decode()
    assert " 407 " in ask(f"CONNECT rest.fal.ai:443 HTTP/1.1\r\nProxy-Authorization: Basic {wrong}\r\n\r\n")
    key = base64.b64encode(gateway.key.encode()).decode()
    assert " 405 " in ask(f"GET http://example.com/ HTTP/1.1\r\nProxy-Authorization: Basic {key}\r\n\r\n")
    assert " 200 " in ask(f"CONNECT v3.fal.media:443 HTTP/1.1\r\nProxy-Authorization: Basic {key}\r\n\r\n")
