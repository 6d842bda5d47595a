"""The kubelet client: URLs, TLS verification and credentials as metrics-server has them, the request
deadline, the body cap, and how each failure is classified — against real TLS servers on loopback."""

from __future__ import annotations

import os
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
import trustme
import uvloop
from kubemetrics.options import KubeletOptions
from kubemetrics.worker.kubelet_client import (
    BearerToken,
    KubeletClient,
    ScrapeFailure,
    build_tls_context,
    classify_request_error,
    connection_keepalive_seconds,
    kubelet_url,
    resolve_credential_files,
    status_failure,
)
from test_worker_fakes import (
    CHUNKED,
    CUT,
    GZIP,
    OK,
    SLOW,
    STATUS_500,
    FakeKubelet,
    SilentServer,
    TLSMaterial,
    fixture_body,
)
from yarl import URL


def test_kubelet_urls_bracket_ipv6_literals_as_go_join_host_port_does() -> None:
    path = "/stats/summary?only_cpu_and_memory=true"
    assert kubelet_url("10.0.0.7", 10250, path) == "https://10.0.0.7:10250/stats/summary?only_cpu_and_memory=true"
    assert kubelet_url("fd00::7", 10250, path) == "https://[fd00::7]:10250/stats/summary?only_cpu_and_memory=true"
    assert kubelet_url("[fd00::7]", 10250, "/metrics/resource") == "https://[fd00::7]:10250/metrics/resource"
    assert kubelet_url("node-1.example", 10255, "metrics/resource") == "https://node-1.example:10255/metrics/resource"


def test_idle_connections_outlive_the_resolution() -> None:
    assert connection_keepalive_seconds(15.0) == 30.0
    assert connection_keepalive_seconds(60.0) == 120.0
    assert connection_keepalive_seconds(1.0) == 30.0


def test_insecure_tls_verifies_nothing_and_a_ca_verifies_chain_and_host(tmp_path: Path) -> None:
    insecure = build_tls_context(KubeletOptions(insecure_tls=True), "")
    assert (insecure.verify_mode, insecure.check_hostname) == (ssl.CERT_NONE, False)

    ca_file = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca_file))
    verifying = build_tls_context(KubeletOptions(certificate_authority=str(ca_file)), str(ca_file))
    assert (verifying.verify_mode, verifying.check_hostname) == (ssl.CERT_REQUIRED, True)
    # Only the given CA is trusted, not the system roots.
    assert len(verifying.get_ca_certs()) == 1


