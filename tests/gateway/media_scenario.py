"""What a user does with fal's real workloads locally, as one program (test_workloads.py runs it with the
network cut): deploy the MEDIA app (tests/gateway/gateway_apps.py) on a gateway of its own, call it with
the unmodified fal_client after `fal-notebook env`, upload files with fal_client and hand them to the
app, redeploy, and print what was seen as one JSON line.

    python media_scenario.py ENV [--prepare] [--large] [--js PATH_OF_FAL_AI_CLIENT]

``--prepare`` only deploys and stops (builds an isolated environment while the network is there);
``--large`` also uploads 200 MiB with fal_client (its multipart path); ``--js`` also runs fal's JavaScript
client (fal_js_media.js)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from gateway_apps import MEDIA  # noqa: E402
from offline import no_route  # noqa: E402

import fal_notebook  # noqa: E402
from fal_notebook.backends.local import LocalBackend  # noqa: E402
from fal_notebook.gateway import client_environment, stop_gateway  # noqa: E402

CLIENT = """
import asyncio, hashlib, io, json, os, sys, time

import fal_client
import httpx
from PIL import Image

out = {}
image = fal_client.subscribe("local/media", {"size": 24})["image"]
got = httpx.get(image["url"])
PNG = b"\\x89PNG\\r\\n\\x1a\\n"
out["image"] = {**image, "status": got.status_code, "type": got.headers["content-type"], "png": got.content[:8] == PNG}
note = fal_client.subscribe("local/media/file", {"text": "a note"})["file"]
out["file"] = {**note, "text": httpx.get(note["url"]).text}

open("up.txt", "wb").write(b"bytes from the user's disk")
url = fal_client.upload_file("up.txt")
out["upload_file"] = {"url": url, "read": fal_client.subscribe("local/media/read", {"file": url})}
url = fal_client.upload(b"raw bytes", "application/octet-stream", "raw.bin")
out["upload"] = {"url": url, "type": httpx.get(url).headers["content-type"], "body": httpx.get(url).text}
url = fal_client.upload_image(Image.new("RGB", (4, 4)), format="png")
out["upload_image"] = {"url": url, "type": httpx.get(url).headers["content-type"]}
url = asyncio.run(fal_client.upload_file_async("up.txt"))
out["upload_file_async"] = {"url": url, "body": httpx.get(url).text}

brief = fal_client.upload(b"gone soon", "text/plain", lifecycle=fal_client.client.StorageSettings(expires_in=1))
first = httpx.get(brief).status_code
deadline = time.monotonic() + 30
while httpx.get(brief).status_code == 200 and time.monotonic() < deadline:
    time.sleep(0.2)
out["expiry"] = {"first": first, "later": httpx.get(brief).status_code}
brief_files = {"X-Fal-Object-Lifecycle-Preference": '{"expiration_duration_seconds": 1}'}
note = fal_client.subscribe("local/media/file", {"text": "brief"}, headers=brief_files)["file"]
deadline = time.monotonic() + 30
while httpx.get(note["url"]).status_code == 200 and time.monotonic() < deadline:
    time.sleep(0.2)
out["app_expiry"] = httpx.get(note["url"]).status_code

if "--large" in sys.argv:
    with open("large.bin", "wb") as f:
        for i in range(200):
            f.write(bytes([i]) * (1 << 20))
    started = time.monotonic()
    url = fal_client.upload_file("large.bin")
    digest = hashlib.sha256()
    with httpx.stream("GET", url) as response:
        for chunk in response.iter_bytes():
            digest.update(chunk)
    expected = hashlib.sha256(open("large.bin", "rb").read()).hexdigest()
    out["large"] = {"url": url, "same": digest.hexdigest() == expected, "seconds": time.monotonic() - started}
print(json.dumps(out))
"""


def deploy(env: str, version: int) -> None:
    source = MEDIA + f"\nVERSION = {version}\n"
    project = fal_notebook.capture(source, "media", out_dir=os.environ["APPS_DIR"], auth="public")
    LocalBackend(env=env).deploy(project, progress=lambda line: None)


def weights() -> dict:
    import httpx

    return httpx.post(f"http://127.0.0.1:{os.environ['FAL_NOTEBOOK_GATEWAY_PORT']}/local/media/weights", json={}).json()


def our_uploads() -> dict:
    """fal_notebook's own client: upload(...) and upload_async(...) store in the gateway, and the app reads them."""
    import asyncio

    import httpx

    client = fal_notebook.connect("local/media")
    url = client.upload(b"our client's bytes", "text/plain", file_name="ours.txt")
    path = Path(os.environ["APPS_DIR"]) / "ours.bin"
    path.write_bytes(b"\x00\x01 from a path")
    from_path = asyncio.run(client.upload_async(path))
    brief = client.upload(b"kept a second", file_name="brief.txt", expires_in=1)
    brief_type = httpx.get(brief).headers["content-type"]
    deadline = time.monotonic() + 30
    while httpx.get(brief).status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    return {
        "url": url,
        "read": client.run({"file": url}, "/read"),
        "type": httpx.get(url).headers["content-type"],
        "async": {
            "url": from_path,
            "body": httpx.get(from_path).content.decode(),
            "type": httpx.get(from_path).headers["content-type"],
        },
        "brief": {"type": brief_type, "later": httpx.get(brief).status_code},
    }


def fal_js(client_dir: str, env: dict[str, str]) -> dict:
    """fal's JavaScript client with the app (fal_js_media.js)."""
    done = subprocess.run(
        ["node", str(HERE / "fal_js_media.js"), client_dir, "local/media"],
        env={**env, "NODE_EXTRA_CA_CERTS": env["SSL_CERT_FILE"]},
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise SystemExit(f"fal-js failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    env = sys.argv[1]
    result: dict = {"no_route": no_route()}
    try:
        deploy(env, 1)
        if "--prepare" in sys.argv:
            return
        result["weights_first"] = weights()
        client_env = {"PATH": os.environ["PATH"], **client_environment()}
        done = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(CLIENT), *sys.argv[2:]],
            env=client_env,
            cwd=os.environ["APPS_DIR"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            raise SystemExit(f"fal_client failed:\n{done.stderr[-4000:]}")
        result["client"] = json.loads(done.stdout.strip().splitlines()[-1])
        result["ours"] = our_uploads()
        if "--js" in sys.argv:
            result["fal_js"] = fal_js(sys.argv[sys.argv.index("--js") + 1], client_env)
        deploy(env, 2)  # a redeploy: new runners
        result["weights_redeployed"] = weights()
    finally:
        stop_gateway()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
