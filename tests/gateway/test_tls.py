"""The gateway's certificate authority (gateway/tls.py): name-constrained to loopback and fal's storage hosts,
its keys readable by the user alone; what it signs for any other name is refused by the TLS stack itself."""

from __future__ import annotations

import datetime
import socket
import ssl
import stat
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fal_notebook.gateway.tls import ensure_certificate


@pytest.fixture
def files(fal_env):
    return ensure_certificate()


def _handshake(files, certificate: bytes, key: bytes, name: str, tmp_path) -> None:
    """A TLS handshake with ``certificate`` for ``name``, the client trusting the gateway's authority only."""
    (tmp_path / "leaf.pem").write_bytes(certificate)
    (tmp_path / "leaf-key.pem").write_bytes(key)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(tmp_path / "leaf.pem", tmp_path / "leaf-key.pem")
    client_context = ssl.create_default_context(cafile=str(files.authority))
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        connection, _ = listener.accept()
        try:
            server_context.wrap_socket(connection, server_side=True).close()
        except (ssl.SSLError, OSError):
            connection.close()

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with socket.create_connection(listener.getsockname()) as raw:
            client_context.wrap_socket(raw, server_hostname=name).close()
    finally:
        thread.join(10)
        listener.close()


def _signed_for(files, name: str) -> tuple[bytes, bytes]:
    authority = x509.load_pem_x509_certificate(files.authority.read_bytes())
    authority_key = serialization.load_pem_private_key(files.authority_key.read_bytes(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "leaf")]))
        .issuer_name(authority.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(authority_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    pem = serialization.Encoding.PEM
    return certificate.public_bytes(pem), key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def test_the_authority_is_name_constrained_to_loopback_and_fals_storage_hosts(files):
    authority = x509.load_pem_x509_certificate(files.authority.read_bytes())
    constraints = authority.extensions.get_extension_for_class(x509.NameConstraints)
    assert constraints.critical
    permitted = {str(name.value) for name in constraints.value.permitted_subtrees or []}
    assert permitted == {"localhost", "rest.fal.ai", "v3.fal.media", "127.0.0.1/32", "::1/128"}
    for path in (files.authority_key, files.key, files.authority, files.certificate):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_gateway_certificate_passes_and_one_for_another_name_is_refused(files, tmp_path):
    for name in ("127.0.0.1", "rest.fal.ai", "v3.fal.media"):
        _handshake(files, files.certificate.read_bytes(), files.key.read_bytes(), name, tmp_path)
    certificate, key = _signed_for(files, "example.com")  # what a stolen authority key would make
    with pytest.raises(ssl.SSLCertVerificationError, match="(?i)name constraint|permitted subtree"):
        _handshake(files, certificate, key, "example.com", tmp_path)
