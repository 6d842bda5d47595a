"""The serving certificate: generated once into --cert-dir for localhost/127.0.0.1 and reused, or
taken from --tls-cert-file/--tls-private-key-file."""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import ssl
import stat
from pathlib import Path

import aiohttp
import pytest
import trustme
from cryptography import x509
from kubemetrics.api.certs import ServingCertError, server_ssl_context, serving_cert, write_self_signed_cert
from kubemetrics.api.server import start_api_server
from kubemetrics.options import ServeOptions
from test_api_support import api_context, running_api_server


def test_self_signed_certificate_is_generated_for_localhost_and_loopback(tmp_path: Path) -> None:
    cert = serving_cert(ServeOptions(cert_dir=str(tmp_path / "certs")))

    assert cert.generated
    assert cert.cert_file == tmp_path / "certs" / "apiserver.crt"
    assert cert.key_file == tmp_path / "certs" / "apiserver.key"
    certificate = x509.load_pem_x509_certificate(cert.cert_file.read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert certificate.issuer == certificate.subject
    assert stat.S_IMODE(cert.key_file.stat().st_mode) == 0o600


def test_generated_certificate_is_reused_on_the_next_start(tmp_path: Path) -> None:
    options = ServeOptions(cert_dir=str(tmp_path / "certs"))
    first = serving_cert(options)
    cert_bytes, key_bytes = first.cert_file.read_bytes(), first.key_file.read_bytes()

    second = serving_cert(options)

    assert second.cert_file.read_bytes() == cert_bytes
    assert second.key_file.read_bytes() == key_bytes


def test_expired_generated_certificate_is_replaced(tmp_path: Path) -> None:
    cert_dir = tmp_path / "certs"
    long_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=800)
    write_self_signed_cert(cert_dir / "apiserver.crt", cert_dir / "apiserver.key", now=long_ago)
    expired = (cert_dir / "apiserver.crt").read_bytes()

    cert = serving_cert(ServeOptions(cert_dir=str(cert_dir)))

    assert cert.cert_file.read_bytes() != expired
    renewed = x509.load_pem_x509_certificate(cert.cert_file.read_bytes())
    assert renewed.not_valid_after_utc > datetime.datetime.now(datetime.UTC)


def test_unloadable_certificate_names_the_files(tmp_path: Path) -> None:
    (tmp_path / "tls.crt").write_text("not a certificate")
    (tmp_path / "tls.key").write_text("not a key")
    cert = serving_cert(
        ServeOptions(tls_cert_file=str(tmp_path / "tls.crt"), tls_private_key_file=str(tmp_path / "tls.key"))
    )

    with pytest.raises(ServingCertError, match=r"tls\.crt.*tls\.key"):
        server_ssl_context(cert)


async def test_server_is_reachable_with_the_generated_certificate_as_authority(tmp_path: Path) -> None:
    async with running_api_server(api_context(tmp_path / "certs")) as server:
        reply = await server.get("/livez")
        connection_context = ssl.create_default_context()  # system roots only: must not trust us
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await session.get(f"{server.base_url}/livez", ssl=connection_context)

    assert (reply.status, reply.body) == (200, b"ok")


async def test_given_certificate_files_are_served_instead(tmp_path: Path) -> None:
    authority = trustme.CA()
    issued = authority.issue_cert("127.0.0.1")
    issued.cert_chain_pems[0].write_to_path(str(tmp_path / "tls.crt"))
    issued.private_key_pem.write_to_path(str(tmp_path / "tls.key"))
    ctx = api_context(tmp_path / "certs")
    ctx.options = dataclasses.replace(
        ctx.options, tls_cert_file=str(tmp_path / "tls.crt"), tls_private_key_file=str(tmp_path / "tls.key")
    )

    # The shared helper trusts cert-dir's file, which must not even be created here.
    runner = await start_api_server(ctx)
    try:
        port = runner.addresses[0][1]
        client_context = ssl.create_default_context()
        authority.configure_trust(client_context)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"https://127.0.0.1:{port}/healthz", ssl=client_context) as response:
                body = await response.read()
    finally:
        await runner.cleanup()

    assert body == b"ok"
    assert not (tmp_path / "certs").exists()