def test_a_missing_ca_file_fails_when_the_context_is_built(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        build_tls_context(KubeletOptions(), str(tmp_path / "absent.pem"))


def test_in_cluster_credentials_fill_in_only_what_flags_leave_empty(tmp_path: Path) -> None:
    ca_file, token_file = tmp_path / "ca.crt", tmp_path / "token"
    ca_file.write_text("ca")
    token_file.write_text("token")
    in_pod = {"KUBERNETES_SERVICE_HOST": "10.96.0.1"}

    def resolve(options: KubeletOptions, environ: dict[str, str]) -> tuple[str, str]:
        files = resolve_credential_files(options, environ, ca_file, token_file)
        return files.certificate_authority, files.bearer_token_file

    assert resolve(KubeletOptions(), in_pod) == (str(ca_file), str(token_file))
    assert resolve(KubeletOptions(), {}) == ("", "")
    assert resolve(KubeletOptions(insecure_tls=True), in_pod) == ("", str(token_file))
    explicit = KubeletOptions(certificate_authority="/etc/kubelet-ca.pem", bearer_token_file="/etc/token")
    assert resolve(explicit, in_pod) == ("/etc/kubelet-ca.pem", "/etc/token")


def test_non_200_statuses_are_worded_as_metrics_server_words_them() -> None:
    assert status_failure(500, "Internal Server Error").message == 'request failed, status: "500 Internal Server Error"'
    assert status_failure(403, None).message == 'request failed, status: "403 Forbidden"'
    assert status_failure(599, "").message == 'request failed, status: "599"'
    assert status_failure(401, "Unauthorized").kind == "http_status"


@pytest.mark.parametrize(
    ("error", "kind", "message"),
    [
        (TimeoutError(), "timeout", "request timed out after 2s reading the body"),
        (ConnectionRefusedError(111, "Connection refused"), "connect", "connection failed: ConnectionRefusedError"),
        (aiohttp.ServerDisconnectedError(), "connect", "connection failed: ServerDisconnectedError"),
        (aiohttp.ClientPayloadError("Response payload is not completed"), "connect", "connection broken"),
        (ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number"), "tls", "TLS handshake failed"),
        (RuntimeError("surprise"), "connect", "request failed: RuntimeError: surprise"),
        (ScrapeFailure("oversized", "too big"), "oversized", "too big"),
    ],
)
def test_request_errors_are_classified_into_ingest_error_kinds(error: Exception, kind: str, message: str) -> None:
    failure = classify_request_error(error, 2.0, "reading the body")
    assert failure.kind == kind
    assert failure.message.startswith(message)


@asynccontextmanager
async def kubelet_client(
    options: KubeletOptions, certificate_authority: str = "", token: BearerToken | None = None
) -> AsyncIterator[KubeletClient]:
    context = build_tls_context(options, certificate_authority or options.certificate_authority)
    async with KubeletClient(options, 15.0, context, token) as client:
        yield client


@asynccontextmanager
async def serving(server: FakeKubelet | SilentServer) -> AsyncIterator[None]:
    await server.start()
    try:
        yield
    finally:
        await server.stop()


async def failure_of(client: KubeletClient, url: str) -> ScrapeFailure:
    with pytest.raises(ScrapeFailure) as caught:
        await client.get(URL(url, encoded=True))
    return caught.value


async def test_a_kubelet_certificate_from_the_given_ca_is_accepted_and_its_body_returned(tmp_path: Path) -> None:
    tls = TLSMaterial.create(tmp_path, "127.0.8.1")
    kubelet = FakeKubelet("127.0.8.1", tls)
    async with serving(kubelet), kubelet_client(KubeletOptions(certificate_authority=str(tls.ca_file))) as client:
        assert await client.get(URL(kubelet.url, encoded=True)) == kubelet.body
        assert await client.get(URL(kubelet.url, encoded=True)) == kubelet.body
    assert kubelet.requests[0].headers["User-Agent"].startswith("kubemetrics/")
    assert "Authorization" not in kubelet.requests[0].headers
    # Both requests used one kept-alive connection.
    assert kubelet.requests[0].peer == kubelet.requests[1].peer


async def test_a_kubelet_certificate_from_another_ca_fails_as_tls(tmp_path: Path) -> None:
    tls = TLSMaterial.create(tmp_path, "127.0.8.2")
    other = TLSMaterial.create(tmp_path, "127.0.8.2", name="other-ca")
    kubelet = FakeKubelet("127.0.8.2", tls)
    async with serving(kubelet), kubelet_client(KubeletOptions(certificate_authority=str(other.ca_file))) as client:
        failure = await failure_of(client, kubelet.url)
    assert failure.kind == "tls"
    assert "certificate verify failed" in failure.message
    assert kubelet.requests == []


async def test_a_certificate_without_the_dialed_ip_as_san_fails_as_tls(tmp_path: Path) -> None:
    tls = TLSMaterial.create(tmp_path, "127.0.8.99", "node-3.example")
    kubelet = FakeKubelet("127.0.8.3", tls)
    async with serving(kubelet), kubelet_client(KubeletOptions(certificate_authority=str(tls.ca_file))) as client:
        failure = await failure_of(client, kubelet.url)
    assert failure.kind == "tls"
    assert "IP address mismatch" in failure.message


async def test_insecure_tls_accepts_any_kubelet_certificate(tmp_path: Path) -> None:
    tls = TLSMaterial.create(tmp_path, "127.0.8.99")
    kubelet = FakeKubelet("127.0.8.4", tls)
    async with serving(kubelet), kubelet_client(KubeletOptions(insecure_tls=True)) as client:
        assert await client.get(URL(kubelet.url, encoded=True)) == kubelet.body


async def test_the_client_certificate_is_presented_to_kubelets(tmp_path: Path) -> None:
    tls = TLSMaterial.create(tmp_path, "127.0.8.5")
    client_cert = tls.ca.issue_cert("metrics-server.example", common_name="system:metrics-server")
    cert_file, key_file = tmp_path / "client.crt", tmp_path / "client.key"
    client_cert.cert_chain_pems[0].write_to_path(str(cert_file))
    client_cert.private_key_pem.write_to_path(str(key_file))
    # The kubelet now demands a client certificate from its CA.
    tls.server_context.verify_mode = ssl.CERT_REQUIRED
    tls.ca.configure_trust(tls.server_context)
    kubelet = FakeKubelet("127.0.8.5", tls)
    options = KubeletOptions(
        certificate_authority=str(tls.ca_file), client_certificate=str(cert_file), client_key=str(key_file)
    )
    async with serving(kubelet), kubelet_client(options) as client:
        assert await client.get(URL(kubelet.url, encoded=True)) == kubelet.body
    presented = kubelet.requests[0].client_cert
    assert presented is not None
    assert (("commonName", "system:metrics-server"),) in presented["subject"]


async def test_the_bearer_token_is_sent_and_reloaded_when_its_file_changes(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("first-token\n")
    now = [100.0]
    token = BearerToken(str(token_file), clock=lambda: now[0])
    tls = TLSMaterial.create(tmp_path, "127.0.8.6")
    kubelet = FakeKubelet("127.0.8.6", tls)
    async with serving(kubelet), kubelet_client(KubeletOptions(insecure_tls=True), token=token) as client:
        url = URL(kubelet.url, encoded=True)
        await client.get(url)
        # A rotation: a new file replaces the old one (as the kubelet's atomic symlink swap does).
        replacement = tmp_path / "token.new"
        replacement.write_text("second-token")
        os.replace(replacement, token_file)
        await client.get(url)  # within a second of the last check: the file is not looked at
        now[0] += 1.5
        await client.get(url)
    assert [request.headers["Authorization"] for request in kubelet.requests] == [
        "Bearer first-token",
        "Bearer first-token",
        "Bearer second-token",
    ]


def test_an_unreadable_token_file_keeps_the_last_good_token(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    now = [0.0]
    token = BearerToken(str(token_file), clock=lambda: now[0])
    assert token.authorization() is None
    token_file.write_text("abc")
    now[0] += 2
    assert token.authorization() == "Bearer abc"
    token_file.unlink()
    now[0] += 2
    assert token.authorization() == "Bearer abc"


async def test_a_kubelet_that_never_answers_times_out_after_the_request_timeout() -> None:
    silent = SilentServer("127.0.8.7")
    async with serving(silent), kubelet_client(KubeletOptions(request_timeout_seconds=0.3, insecure_tls=True)) as c:
        started = time.monotonic()
        failure = await failure_of(c, f"https://127.0.8.7:{silent.port}/stats/summary")
        elapsed = time.monotonic() - started
    assert failure.kind == "timeout"
    assert failure.message == "request timed out after 0.3s waiting for the response"
    assert 0.28 <= elapsed < 0.6


async def test_a_kubelet_that_sends_no_headers_times_out(tmp_path: Path) -> None:
    tls = TLSMaterial.create(tmp_path, "127.0.8.8")
    kubelet = FakeKubelet("127.0.8.8", tls, mode=SLOW)
    async with serving(kubelet), kubelet_client(KubeletOptions(request_timeout_seconds=0.3, insecure_tls=True)) as c:
        failure = await failure_of(c, kubelet.url)
    assert (failure.kind, failure.message) == ("timeout", "request timed out after 0.3s waiting for the response")
    assert len(kubelet.requests) == 1


async def test_a_refused_connection_fails_as_connect() -> None:
    async with kubelet_client(KubeletOptions(insecure_tls=True)) as client:
        failure = await failure_of(client, "https://127.0.8.9:1/stats/summary")
    assert failure.kind == "connect"
    assert "Connect call failed" in failure.message


@pytest.mark.parametrize("mode", [OK, CHUNKED, GZIP])
async def test_a_body_over_the_cap_is_refused_as_oversized_however_it_is_sent(tmp_path: Path, mode: str) -> None:
    tls = TLSMaterial.create(tmp_path, "127.0.8.10")
    kubelet = FakeKubelet("127.0.8.10", tls, mode=mode)
    limit = len(kubelet.body) - 1
    options = KubeletOptions(insecure_tls=True, max_body_bytes=limit)
    async with serving(kubelet), kubelet_client(options) as client:
        failure = await failure_of(client, kubelet.url)
        assert failure.kind == "oversized"
        assert failure.message.startswith(f"response body exceeds --kubelet-max-body-bytes={limit} (")
        if mode == OK:
            assert failure.message.endswith(f"(Content-Length is {len(kubelet.body)})")
        else:
            assert limit < failure.response_bytes <= len(kubelet.body)


@pytest.mark.parametrize("mode", [CHUNKED, GZIP])
async def test_a_body_within_the_cap_is_returned_whole_however_it_is_sent(tmp_path: Path, mode: str) -> None:
    tls = TLSMaterial.create(tmp_path, "127.0.8.11")
    kubelet = FakeKubelet("127.0.8.11", tls, mode=mode)
    options = KubeletOptions(insecure_tls=True, max_body_bytes=len(kubelet.body))
    async with serving(kubelet), kubelet_client(options) as client:
        assert await client.get(URL(kubelet.url, encoded=True)) == kubelet.body


async def test_a_status_and_a_cut_body_are_classified(tmp_path: Path) -> None:
    tls = TLSMaterial.create(tmp_path, "127.0.8.12")
    kubelet = FakeKubelet("127.0.8.12", tls, mode=STATUS_500)
    async with serving(kubelet), kubelet_client(KubeletOptions(insecure_tls=True)) as client:
        failure = await failure_of(client, kubelet.url)
        assert (failure.kind, failure.message) == ("http_status", 'request failed, status: "500 Internal Server Error"')
        kubelet.mode = CUT
        failure = await failure_of(client, kubelet.url)
        assert failure.kind == "connect"
        assert "Not enough data to satisfy content length header" in failure.message


def test_tls_and_timeout_failures_are_classified_the_same_on_uvloop(tmp_path: Path) -> None:
    # uvloop has its own TLS transport; the worker runs on it.
    tls = TLSMaterial.create(tmp_path, "127.0.8.13")
    other = TLSMaterial.create(tmp_path, "127.0.8.13", name="other-ca")

    async def scenario() -> tuple[str, str, bytes]:
        kubelet, silent = FakeKubelet("127.0.8.13", tls), SilentServer("127.0.8.14")
        async with serving(kubelet), serving(silent):
            wrong = KubeletOptions(certificate_authority=str(other.ca_file), request_timeout_seconds=0.3)
            async with kubelet_client(wrong) as client:
                tls_kind = (await failure_of(client, kubelet.url)).kind
                timeout_kind = (await failure_of(client, f"https://127.0.8.14:{silent.port}/")).kind
            async with kubelet_client(KubeletOptions(certificate_authority=str(tls.ca_file))) as client:
                body = await client.get(URL(kubelet.url, encoded=True))
        return tls_kind, timeout_kind, body

    assert uvloop.run(scenario()) == ("tls", "timeout", fixture_body())
