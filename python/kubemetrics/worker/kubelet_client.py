"""HTTPS GET of one kubelet endpoint: TLS and credentials as metrics-server's kubelet client has them
(pkg/scraper/client and cmd/metrics-server/app/options/kubelet_client.go), one shared connection pool,
a deadline covering connect and read, and a cap on the body size.

Every failure comes out as a `ScrapeFailure` whose `kind` is one of the `ScrapeOutcome.error_kind`
values of the ingest contract: timeout, connect, tls, http_status, oversized (decode failures are
classified by the caller, which runs the decoder).
"""

from __future__ import annotations

import asyncio
import http
import logging
import os
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final

import aiohttp
import aiohttp.connector
from yarl import URL

from kubemetrics import __version__
from kubemetrics.options import KubeletOptions

log = logging.getLogger(__name__)

# Where a pod finds its ServiceAccount credentials. metrics-server's kubelet client is a copy of its
# in-cluster API client configuration, so without explicit flags it verifies kubelets against the
# cluster CA and authenticates with the pod's token; we do the same so the usual manifests work as-is.
IN_CLUSTER_CA_FILE: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount/ca.crt")
IN_CLUSTER_TOKEN_FILE: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")

USER_AGENT: Final = f"kubemetrics/{__version__}"

# Projected ServiceAccount tokens are rotated by the kubelet (an atomic symlink swap); checking the
# file at most this often catches a rotation long before the old token expires (≥ 10 minutes).
TOKEN_RECHECK_SECONDS: Final = 1.0


class ScrapeFailure(Exception):
    """A kubelet request that produced no usable body. `kind` is an ingest `error_kind`."""

    def __init__(self, kind: str, message: str, response_bytes: int = 0, status: int = 0) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.response_bytes = response_bytes
        # The HTTP status for kind "http_status", else 0.
        self.status = status


def kubelet_url(host: str, port: int, path: str) -> str:
    """`https://host:port/path`; an IPv6 literal is bracketed, as Go's net.JoinHostPort does."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    if not path.startswith("/"):
        path = "/" + path
    return f"https://{host}:{port}{path}"


@dataclass(frozen=True, slots=True)
class CredentialFiles:
    """The files the kubelet client reads: the CA to verify kubelets with, and the bearer token."""

    certificate_authority: str
    bearer_token_file: str


def resolve_credential_files(
    options: KubeletOptions,
    environ: Mapping[str, str] = os.environ,
    ca_file: Path = IN_CLUSTER_CA_FILE,
    token_file: Path = IN_CLUSTER_TOKEN_FILE,
) -> CredentialFiles:
    """Explicit flags win; inside a pod (KUBERNETES_SERVICE_HOST set, as client-go's in-cluster
    config requires) the ServiceAccount CA and token fill the gaps."""
    in_cluster = bool(environ.get("KUBERNETES_SERVICE_HOST"))
    certificate_authority = options.certificate_authority
    if not certificate_authority and not options.insecure_tls and in_cluster and ca_file.is_file():
        certificate_authority = str(ca_file)
    bearer_token_file = options.bearer_token_file
    if not bearer_token_file and in_cluster and token_file.is_file():
        bearer_token_file = str(token_file)
    return CredentialFiles(certificate_authority, bearer_token_file)


def build_tls_context(options: KubeletOptions, certificate_authority: str) -> ssl.SSLContext:
    """One context per process, shared by every connection.

    --kubelet-insecure-tls: no verification at all. Otherwise the kubelet's serving certificate must
    chain to `certificate_authority` (or to the system roots when there is none) and carry the dialed
    host as a SAN — an IP SAN when the node is dialed by InternalIP, as Go's crypto/tls requires.
    """
    if options.insecure_tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        # With a CA file only that CA is trusted (like Go's rest config CAFile), not the system roots.
        context = ssl.create_default_context(cafile=certificate_authority or None)
    if options.client_certificate:
        context.load_cert_chain(options.client_certificate, options.client_key)
    return context


class BearerToken:
    """The token in --kubelet-bearer-token-file, re-read whenever the file changes."""

    def __init__(self, path: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._path = path
        self._clock = clock
        self._checked_at = float("-inf")
        self._identity: tuple[int, int, int] | None = None
        self._header: str | None = None
        self._read_failed = False

    @property
    def path(self) -> str:
        return self._path

    def authorization(self) -> str | None:
        """The `Authorization` header value, or None when no token is configured or readable."""
        now = self._clock()
        if now - self._checked_at >= TOKEN_RECHECK_SECONDS:
            self._checked_at = now
            self._refresh()
        return self._header

    def _refresh(self) -> None:
        try:
            stat = os.stat(self._path)
            identity = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
            if identity == self._identity:
                return
            token = Path(self._path).read_text().strip()
        except OSError as err:
            # Keep the last good token: a rotation in progress or a transient error should not turn
            # every request into a 401.
            if not self._read_failed:
                log.error('Cannot read kubelet bearer token file="%s" err="%s"', self._path, err)
                self._read_failed = True
            return
        if self._read_failed or self._identity is not None:
            log.info('Kubelet bearer token reloaded file="%s"', self._path)
        self._identity = identity
        self._read_failed = False
        self._header = f"Bearer {token}" if token else None


def connection_keepalive_seconds(metric_resolution_seconds: float) -> float:
    """Idle connections must outlive the gap between two scrapes of the same kubelet; aiohttp's 15 s
    default equals the usual resolution and would close them just before reuse, so every scrape
    would pay a new TLS handshake."""
    return max(30.0, 2.0 * metric_resolution_seconds)


def classify_request_error(err: BaseException, timeout_seconds: float, phase: str) -> ScrapeFailure:
    """Map an exception from connecting to or reading from a kubelet to an ingest error kind."""
    if isinstance(err, ScrapeFailure):
        return err
    if isinstance(err, TimeoutError | aiohttp.ServerTimeoutError):
        return ScrapeFailure("timeout", f"request timed out after {timeout_seconds:g}s {phase}")
    # Certificate and handshake errors first: aiohttp's TLS errors are also connector errors.
    if isinstance(err, aiohttp.ClientConnectorCertificateError):
        return ScrapeFailure("tls", f"TLS certificate verification failed: {err.certificate_error}")
    if isinstance(err, aiohttp.ClientSSLError | ssl.SSLError):
        return ScrapeFailure("tls", f"TLS handshake failed: {err}")
    if isinstance(err, aiohttp.ClientConnectorError):
        return ScrapeFailure("connect", f"cannot connect: {err.os_error}")
    if isinstance(err, aiohttp.ClientPayloadError):
        return ScrapeFailure("connect", f"connection broken while reading the body: {err}")
    if isinstance(err, aiohttp.ClientResponseError):
        # Raised by the HTTP parser, not by a status: the peer did not speak HTTP/1.x.
        return ScrapeFailure("connect", f"invalid HTTP response: {err.message}")
    if isinstance(err, aiohttp.ClientError | OSError):
        return ScrapeFailure("connect", f"connection failed: {type(err).__name__}: {err}")
    return ScrapeFailure("connect", f"request failed: {type(err).__name__}: {err}")


def status_failure(status: int, reason: str | None) -> ScrapeFailure:
    """metrics-server's wording for a non-200 answer: `request failed, status: "500 Internal Server Error"`."""
    if not reason:
        try:
            reason = http.HTTPStatus(status).phrase
        except ValueError:
            reason = ""
    text = f"{status} {reason}".rstrip()
    return ScrapeFailure("http_status", f'request failed, status: "{text}"', status=status)


