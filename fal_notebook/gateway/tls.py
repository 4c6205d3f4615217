"""The gateway's HTTPS identity: a self-signed certificate for 127.0.0.1 kept in the state directory
(``<FAL_NOTEBOOK_HOME>/gateway/tls/``), and a CA bundle that trusts it besides the authorities the
caller already trusts, for ``SSL_CERT_FILE`` (fal_client speaks only https)."""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

import certifi
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..wire import GATEWAY_HOST
from .paths import gateway_dir

#: A certificate is made anew when it would expire within this many days.
RENEW_BEFORE_DAYS = 30
VALID_DAYS = 825


@dataclass(frozen=True)
class TLSFiles:
    certificate: Path
    key: Path


def tls_dir() -> Path:
    folder = gateway_dir() / "tls"
    folder.mkdir(exist_ok=True, mode=0o700)
    return folder


def ensure_certificate() -> TLSFiles:
    """The gateway's certificate and key, created (or renewed) when missing or expiring."""
    folder = tls_dir()
    files = TLSFiles(folder / "cert.pem", folder / "key.pem")
    if not _valid(files):
        _create(files)
    return files


def ca_bundle(trusted: Path | None) -> Path:
    """A CA bundle of the authorities in ``trusted`` (a PEM file; None: certifi's) and the gateway's
    certificate, so that one ``SSL_CERT_FILE`` reaches both the gateway and other https hosts."""
    bundle = tls_dir() / "ca-bundle.pem"
    base = Path(certifi.where()) if trusted is None or trusted == bundle else trusted
    certificate = ensure_certificate().certificate.read_bytes()
    _write(bundle, base.read_bytes().rstrip(b"\n") + b"\n" + certificate)
    return bundle


def _valid(files: TLSFiles) -> bool:
    try:
        certificate = x509.load_pem_x509_certificate(files.certificate.read_bytes())
    except (OSError, ValueError):
        return False
    renew_at = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=RENEW_BEFORE_DAYS)
    return certificate.not_valid_after_utc > renew_at and files.key.is_file()


def _create(files: TLSFiles) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, GATEWAY_HOST),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fal-notebook"),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    public = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(GATEWAY_HOST)), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM)
    _write(
        files.key,
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    _write(files.certificate, pem)


def _write(path: Path, data: bytes) -> None:
    """Write a file readable only by the user, replacing the old one at once."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
