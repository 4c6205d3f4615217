"""The unmodified official `fal_client` against the local gateway, behind a TLS terminator.

fal_client always speaks https to ``FAL_RUN_HOST`` / ``FAL_QUEUE_RUN_HOST``; the terminator
below (a test-only HTTPS reverse proxy with a self-signed certificate) stands where fal's ingress
stands, and ``SSL_CERT_FILE`` makes the client trust it. fal_client reads its hosts at import, so
it runs in a subprocess with that environment.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from gateway_apps import echo
from tests.gateway_helpers import free_port
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


def terminator_app(upstream: str) -> Starlette:
    """HTTPS in, HTTP to the gateway out: the Host header is kept and X-Forwarded-Proto added, so
    the URLs the gateway hands out (status_url...) point back at the terminator."""
    client = httpx.AsyncClient(base_url=upstream, timeout=None)

    async def forward(request: Request) -> StreamingResponse:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["x-forwarded-proto"] = "https"
        outgoing = client.build_request(
            request.method,
            request.url.path,
            params=request.query_params,
            headers=headers,
            content=await request.body(),
        )
        response = await client.send(outgoing, stream=True)
        out_headers = {k: v for k, v in response.headers.items() if k.lower() not in HOP_BY_HOP}
        return StreamingResponse(
            response.aiter_raw(),
            response.status_code,
            headers=out_headers,
            background=BackgroundTask(response.aclose),
        )

    methods = ["GET", "POST", "PUT", "DELETE", "PATCH"]
    return Starlette(routes=[Route("/{path:path}", forward, methods=methods)])


@pytest.fixture(scope="module")
def tls(gateway, tmp_path_factory):
    cert_file, key_file = self_signed_certificate(tmp_path_factory.mktemp("tls"))
    port = free_port()
    config = uvicorn.Config(
        terminator_app(gateway.base),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        ssl_certfile=str(cert_file),
        ssl_keyfile=str(key_file),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield port, cert_file
    server.should_exit = True
    thread.join(10)


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
    port, cert_file = tls
    script = tmp_path / "conformance.py"
    script.write_text(SCRIPT)
    env = {
        **os.environ,
        "FAL_RUN_HOST": f"127.0.0.1:{port}",
        "FAL_QUEUE_RUN_HOST": f"127.0.0.1:{port}/queue",
        "SSL_CERT_FILE": str(cert_file),
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