class KubeletClient:
    """One aiohttp session and connection pool for every kubelet this worker scrapes."""

    def __init__(
        self,
        options: KubeletOptions,
        metric_resolution_seconds: float,
        tls_context: ssl.SSLContext,
        bearer_token: BearerToken | None,
    ) -> None:
        self._timeout = options.request_timeout_seconds
        self._max_body_bytes = options.max_body_bytes
        self._bearer_token = bearer_token
        connector = aiohttp.TCPConnector(
            ssl=tls_context,
            # The default of 100 connections would queue a worker owning thousands of nodes; each node
            # has at most one request in flight, so the node count is the natural bound.
            limit=0,
            limit_per_host=0,
            keepalive_timeout=connection_keepalive_seconds(metric_resolution_seconds),
            # Works around CPython's leak of aborted TLS transports where the interpreter still has it.
            enable_cleanup_closed=bool(getattr(aiohttp.connector, "NEEDS_CLEANUP_CLOSED", False)),
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            # The per-request deadline is enforced around the whole exchange in `get`.
            timeout=aiohttp.ClientTimeout(total=None),
            headers={"User-Agent": USER_AGENT},
            # Thousands of hosts: never keep cookies; proxies are not used for node-local traffic.
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
        )

    @property
    def max_body_bytes(self) -> int:
        return self._max_body_bytes

    async def __aenter__(self) -> KubeletClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._session.close()

    async def get(self, url: URL) -> bytes:
        """The body of a 200 answer; any other outcome raises ScrapeFailure."""
        headers: dict[str, str] = {}
        if self._bearer_token is not None:
            authorization = self._bearer_token.authorization()
            if authorization:
                headers["Authorization"] = authorization
        phase = "waiting for the response"
        try:
            async with asyncio.timeout(self._timeout):
                # Kubelets never redirect these paths; following one could hand the token elsewhere.
                async with self._session.get(url, headers=headers, allow_redirects=False) as response:
                    if response.status != 200:
                        raise status_failure(response.status, response.reason)
                    phase = "reading the body"
                    return await self._read_capped(response)
        except ScrapeFailure:
            raise
        except Exception as err:
            raise classify_request_error(err, self._timeout, phase) from err

    async def _read_capped(self, response: aiohttp.ClientResponse) -> bytes:
        limit = self._max_body_bytes
        declared = response.content_length
        # Content-Length counts compressed bytes when the kubelet gzips; the cap is on what we decode.
        if declared is not None and declared > limit and not response.headers.get("Content-Encoding"):
            response.close()
            raise ScrapeFailure("oversized", _oversized_message(limit, f"Content-Length is {declared}"))
        chunks: list[bytes] = []
        received = 0
        async for chunk in response.content.iter_any():
            received += len(chunk)
            if received > limit:
                # Drop the connection rather than drain the rest of a body we will not use.
                response.close()
                raise ScrapeFailure(
                    "oversized", _oversized_message(limit, f"more than {limit} bytes received"), received
                )
            chunks.append(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _oversized_message(limit: int, detail: str) -> str:
    return f"response body exceeds --kubelet-max-body-bytes={limit} ({detail})"
