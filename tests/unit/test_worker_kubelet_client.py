"""The kubelet client: URLs, TLS verification and credentials as metrics-server has them, the request
deadline, the body cap, HTTP/1.1 framing and keep-alive, and how each failure is classified — against
real TLS servers on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import os
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
import uvloop
from harness import eventually
from kubemetrics import __version__
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
        (ConnectionResetError(104, "Connection reset by peer"), "connect", "connection failed: ConnectionResetError"),
        (ssl.SSLCertVerificationError(1, "certificate verify failed"), "tls", "TLS certificate verification failed"),
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
async def serving(server: FakeKubelet | SilentServer | ScriptedKubelet) -> AsyncIterator[None]:
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
    half, whole = len(kubelet.body) // 2, len(kubelet.body)
    assert (failure.kind, failure.message) == (
        "connect",
        f"connection broken while reading the body: connection closed after {half} of {whole} bytes",
    )


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


# --- HTTP/1.1 on the wire: a kubelet that sends exactly the bytes a test scripts -------------------------

KEEP = "keep"  # after the reply, wait for the next request on the connection
CLOSE = "close"  # after the reply, close the connection
STALL = "stall"  # after the reply, send nothing more and wait for the client to hang up

RESOURCE_PATH = "/metrics/resource"
# Long enough that each write reaches the client as a read of its own.
PAUSE_BETWEEN_WRITES = 0.005


@dataclass
class Reply:
    writes: tuple[bytes, ...]
    then: str = KEEP


class ScriptedKubelet:
    """A TLS server that answers each request with the next scripted reply, byte for byte, and records
    on which connection each request head arrived."""

    def __init__(self, host: str, tls: TLSMaterial, *replies: Reply) -> None:
        self.host = host
        self.port = 0
        self.replies = list(replies)
        self.requests: list[tuple[int, bytes]] = []  # (connection number from 1, request head)
        self.connections = 0
        self.hung_up_by_client = 0
        self._tls = tls
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> URL:
        return URL(f"https://{self.host}:{self.port}{RESOURCE_PATH}", encoded=True)

    def connection_numbers(self) -> list[int]:
        return [number for number, _ in self.requests]

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, 0, ssl=self._tls.server_context)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for handler in self._handlers:
            handler.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        self.connections += 1
        number = self.connections
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    self.hung_up_by_client += 1
                    return
                self.requests.append((number, head))
                reply = self.replies.pop(0)
                for index, data in enumerate(reply.writes):
                    if index:
                        await asyncio.sleep(PAUSE_BETWEEN_WRITES)
                    writer.write(data)
                    await writer.drain()
                if reply.then == CLOSE:
                    return
                if reply.then == STALL:
                    with contextlib.suppress(ConnectionError):
                        await reader.read()
                    self.hung_up_by_client += 1
                    return
        finally:
            writer.transport.abort()


def ok_head(*fields: str) -> bytes:
    return ("\r\n".join(("HTTP/1.1 200 OK", *fields)) + "\r\n\r\n").encode()


def content_length_reply(body: bytes, *fields: str, then: str = KEEP) -> Reply:
    return Reply((ok_head(f"Content-Length: {len(body)}", *fields) + body,), then)


def chunked(body: bytes, chunk_bytes: int) -> bytes:
    framed = b"".join(
        b"%x\r\n%s\r\n" % (len(body[start : start + chunk_bytes]), body[start : start + chunk_bytes])
        for start in range(0, len(body), chunk_bytes)
    )
    return framed + b"0\r\n\r\n"


def resource_body() -> bytes:
    # A /metrics/resource-like text body; its content does not matter to the client.
    lines = [
        f'container_cpu_usage_seconds_total{{container="c{i}",namespace="ns",pod="p{i}"}} {i}.5 1700000000000'
        for i in range(300)
    ]
    return ("\n".join(lines) + "\n").encode()


async def test_a_content_length_answer_to_the_exact_request_go_sends(tmp_path: Path) -> None:
    tls = TLSMaterial.create(tmp_path, "127.0.9.1")
    body = resource_body()
    # An interim 103 before the answer is skipped, as Go's transport skips it.
    early_hints = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
    kubelet = ScriptedKubelet("127.0.9.1", tls, Reply((early_hints, ok_head(f"Content-Length: {len(body)}"), body)))
    token_file = tmp_path / "token"
    token_file.write_text("sa-token\n")
    options = KubeletOptions(certificate_authority=str(tls.ca_file))
    async with serving(kubelet), kubelet_client(options, token=BearerToken(str(token_file))) as client:
        assert await client.get(kubelet.url) == body
    assert kubelet.requests == [
        (
            1,
            (
                f"GET /metrics/resource HTTP/1.1\r\nHost: 127.0.9.1:{kubelet.port}\r\n"
                f"User-Agent: kubemetrics/{__version__}\r\nAccept: */*\r\nAccept-Encoding: gzip\r\n"
                "Authorization: Bearer sa-token\r\n\r\n"
            ).encode(),
        )
    ]


async def test_a_chunked_body_split_anywhere_across_reads_is_reassembled(tmp_path: Path) -> None:
    tls = TLSMaterial.create(tmp_path, "127.0.9.2")
    body = resource_body()
    first, second = body[:4000], body[4000:]
    first_size = b"%x" % len(first)
    writes = (
        ok_head("Content-Type: text/plain", "Transfer-Encoding: chunked"),
        # A chunk-size line cut after its first digit, then inside its extension, then between CR and LF.
        first_size[:1],
        first_size[1:] + b";name=",
        b'"value"\r',
        b"\n" + first[:1000],
        first[1000:] + b"\r",
        b"\n%x\r\n" % len(second) + second[:10],
        second[10:],
        b"\r\n0\r\n",
        # Trailer fields after the last chunk, themselves split.
        b"X-Checksum: abc\r\nX-Other",
        b": 1\r\n\r",
        b"\n",
    )
    kubelet = ScriptedKubelet(
        "127.0.9.2", tls, Reply(writes), Reply((ok_head("Transfer-Encoding: chunked"), chunked(body, 700)))
    )
    async with serving(kubelet), kubelet_client(KubeletOptions(insecure_tls=True)) as client:
        assert await client.get(kubelet.url) == body
        assert await client.get(kubelet.url) == body
    # The whole first response, trailers included, was consumed: the connection served the second.
    assert kubelet.connection_numbers() == [1, 1]


async def test_gzip_bodies_are_decoded_whatever_their_framing_and_members(tmp_path: Path) -> None:
    tls = TLSMaterial.create(tmp_path, "127.0.9.3")
    body = resource_body()
    compressed = gzip.compress(body)
    two_members = gzip.compress(body[:5000]) + gzip.compress(body[5000:])
    kubelet = ScriptedKubelet(
        "127.0.9.3",
        tls,
        Reply(
            (
                ok_head("Content-Encoding: gzip", f"Content-Length: {len(compressed)}"),
                compressed[:100],
                compressed[100:],
            )
        ),
        Reply((ok_head("Content-Encoding: gzip", "Transfer-Encoding: chunked") + chunked(two_members, 333),)),
    )
    async with serving(kubelet), kubelet_client(KubeletOptions(insecure_tls=True)) as client:
        assert await client.get(kubelet.url) == body
        assert await client.get(kubelet.url) == body
    assert kubelet.connection_numbers() == [1, 1]


async def test_a_gzip_body_that_inflates_past_the_cap_is_refused_without_inflating_it_all(tmp_path: Path) -> None:
    tls = TLSMaterial.create(tmp_path, "127.0.9.4")
    bomb = gzip.compress(b"\0" * (8 << 20))
    kubelet = ScriptedKubelet("127.0.9.4", tls, content_length_reply(bomb, "Content-Encoding: gzip", then=STALL))
    async with serving(kubelet), kubelet_client(KubeletOptions(insecure_tls=True, max_body_bytes=1 << 20)) as client:
        failure = await failure_of(client, str(kubelet.url))
        await eventually(lambda: kubelet.hung_up_by_client == 1, "the client to drop the connection")
    assert (failure.kind, failure.response_bytes) == ("oversized", (1 << 20) + 1)
    assert (
        failure.message
        == f"response body exceeds --kubelet-max-body-bytes={1 << 20} (more than {1 << 20} bytes received)"
    )


async def test_one_kept_alive_connection_serves_consecutive_requests_and_is_closed_with_the_client(
    tmp_path: Path,
) -> None:
    tls = TLSMaterial.create(tmp_path, "127.0.9.5")
    body = resource_body()
    kubelet = ScriptedKubelet("127.0.9.5", tls, *(content_length_reply(body) for _ in range(3)))
    async with serving(kubelet):
        async with kubelet_client(KubeletOptions(insecure_tls=True)) as client:
            for _ in range(3):
                assert await client.get(kubelet.url) == body
            assert (kubelet.connections, kubelet.hung_up_by_client) == (1, 0)
        await eventually(lambda: kubelet.hung_up_by_client == 1, "the closed client to hang up")
    assert kubelet.connection_numbers() == [1, 1, 1]


async def test_concurrent_requests_to_one_kubelet_each_get_a_connection_and_one_stays_idle(tmp_path: Path) -> None:
    tls = TLSMaterial.create(tmp_path, "127.0.9.6")
    body = resource_body()
    kubelet = ScriptedKubelet("127.0.9.6", tls, *(content_length_reply(body) for _ in range(3)))
    async with serving(kubelet), kubelet_client(KubeletOptions(insecure_tls=True)) as client:
        assert await asyncio.gather(client.get(kubelet.url), client.get(kubelet.url)) == [body, body]
        assert kubelet.connections == 2
        # Only one idle connection per kubelet is kept: the other is closed, the kept one reused.
        await eventually(lambda: kubelet.hung_up_by_client == 1, "the surplus connection to be closed")
        assert await client.get(kubelet.url) == body
    assert kubelet.connections == 2


async def test_a_kept_alive_connection_the_kubelet_closed_is_replaced_transparently(tmp_path: Path) -> None:
    tls = TLSMaterial.create(tmp_path, "127.0.9.7")
    body = resource_body()
    kubelet = ScriptedKubelet(
        "127.0.9.7",
        tls,
        content_length_reply(body),
        # The kubelet closes the idle connection just as the next request arrives on it.
        Reply((), CLOSE),
        content_length_reply(body),
        # Closed after answering, without saying so: the client notices before reusing it.
        content_length_reply(body, then=CLOSE),
        content_length_reply(body),
    )
    async with serving(kubelet), kubelet_client(KubeletOptions(insecure_tls=True)) as client:
        assert await client.get(kubelet.url) == body
        assert await client.get(kubelet.url) == body
        assert await client.get(kubelet.url) == body
        await asyncio.sleep(0.05)
        assert await client.get(kubelet.url) == body
    assert kubelet.connection_numbers() == [1, 1, 2, 2, 3]


async def test_a_new_connection_closed_before_any_answer_fails_without_a_retry(tmp_path: Path) -> None:
    tls = TLSMaterial.create(tmp_path, "127.0.9.8")
    kubelet = ScriptedKubelet("127.0.9.8", tls, Reply((), CLOSE), content_length_reply(b"unused"))
    async with serving(kubelet), kubelet_client(KubeletOptions(insecure_tls=True)) as client:
        failure = await failure_of(client, str(kubelet.url))
    assert (failure.kind, failure.message) == ("connect", "connection closed by the kubelet before it answered")
    assert kubelet.connection_numbers() == [1]


async def test_connection_close_from_the_kubelet_is_respected(tmp_path: Path) -> None:
    tls = TLSMaterial.create(tmp_path, "127.0.9.9")
    body = resource_body()
    # The kubelet says close but leaves the connection open: the client must not reuse it anyway.
    kubelet = ScriptedKubelet(
        "127.0.9.9", tls, content_length_reply(body, "Connection: close"), content_length_reply(body)
    )
    async with serving(kubelet), kubelet_client(KubeletOptions(insecure_tls=True)) as client:
        assert await client.get(kubelet.url) == body
        await eventually(lambda: kubelet.hung_up_by_client == 1, "the client to close the connection")
        assert await client.get(kubelet.url) == body
    assert kubelet.connection_numbers() == [1, 2]


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_a_connection_that_sent_more_than_the_answer_is_not_reused(tmp_path: Path, framing: str) -> None:
    tls = TLSMaterial.create(tmp_path, "127.0.9.16")
    body = resource_body()
    answer = (
        ok_head(f"Content-Length: {len(body)}") + body
        if framing == "content-length"
        else ok_head("Transfer-Encoding: chunked") + chunked(body, 1000)
    )
    # What follows the answer cannot belong to any request: nothing read later on the connection could be trusted.
    unsolicited = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale"
    kubelet = ScriptedKubelet("127.0.9.16", tls, Reply((answer + unsolicited,)), content_length_reply(b"fresh"))
    async with serving(kubelet), kubelet_client(KubeletOptions(insecure_tls=True)) as client:
        assert await client.get(kubelet.url) == body
        assert await client.get(kubelet.url) == b"fresh"
    assert kubelet.connection_numbers() == [1, 2]


@pytest.mark.parametrize(
    ("status_line", "status", "message"),
    [
        ("HTTP/1.1 500 Internal Server Error", 500, 'request failed, status: "500 Internal Server Error"'),
        ("HTTP/1.1 503 Node Shutting Down", 503, 'request failed, status: "503 Node Shutting Down"'),
        ("HTTP/1.1 404 Not Found", 404, 'request failed, status: "404 Not Found"'),
        ("HTTP/1.1 401", 401, 'request failed, status: "401 Unauthorized"'),
        # Redirects are not followed: the token would go wherever the Location points.
        ("HTTP/1.1 302 Found\r\nLocation: https://127.0.9.99/", 302, 'request failed, status: "302 Found"'),
    ],
)
async def test_a_non_200_status_fails_with_metrics_servers_wording(
    tmp_path: Path, status_line: str, status: int, message: str
) -> None:
    tls = TLSMaterial.create(tmp_path, "127.0.9.10")
    answer = f"{status_line}\r\nContent-Length: 9\r\n\r\nno metric".encode()
    kubelet = ScriptedKubelet("127.0.9.10", tls, Reply((answer,)), content_length_reply(b"fine"))
    async with serving(kubelet), kubelet_client(KubeletOptions(insecure_tls=True)) as client:
        failure = await failure_of(client, str(kubelet.url))
        # The failed response's connection is not reused (as Go's transport with an unread body).
        assert await client.get(kubelet.url) == b"fine"
    assert (failure.kind, failure.status, failure.message) == ("http_status", status, message)
    assert kubelet.connection_numbers() == [1, 2]


async def test_a_content_length_over_the_cap_fails_before_the_body_is_read(tmp_path: Path) -> None:
    tls = TLSMaterial.create(tmp_path, "127.0.9.11")
    kubelet = ScriptedKubelet("127.0.9.11", tls, Reply((ok_head("Content-Length: 1000001"),), STALL))
    options = KubeletOptions(insecure_tls=True, max_body_bytes=1_000_000, request_timeout_seconds=5)
    async with serving(kubelet), kubelet_client(options) as client:
        started = time.monotonic()
        failure = await failure_of(client, str(kubelet.url))
        elapsed = time.monotonic() - started
        await eventually(lambda: kubelet.hung_up_by_client == 1, "the client to drop the connection")
    assert (failure.kind, failure.response_bytes) == ("oversized", 0)
    assert failure.message == "response body exceeds --kubelet-max-body-bytes=1000000 (Content-Length is 1000001)"
    assert elapsed < 1.0


async def test_a_streamed_body_over_the_cap_is_cut_off(tmp_path: Path) -> None:
    tls = TLSMaterial.create(tmp_path, "127.0.9.12")
    chunk = b"%x\r\n%s\r\n" % (4096, b"x" * 4096)
    # Three chunks within the cap, more than the cap in the fourth; then the kubelet would go on forever.
    kubelet = ScriptedKubelet(
        "127.0.9.12", tls, Reply((ok_head("Transfer-Encoding: chunked"), chunk, chunk, chunk, chunk), STALL)
    )
    limit = 3 * 4096 + 100
    options = KubeletOptions(insecure_tls=True, max_body_bytes=limit, request_timeout_seconds=5)
    async with serving(kubelet), kubelet_client(options) as client:
        failure = await failure_of(client, str(kubelet.url))
        await eventually(lambda: kubelet.hung_up_by_client == 1, "the client to drop the connection")
    assert (failure.kind, failure.response_bytes) == ("oversized", 4 * 4096)
    assert (
        failure.message == f"response body exceeds --kubelet-max-body-bytes={limit} (more than {limit} bytes received)"
    )


async def test_a_kubelet_that_stalls_after_the_headers_times_out_reading_the_body(tmp_path: Path) -> None:
    tls = TLSMaterial.create(tmp_path, "127.0.9.13")
    kubelet = ScriptedKubelet("127.0.9.13", tls, Reply((ok_head("Content-Length: 100") + b"only ten..",), STALL))
    options = KubeletOptions(insecure_tls=True, request_timeout_seconds=0.3)
    async with serving(kubelet), kubelet_client(options) as client:
        started = time.monotonic()
        failure = await failure_of(client, str(kubelet.url))
        elapsed = time.monotonic() - started
        await eventually(lambda: kubelet.hung_up_by_client == 1, "the client to drop the connection")
    assert (failure.kind, failure.message) == ("timeout", "request timed out after 0.3s reading the body")
    assert 0.28 <= elapsed < 0.6


@pytest.mark.parametrize(
    ("writes", "then", "message"),
    [
        (
            (b"SSH-2.0-OpenSSH_9.6\r\n",),
            STALL,
            "invalid HTTP response: not HTTP/1.x: starts with b'SSH-2.0-OpenSSH_9.6\\r\\n'",
        ),
        (
            (b"HTTP/1.1 OK 200\r\n\r\n",),
            STALL,
            "invalid HTTP response: malformed status line b'HTTP/1.1 OK 200'",
        ),
        (
            (ok_head("Content-Length: ten"),),
            STALL,
            "invalid HTTP response: bad Content-Length b'ten'",
        ),
        (
            (ok_head("Content-Encoding: br", "Content-Length: 3") + b"abc",),
            KEEP,
            "invalid HTTP response: unsupported Content-Encoding b'br' (only gzip is accepted)",
        ),
        (
            (ok_head("Transfer-Encoding: chunked") + b"zz\r\n",),
            STALL,
            "connection broken while reading the body: bad chunk-size line b'zz'",
        ),
        (
            (ok_head("Transfer-Encoding: chunked") + b"3\r\nabcX",),
            STALL,
            "connection broken while reading the body: chunk data not followed by CRLF",
        ),
        (
            (ok_head("Transfer-Encoding: chunked") + b"10\r\nabc",),
            CLOSE,
            "connection broken while reading the body: connection closed inside the chunked body",
        ),
        (
            (ok_head("Content-Encoding: gzip", "Content-Length: 4") + b"\x1f\x8b\x08\x00",),
            KEEP,
            "invalid gzip body: the stream ends early",
        ),
        (
            (b"HTTP/1.1 200 OK\r\nContent",),
            CLOSE,
            "connection broken while reading the response head",
        ),
    ],
)
async def test_a_response_that_is_not_well_formed_http_fails_as_connect(
    tmp_path: Path, writes: tuple[bytes, ...], then: str, message: str
) -> None:
    tls = TLSMaterial.create(tmp_path, "127.0.9.14")
    kubelet = ScriptedKubelet("127.0.9.14", tls, Reply(writes, then))
    options = KubeletOptions(insecure_tls=True, request_timeout_seconds=5)
    async with serving(kubelet), kubelet_client(options) as client:
        started = time.monotonic()
        failure = await failure_of(client, str(kubelet.url))
        elapsed = time.monotonic() - started
        await eventually(lambda: kubelet.connections == kubelet.hung_up_by_client or then == CLOSE, "a hang-up")
    assert (failure.kind, failure.message) == ("connect", message)
    # Recognised as broken at once, not left to the deadline.
    assert elapsed < 1.0


def test_framing_keep_alive_and_failures_behave_the_same_on_uvloop(tmp_path: Path) -> None:
    tls = TLSMaterial.create(tmp_path, "127.0.9.15")
    body = resource_body()

    async def scenario() -> tuple[list[bytes], str, list[int]]:
        kubelet = ScriptedKubelet(
            "127.0.9.15",
            tls,
            Reply((ok_head("Transfer-Encoding: chunked"), b"1", b"f4\r\n" + b"y" * 0x1F4, b"\r\n0\r\n\r\n")),
            Reply((), CLOSE),
            Reply((ok_head("Content-Encoding: gzip", "Transfer-Encoding: chunked"), chunked(gzip.compress(body), 500))),
            Reply((b"\x00\x01garbage",), STALL),
        )
        async with serving(kubelet), kubelet_client(KubeletOptions(certificate_authority=str(tls.ca_file))) as client:
            bodies = [await client.get(kubelet.url), await client.get(kubelet.url)]
            failure = await failure_of(client, str(kubelet.url))
        return bodies, failure.message, kubelet.connection_numbers()

    bodies, message, connections = uvloop.run(scenario())
    assert bodies == [b"y" * 0x1F4, body]
    assert message == "invalid HTTP response: not HTTP/1.x: starts with b'\\x00\\x01garbage'"
    assert connections == [1, 1, 2, 2]
