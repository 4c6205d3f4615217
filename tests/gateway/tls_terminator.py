"""A test-only TLS terminator: HTTPS with a self-signed certificate in front of a test gateway.

fal's clients always speak https to ``FAL_RUN_HOST`` / ``FAL_QUEUE_RUN_HOST``; the terminator stands
where fal's ingress stands. It keeps the Host header and adds ``X-Forwarded-Proto: https``, so the URLs
the gateway hands out (status_url...) point back at it, and it records what came in (``seen``).
"""

from __future__ import annotations

import datetime
import ipaddress
import threading
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from tests.gateway_helpers import free_port
from tests.polling import wait_for

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}


@dataclass(frozen=True)
class Seen:
    """One request that came through the terminator."""

    method: str
    path: str
    authorization: str | None


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


def terminator_app(upstream: str, seen: list[Seen]) -> Starlette:
    """HTTPS in, HTTP to the gateway out; each request is appended to ``seen``."""
    client = httpx.AsyncClient(base_url=upstream, timeout=None)

    async def forward(request: Request) -> StreamingResponse:
        seen.append(Seen(request.method, request.url.path, request.headers.get("authorization")))
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


@dataclass
class TLSTerminator:
    """A running terminator: ``host`` (``127.0.0.1:<port>``) takes the place of fal's hosts."""

    port: int
    cert_file: Path
    seen: list[Seen] = field(default_factory=list)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"


def serve_tls(upstream: str, folder: Path):
    """Start a terminator in front of ``upstream`` (a thread of this process); yields it, then stops it."""
    cert_file, key_file = self_signed_certificate(folder)
    terminator = TLSTerminator(port=free_port(), cert_file=cert_file)
    config = uvicorn.Config(
        terminator_app(upstream, terminator.seen),
        host="127.0.0.1",
        port=terminator.port,
        log_level="warning",
        ssl_certfile=str(cert_file),
        ssl_keyfile=str(key_file),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started or not thread.is_alive(), "the TLS terminator to start", timeout=10)
    assert server.started, "the TLS terminator did not start"
    try:
        yield terminator
    finally:  # without waiting for idle keep-alive connections of clients a test left open
        server.should_exit = server.force_exit = True
        thread.join(10)
