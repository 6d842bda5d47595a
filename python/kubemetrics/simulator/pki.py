"""The simulated cluster's CA and the kubelets' serving certificates.

Each node gets its own serving certificate, as a real kubelet has: CN system:node:<name>, O system:nodes,
its address as an IP SAN and its name as a DNS SAN. A client keeps its peer's parsed certificate for as
long as it keeps the connection, so what a collector's kept-alive kubelet connections cost depends on
it: a certificate shared by a /24 block of nodes (254 IP and 254 DNS SANs) made each connection of a
Python client about 60 KB larger than a real kubelet's. Certificates are issued when a node starts
listening (about 0.25 ms each, plus 0.85 ms for its TLS context). All of them use one ECDSA P-256 key.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kubemetrics.certificates import self_signed_ca

CA_FILE = "ca.crt"
CA_KEY_FILE = "ca.key"
SERVING_DIR = "kubelet-serving"
SERVING_KEY_FILE = "kubelet-serving.key"


@dataclass(frozen=True, slots=True)
class ServingCertificate:
    cert_file: Path
    key_file: Path


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    name: str
    address: ipaddress.IPv4Address


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(temporary, path)


def _write_public(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


class ClusterPki:
    """Generates a fresh CA and the serving certificates into `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        now = datetime.datetime.now(datetime.UTC)
        self._not_before = now - datetime.timedelta(hours=1)
        self._ca_key = ec.generate_private_key(ec.SECP256R1())
        self._serving_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubemetrics-simulator-ca")])
        self._ca_name = ca_name
        self._ca_cert = self_signed_ca(self._ca_key, ca_name, self._not_before, now + datetime.timedelta(days=3650))
        _write_public(self.ca_file, self._ca_cert.public_bytes(serialization.Encoding.PEM))
        _write_private(directory / CA_KEY_FILE, _key_pem(self._ca_key))
        self.serving_key_file = directory / SERVING_DIR / SERVING_KEY_FILE
        _write_private(self.serving_key_file, _key_pem(self._serving_key))

    @property
    def ca_file(self) -> Path:
        return self.directory / CA_FILE

    def issue_node(self, node: NodeIdentity) -> ServingCertificate:
        """The serving certificate of one node."""
        now = datetime.datetime.now(datetime.UTC)
        sans: list[x509.GeneralName] = [x509.IPAddress(node.address), x509.DNSName(node.name)]
        cert = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
                        x509.NameAttribute(NameOID.COMMON_NAME, f"system:node:{node.name}"),
                    ]
                )
            )
            .issuer_name(self._ca_name)
            .public_key(self._serving_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._not_before)
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._ca_key.public_key()), critical=False
            )
            .sign(self._ca_key, hashes.SHA256())
        )
        cert_file = self.directory / SERVING_DIR / f"{node.name}.crt"
        _write_public(cert_file, cert.public_bytes(serialization.Encoding.PEM))
        return ServingCertificate(cert_file=cert_file, key_file=self.serving_key_file)
