"""The HTTPS serving certificate.

As metrics-server (generic apiserver `SecureServingOptions.MaybeDefaultWithSelfSignedCerts`):
`--tls-cert-file`/`--tls-private-key-file` when given; otherwise `apiserver.crt`/`apiserver.key` in
`--cert-dir`, generated once for `localhost` and `127.0.0.1` and reused on later starts. The
kube-aggregator then needs `insecureSkipTLSVerify: true` or the certificate as the APIService
`caBundle`. A generated certificate that has expired, or whose key does not match, is replaced.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kubemetrics.options import ServeOptions

log = logging.getLogger(__name__)

GENERATED_CERT_NAME = "apiserver.crt"
GENERATED_KEY_NAME = "apiserver.key"
SELF_SIGNED_HOSTS = ("localhost",)
SELF_SIGNED_IPS = ("127.0.0.1",)
SELF_SIGNED_VALIDITY = datetime.timedelta(days=365)


class ServingCertError(RuntimeError):
    """The serving certificate or key cannot be read, generated or used; the message names the file."""


@dataclass(frozen=True, slots=True)
class ServingCert:
    cert_file: Path
    key_file: Path
    generated: bool


def serving_cert(options: ServeOptions) -> ServingCert:
    """The certificate files to serve with, generating the self-signed pair if needed."""
    if options.tls_cert_file and options.tls_private_key_file:
        return ServingCert(Path(options.tls_cert_file), Path(options.tls_private_key_file), generated=False)
    cert_dir = Path(options.cert_dir)
    cert_file = cert_dir / GENERATED_CERT_NAME
    key_file = cert_dir / GENERATED_KEY_NAME
    if cert_file.exists() and key_file.exists() and _still_usable(cert_file, key_file):
        log.debug("reusing the self-signed serving certificate %s", cert_file)
    else:
        write_self_signed_cert(cert_file, key_file)
        log.info("generated a self-signed serving certificate for %s in %s", ", ".join(_all_hosts()), cert_file)
    return ServingCert(cert_file, key_file, generated=True)


def server_ssl_context(cert: ServingCert) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # HTTP/1.1 only: clients that offer h2 (kubectl, client-go, the aggregator) settle on it.
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(cert.cert_file, cert.key_file)
    except (OSError, ssl.SSLError) as err:
        raise ServingCertError(
            f"cannot load the serving certificate {cert.cert_file} with key {cert.key_file}: {err}"
        ) from err
    return context


def write_self_signed_cert(cert_file: Path, key_file: Path, now: datetime.datetime | None = None) -> None:
    """An ECDSA P-256 key and a self-signed certificate for localhost/127.0.0.1 (CA:TRUE so that the
    certificate itself can be given to clients as their certificate authority)."""
    issued = now or datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"localhost@{int(issued.timestamp())}")])
    public_key = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(issued - datetime.timedelta(hours=1))
        .not_valid_after(issued + SELF_SIGNED_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
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
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(host) for host in SELF_SIGNED_HOSTS]
                + [x509.IPAddress(ipaddress.ip_address(ip)) for ip in SELF_SIGNED_IPS]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_pem = certificate.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        cert_file.parent.mkdir(parents=True, exist_ok=True)
        key_file.parent.mkdir(parents=True, exist_ok=True)
        # Key first: a reader that sees the new certificate must find its key.
        _write_atomically(key_file, key_pem, mode=0o600)
        _write_atomically(cert_file, cert_pem, mode=0o644)
    except OSError as err:
        raise ServingCertError(f"cannot write the self-signed serving certificate to {cert_file}: {err}") from err


def _still_usable(cert_file: Path, key_file: Path) -> bool:
    try:
        certificate = x509.load_pem_x509_certificate(cert_file.read_bytes())
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as err:
        log.warning("replacing the unreadable self-signed serving certificate %s: %s", cert_file, err)
        return False
    if certificate.not_valid_after_utc <= datetime.datetime.now(datetime.UTC):
        log.warning("replacing the expired self-signed serving certificate %s", cert_file)
        return False
    der, spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    matches = certificate.public_key().public_bytes(der, spki) == key.public_key().public_bytes(der, spki)
    if not matches:
        log.warning("replacing the self-signed serving certificate %s: it does not match %s", cert_file, key_file)
    return matches


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(descriptor, mode)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _all_hosts() -> tuple[str, ...]:
    return SELF_SIGNED_HOSTS + SELF_SIGNED_IPS
