"""The gateway's HTTPS identity, kept in the state directory (``<FAL_NOTEBOOK_HOME>/gateway/tls/``): a
certificate authority of its own and the certificate it signs for the gateway, and a CA bundle that
trusts that authority besides the ones the caller trusts already, for ``SSL_CERT_FILE`` (fal_client and
fal's SDK speak only https).

The authority is name-constrained (RFC 5280 name constraints, critical): it can vouch for loopback
(``127.0.0.1``, ``::1``, ``localhost``) and fal's two storage hosts (``rest.fal.ai``, ``v3.fal.media``,
which the gateway's storage proxy answers for) and for no other name, so a process that trusts it
(only the processes given ``SSL_CERT_FILE``: never the system) trusts nothing else it could sign. Its
key and the certificate's are readable by the user alone.
"""

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

from ..wire import STORAGE_HOSTS
from .paths import gateway_dir

#: A certificate is made anew when it would expire within this many days.
RENEW_BEFORE_DAYS = 30
VALID_DAYS = 825
#: The names the gateway answers for, and the only ones its authority may sign.
DNS_NAMES = ("localhost", *STORAGE_HOSTS)
IP_ADDRESSES = ("127.0.0.1", "::1")


@dataclass(frozen=True)
class TLSFiles:
    certificate: Path
    key: Path
    authority: Path
    authority_key: Path


def tls_dir() -> Path:
    folder = gateway_dir() / "tls"
    folder.mkdir(exist_ok=True, mode=0o700)
    return folder


def ensure_certificate() -> TLSFiles:
    """The gateway's authority and certificate, created (or renewed) when missing, expiring, or of an
    older kind (a self-signed certificate without name constraints)."""
    folder = tls_dir()
    files = TLSFiles(folder / "cert.pem", folder / "key.pem", folder / "ca.pem", folder / "ca-key.pem")
    if not _valid(files):
        _create(files)
    return files


def ca_bundle(trusted: Path | None, name: str = "ca-bundle.pem") -> Path:
    """A CA bundle of the authorities in ``trusted`` (a PEM file; None: certifi's) and the gateway's
    authority, so that one ``SSL_CERT_FILE`` reaches both the gateway and other https hosts."""
    bundle = tls_dir() / name
    base = Path(certifi.where()) if trusted is None or trusted == bundle else trusted
    authority = ensure_certificate().authority.read_bytes()
    _write(bundle, base.read_bytes().rstrip(b"\n") + b"\n" + authority)
    return bundle


def _valid(files: TLSFiles) -> bool:
    try:
        authority = x509.load_pem_x509_certificate(files.authority.read_bytes())
        certificate = x509.load_pem_x509_certificate(files.certificate.read_bytes())
        authority.extensions.get_extension_for_class(x509.NameConstraints)
        certificate.verify_directly_issued_by(authority)
    except (OSError, ValueError, TypeError, x509.ExtensionNotFound):
        return False
    renew_at = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=RENEW_BEFORE_DAYS)
    expiry = min(authority.not_valid_after_utc, certificate.not_valid_after_utc)
    return expiry > renew_at and files.key.is_file() and files.authority_key.is_file()


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fal-notebook"),
        ]
    )


def _usage(*, sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=sign,
        crl_sign=sign,
        encipher_only=False,
        decipher_only=False,
    )


def _create(files: TLSFiles) -> None:
    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=VALID_DAYS)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("fal-notebook local gateway authority")
    networks = [x509.IPAddress(ipaddress.ip_network(address)) for address in IP_ADDRESSES]
    authority = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(sign=True), critical=True)
        .add_extension(
            x509.NameConstraints(permitted_subtrees=[*map(x509.DNSName, DNS_NAMES), *networks], excluded_subtrees=None),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    names = [*map(x509.DNSName, DNS_NAMES), *(x509.IPAddress(ipaddress.ip_address(a)) for a in IP_ADDRESSES)]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name("fal-notebook gateway"))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    for path, private in ((files.authority_key, ca_key), (files.key, key)):
        _write(
            path,
            private.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
        )
    _write(files.authority, authority.public_bytes(serialization.Encoding.PEM))
    _write(files.certificate, certificate.public_bytes(serialization.Encoding.PEM))


def _write(path: Path, data: bytes) -> None:
    """Write a file readable only by the user, replacing the old one at once."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
