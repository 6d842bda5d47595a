"""HTTPS GET of one kubelet endpoint: TLS and credentials as metrics-server's kubelet client has them
(pkg/scraper/client and cmd/metrics-server/app/options/kubelet_client.go), kept-alive connections, a
deadline covering connect, TLS handshake and read, and a cap on the body size.

The HTTP/1.1 client is our own, on an asyncio Protocol: a worker fetches one small body per node per
resolution, and a general-purpose client costs several times more CPU per request than the whole
exchange needs. It speaks only what kubelets answer with: Content-Length or chunked framing, gzip
content encoding, keep-alive and `Connection: close`; no redirects, no pipelining.

Every failure comes out as a `ScrapeFailure` whose `kind` is one of the `ScrapeOutcome.error_kind`
values of the ingest contract: timeout, connect, tls, http_status, oversized (decode failures are
classified by the caller, which runs the decoder). A response that is not HTTP/1.x, or breaks off,
counts as "connect": the connection did not deliver a body.
"""

from __future__ import annotations

import asyncio
import heapq
import http
import itertools
import logging
import os
import socket
import ssl
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final, cast

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
    """Idle connections must outlive the gap between two scrapes of the same kubelet: a keep-alive of
    15 s (a common client default) equals the usual resolution and would close them just before reuse,
    so every scrape would pay a new TLS handshake."""
    return max(30.0, 2.0 * metric_resolution_seconds)


def classify_request_error(err: BaseException, timeout_seconds: float, phase: str) -> ScrapeFailure:
    """Map an exception from connecting to or reading from a kubelet to an ingest error kind."""
    if isinstance(err, ScrapeFailure):
        return err
    if isinstance(err, TimeoutError):
        return _timeout_failure(timeout_seconds, phase)
    # Certificate errors first: they are also SSL errors, and SSL errors are also OS errors.
    if isinstance(err, ssl.SSLCertVerificationError):
        return ScrapeFailure("tls", f"TLS certificate verification failed: {err}")
    if isinstance(err, ssl.SSLError):
        return ScrapeFailure("tls", f"TLS handshake failed: {err}")
    if isinstance(err, OSError):
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


def _timeout_failure(timeout_seconds: float, phase: str) -> ScrapeFailure:
    return ScrapeFailure("timeout", f"request timed out after {timeout_seconds:g}s {phase}")


def _oversized_message(limit: int, detail: str) -> str:
    return f"response body exceeds --kubelet-max-body-bytes={limit} ({detail})"


def _invalid_response(detail: str) -> ScrapeFailure:
    return ScrapeFailure("connect", f"invalid HTTP response: {detail}")


def _broken_body(detail: str) -> ScrapeFailure:
    return ScrapeFailure("connect", f"connection broken while reading the body: {detail}")


# Bounds on what a kubelet may send besides the body: Go's net/http allows 1 MiB of response headers;
# kubelets send a few hundred bytes, so anything near these limits is not a kubelet.
MAX_HEAD_BYTES: Final = 64 * 1024
MAX_CHUNK_LINE_BYTES: Final = 4096
MAX_TRAILER_BYTES: Final = 64 * 1024
# Forgotten URLs (nodes that left) are dropped from the request cache wholesale past this size.
ROUTE_CACHE_LIMIT: Final = 1 << 17
# On close, how long kept-alive connections get to exchange TLS close_notify before being cut.
CLOSE_GRACE_SECONDS: Final = 1.0
# Requests past their deadline are failed by one timer that fires at most this often, rather than by
# a timer per request (asyncio.timeout costs about as much CPU as parsing the whole response).
DEADLINE_CHECK_SECONDS: Final = 0.025
# zlib's wbits for a gzip stream (header and trailer checked), the only encoding we ask for.
_GZIP_WBITS: Final = 31
_HEX_DIGITS: Final = b"0123456789abcdefABCDEF"

# Where a connection's response parser is.
_IDLE: Final = 0  # no request in flight
_HEAD: Final = 1  # status line and header fields
_FIXED: Final = 2  # a body of Content-Length bytes
_CHUNK_SIZE: Final = 3  # a chunk-size line, with optional extensions
_CHUNK_DATA: Final = 4
_CHUNK_END: Final = 5  # the CRLF after a chunk's data
_TRAILERS: Final = 6  # trailer fields after the last chunk, up to an empty line
_UNTIL_CLOSE: Final = 7  # no framing: the body ends when the kubelet closes the connection
_CLOSED: Final = 8


class _ClosedWhileIdle(Exception):
    """A kept-alive connection turned out closed before any byte of the response: the kubelet closed
    it while it sat idle, so the request never reached it and is safe to send again."""


@dataclass(frozen=True, slots=True)
class _Route:
    """What a URL resolves to, computed once per URL."""

    key: tuple[str, int]  # (host, port): connections are pooled per kubelet address
    host: str
    port: int
    # Request line and header fields, without Authorization and without the blank line ending them.
    head: bytes
    # The whole request when no bearer token is configured.
    request: bytes


def _route_of(url: URL) -> _Route:
    host, port, path = url.raw_host, url.port, url.raw_path_qs
    if url.scheme != "https" or not host or port is None:
        raise ScrapeFailure("connect", f"not an https URL with a host: {url}")
    if not path.isascii() or not path.isprintable() or " " in path:
        raise ScrapeFailure("connect", f"request path is not printable ASCII: {path!r}")
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    # The header fields Go's transport sends for client-go's request: kubelets answer /metrics/resource
    # gzip-compressed when asked, as they do for metrics-server.
    head = (
        f"GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: {USER_AGENT}\r\n"
        "Accept: */*\r\nAccept-Encoding: gzip\r\n"
    )
    return _Route((host, port), host, port, head.encode("ascii"), f"{head}\r\n".encode("ascii"))


class _KubeletConnection(asyncio.Protocol):
    """One TLS connection to a kubelet and the parser of the response to its request in flight.

    The parser is driven by `data_received` and completes `send`'s future with the whole body, or
    fails it with a `ScrapeFailure` and cuts the connection. Only a connection whose last response
    ended cleanly, and that the kubelet did not ask to close, goes back to the idle pool.
    """

    __slots__ = (
        "_closed_waiter",
        "_declared",
        "_got_bytes",
        "_inflater",
        "_loop",
        "_lost",
        "_parts",
        "_pending",
        "_received",
        "_remaining",
        "_state",
        "_transport",
        "_waiter",
        "head_done",
        "idle_since",
        "keep_alive",
        "key",
        "limit",
        "owner",
        "reused",
    )

    def __init__(self, owner: KubeletClient, key: tuple[str, int], limit: int) -> None:
        self.owner = owner
        self.key = key
        self.limit = limit
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._state = _IDLE
        self._waiter: asyncio.Future[bytes] | None = None
        self._closed_waiter: asyncio.Future[None] | None = None
        self._lost = False
        # True once a response has completed on this connection: it is then a kept-alive one.
        self.reused = False
        self.idle_since = 0.0
        self.keep_alive = True
        # The request in flight: was any response byte received, was the head parsed (the phase a
        # timeout is reported in), the unparsed tail of what arrived, and the body so far.
        self._got_bytes = False
        self.head_done = False
        self._pending = b""
        self._parts: list[bytes] = []
        self._received = 0
        self._remaining = 0
        self._declared = -1
        self._inflater: zlib._Decompress | None = None

    # --- used by KubeletClient ----------------------------------------------------------------

    @property
    def usable(self) -> bool:
        transport = self._transport
        return self._state == _IDLE and transport is not None and not transport.is_closing()

    def send(self, request: bytes) -> asyncio.Future[bytes]:
        """Write the request; the future gets the body of a 200 answer or a failure."""
        transport = self._transport
        if self._state != _IDLE or transport is None or transport.is_closing():
            if self.reused:
                raise _ClosedWhileIdle()
            raise ScrapeFailure("connect", "connection closed by the kubelet before the request was sent")
        waiter: asyncio.Future[bytes] = self._loop.create_future()
        self._waiter = waiter
        self._state = _HEAD
        self._got_bytes = False
        self.head_done = False
        self._pending = b""
        self._parts = []
        self._received = 0
        self._inflater = None
        transport.write(request)
        return waiter

    def close(self) -> None:
        """Close gracefully (TLS close_notify); for a connection with nothing in flight."""
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        """Cut the connection at once: it failed, or holds a response nobody will read."""
        self._state = _CLOSED
        if self._transport is not None:
            self._transport.abort()

    def wait_closed(self) -> asyncio.Future[None]:
        if self._closed_waiter is None:
            self._closed_waiter = self._loop.create_future()
            if self._lost:
                self._closed_waiter.set_result(None)
        return self._closed_waiter

    def time_out(self, waiter: asyncio.Future[bytes], timeout_seconds: float) -> None:
        """The deadline of the request that `waiter` belongs to has passed: fail it if still in flight."""
        if self._waiter is waiter:
            phase = "reading the body" if self.head_done else "waiting for the response"
            self._fail(_timeout_failure(timeout_seconds, phase))

    # --- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        state = self._state
        try:
            if state == _FIXED:
                self._feed_fixed(data, 0)
            elif state == _HEAD:
                self._feed_head(data)
            elif _CHUNK_SIZE <= state <= _TRAILERS:
                self._feed_chunked(data, 0)
            elif state == _UNTIL_CLOSE:
                self._add_body(data)
            else:
                # Bytes while no request is in flight: not an HTTP/1.1 server we can trust with the next one.
                self.abort()
        except ScrapeFailure as failure:
            self._fail(failure)

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost says what it means for the request

    def connection_lost(self, exc: Exception | None) -> None:
        state = self._state
        self._state = _CLOSED
        self._transport = None
        self._lost = True
        self.owner.connection_gone(self)
        if self._closed_waiter is not None and not self._closed_waiter.done():
            self._closed_waiter.set_result(None)
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        cause = f" ({exc})" if exc is not None else ""
        if state == _UNTIL_CLOSE and exc is None:
            try:
                self._finish()
            except ScrapeFailure as broken:
                self._fail(broken)
            self._state = _CLOSED
            return
        failure: Exception
        if state == _HEAD and not self._got_bytes:
            if self.reused:
                failure = _ClosedWhileIdle()
            else:
                failure = ScrapeFailure("connect", f"connection closed by the kubelet before it answered{cause}")
        elif state == _HEAD:
            failure = ScrapeFailure("connect", f"connection broken while reading the response head{cause}")
        elif state == _FIXED:
            failure = _broken_body(
                f"connection closed after {self._declared - self._remaining} of {self._declared} bytes{cause}"
            )
        elif state == _UNTIL_CLOSE:
            failure = _broken_body(f"connection failed{cause}")
        else:
            failure = _broken_body(f"connection closed inside the chunked body{cause}")
        self._waiter = None
        waiter.set_exception(failure)

    # --- the response parser ------------------------------------------------------------------

    def _feed_head(self, data: bytes) -> None:
        self._got_bytes = True
        buffer = self._pending + data if self._pending else data
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                prefix = buffer[:7]
                if prefix != b"HTTP/1."[: len(prefix)]:
                    raise _invalid_response(f"not HTTP/1.x: starts with {buffer[:40]!r}")
                if len(buffer) > MAX_HEAD_BYTES:
                    raise _invalid_response(f"response head exceeds {MAX_HEAD_BYTES} bytes")
                self._pending = buffer
                return
            offset = end + 4
            head = buffer[:end]
            status = self._parse_head(head)
            if 100 <= status < 200:
                # An interim response (100 Continue, 103 Early Hints): the real one follows.
                buffer = buffer[offset:]
                continue
            break
        self._pending = b""
        self.head_done = True
        if status != 200:
            # Like Go's transport when metrics-server returns without reading the body: the
            # connection is not reused, so nothing of this response is read.
            raise status_failure(status, _reason_phrase(head))
        if self._state == _FIXED:
            declared = self._declared
            if declared > self.limit and self._inflater is None:
                raise ScrapeFailure("oversized", _oversized_message(self.limit, f"Content-Length is {declared}"))
            if declared == 0:
                if offset < len(buffer):
                    self.keep_alive = False
                self._finish()
            else:
                self._feed_fixed(buffer, offset)
        elif self._state == _CHUNK_SIZE:
            self._feed_chunked(buffer, offset)
        elif offset < len(buffer):
            self._add_body(buffer[offset:])

    def _parse_head(self, head: bytes) -> int:
        """The status; sets the body framing, its encoding and whether to keep the connection."""
        # "HTTP/1.1 200 OK": version, a space, three digits, then a space and a reason phrase, or the
        # end of the line.
        code = head[9:12]
        if (
            head[:7] != b"HTTP/1."
            or head[8:9] != b" "
            or not code.isdigit()
            or len(code) != 3
            or head[12:13] not in (b" ", b"\r", b"")
        ):
            line_end = head.find(b"\r\n")
            raise _invalid_response(f"malformed status line {head[: line_end if line_end >= 0 else 80][:80]!r}")
        status = int(code)
        http_11 = head[7:8] != b"0"
        # Four fields matter. Searching the lowered head for each is a few C-speed scans, where
        # splitting and walking every line costs a Python loop per response.
        fields = head.lower()
        at = fields.find(b"\r\ncontent-length:")
        length = None if at < 0 else _field(fields, b"\r\ncontent-length:", at)
        at = fields.find(b"\r\ntransfer-encoding:")
        transfer = None if at < 0 else _field(fields, b"\r\ntransfer-encoding:", at)
        at = fields.find(b"\r\ncontent-encoding:")
        encoding = None if at < 0 else _field(fields, b"\r\ncontent-encoding:", at)
        at = fields.find(b"\r\nconnection:")
        connection = None if at < 0 else _field(fields, b"\r\nconnection:", at)
        declared = -1
        if length is not None:
            # Repeated identical values are tolerated, as Go's transport tolerates them.
            values = set(length.split(b",")) if b"," in length else {length}
            value = values.pop().strip(b" \t")
            if values or not value.isdigit() or len(value) > 18:
                raise _invalid_response(f"bad Content-Length {length[:40]!r}")
            declared = int(value)
        if transfer is not None and transfer != b"chunked":
            raise _invalid_response(f"unsupported Transfer-Encoding {transfer[:40]!r}")
        if connection is not None:
            tokens = {token.strip(b" \t") for token in connection.split(b",")}
            self.keep_alive = b"close" not in tokens if http_11 else b"keep-alive" in tokens
        else:
            self.keep_alive = http_11
        if 100 <= status < 200:
            if status == 101:
                raise _invalid_response("101 Switching Protocols to a GET")
            return status
        if status != 200:
            return status
        if encoding == b"gzip":
            self._inflater = zlib.decompressobj(_GZIP_WBITS)
        elif encoding and encoding != b"identity":
            raise _invalid_response(f"unsupported Content-Encoding {encoding[:40]!r} (only gzip is accepted)")
        if transfer is not None:
            # Transfer-Encoding overrides Content-Length; a response with both is suspect, so its
            # connection is not reused.
            if declared >= 0:
                self.keep_alive = False
            self._state = _CHUNK_SIZE
        elif declared >= 0:
            self._state = _FIXED
            self._declared = declared
            self._remaining = declared
        else:
            self._state = _UNTIL_CLOSE
            self.keep_alive = False
        return status

    def _feed_fixed(self, data: bytes, offset: int) -> None:
        remaining = self._remaining
        end = offset + remaining
        size = len(data)
        if end > size:
            self._add_body(data if offset == 0 else data[offset:])
            self._remaining = remaining - (size - offset)
            return
        self._remaining = 0
        self._add_body(data if offset == 0 and end == size else data[offset:end])
        if end < size:
            # Bytes past the response: the next answer on this connection could not be trusted.
            self.keep_alive = False
        self._finish()

    def _feed_chunked(self, data: bytes, offset: int) -> None:
        if self._pending:
            # Only a framing line split across reads is ever pending, so this copy is small.
            data = self._pending + data[offset:]
            offset = 0
            self._pending = b""
        size = len(data)
        position = offset
        while position < size:
            state = self._state
            if state == _CHUNK_DATA:
                end = position + self._remaining
                if end >= size:
                    self._add_body(data if position == 0 else data[position:])
                    self._remaining = end - size
                    if end == size:
                        self._state = _CHUNK_END
                    return
                self._add_body(data[position:end])
                self._remaining = 0
                self._state = _CHUNK_END
                position = end
            elif state == _CHUNK_SIZE:
                line_end = data.find(b"\r\n", position)
                if line_end < 0:
                    if size - position > MAX_CHUNK_LINE_BYTES:
                        raise _broken_body(f"chunk-size line exceeds {MAX_CHUNK_LINE_BYTES} bytes")
                    self._pending = data[position:]
                    return
                chunk_size = _chunk_size(data[position:line_end])
                position = line_end + 2
                if chunk_size:
                    self._remaining = chunk_size
                    self._state = _CHUNK_DATA
                else:
                    self._state = _TRAILERS
            elif state == _CHUNK_END:
                if size - position < 2:
                    if data[position:] != b"\r":
                        raise _broken_body("chunk data not followed by CRLF")
                    self._pending = data[position:]
                    return
                if data[position : position + 2] != b"\r\n":
                    raise _broken_body("chunk data not followed by CRLF")
                position += 2
                self._state = _CHUNK_SIZE
            else:  # _TRAILERS: skipped, as Go's client makes them available only to whoever asks
                if data.startswith(b"\r\n", position):
                    position += 2
                else:
                    trailers_end = data.find(b"\r\n\r\n", position)
                    if trailers_end < 0:
                        if size - position > MAX_TRAILER_BYTES:
                            raise _broken_body(f"trailer fields exceed {MAX_TRAILER_BYTES} bytes")
                        self._pending = data[position:]
                        return
                    position = trailers_end + 4
                if position < size:
                    self.keep_alive = False
                self._finish()
                return

    def _add_body(self, piece: bytes) -> None:
        inflater = self._inflater
        if inflater is not None:
            piece = self._inflate(inflater, piece)
        received = self._received + len(piece)
        if received > self.limit:
            # The connection is cut by _fail rather than drained of a body we will not use.
            raise ScrapeFailure(
                "oversized", _oversized_message(self.limit, f"more than {self.limit} bytes received"), received
            )
        self._received = received
        if piece:
            self._parts.append(piece)

    def _inflate(self, inflater: zlib._Decompress, piece: bytes) -> bytes:
        # Never decode more than one byte past the cap: a small compressed body can inflate enormously.
        room = self.limit - self._received + 1
        try:
            decoded = inflater.decompress(piece, room)
            while inflater.eof and inflater.unused_data and len(decoded) < room:
                # Another gzip member follows (Go's gzip reader reads concatenated members too).
                rest = inflater.unused_data
                inflater = self._inflater = zlib.decompressobj(_GZIP_WBITS)
                decoded += inflater.decompress(rest, room - len(decoded))
        except zlib.error as err:
            raise ScrapeFailure("connect", f"invalid gzip body: {err}") from err
        return decoded

    def _finish(self) -> None:
        inflater = self._inflater
        if inflater is not None and not inflater.eof:
            raise ScrapeFailure("connect", "invalid gzip body: the stream ends early")
        parts = self._parts
        body = parts[0] if len(parts) == 1 else b"".join(parts)
        self._parts = []
        self._inflater = None
        self._state = _IDLE
        self.reused = True
        waiter = self._waiter
        self._waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_result(body)

    def _fail(self, failure: ScrapeFailure) -> None:
        waiter = self._waiter
        self._waiter = None
        self.abort()
        if waiter is not None and not waiter.done():
            waiter.set_exception(failure)


def _reason_phrase(head: bytes) -> str:
    line_end = head.find(b"\r\n")
    return head[13 : line_end if line_end >= 0 else len(head)].decode("latin-1")


def _field(lowered_head: bytes, prefix: bytes, start: int) -> bytes:
    """The trimmed value of the header field that `prefix` (CRLF, lowercase name, colon) starts at
    `start`; the values of repeated lines joined with commas, as HTTP defines."""
    start += len(prefix)
    end = lowered_head.find(b"\r\n", start)
    if end < 0:
        end = len(lowered_head)
    value = lowered_head[start:end].strip(b" \t")
    start = lowered_head.find(prefix, end)
    if start < 0:
        return value
    values = [value]
    while start >= 0:
        start += len(prefix)
        end = lowered_head.find(b"\r\n", start)
        if end < 0:
            end = len(lowered_head)
        values.append(lowered_head[start:end].strip(b" \t"))
        start = lowered_head.find(prefix, end)
    return b",".join(values)


def _chunk_size(line: bytes) -> int:
    """The size in a chunk-size line; chunk extensions (`;name=value`) are ignored."""
    text = line.partition(b";")[0].strip(b" \t")
    if not text or len(text) > 15 or text.strip(_HEX_DIGITS):
        raise _broken_body(f"bad chunk-size line {line[:40]!r}")
    return int(text, 16)


class KubeletClient:
    """One pool of kept-alive TLS connections for every kubelet this worker scrapes: at most one idle
    connection per kubelet address, kept for `connection_keepalive_seconds`."""

    def __init__(
        self,
        options: KubeletOptions,
        metric_resolution_seconds: float,
        tls_context: ssl.SSLContext,
        bearer_token: BearerToken | None,
    ) -> None:
        self._timeout = options.request_timeout_seconds
        self._max_body_bytes = options.max_body_bytes
        self._tls_context = tls_context
        self._bearer_token = bearer_token
        self._keepalive_seconds = connection_keepalive_seconds(metric_resolution_seconds)
        self._routes: dict[URL, _Route] = {}
        self._idle: dict[tuple[str, int], _KubeletConnection] = {}
        self._connections: set[_KubeletConnection] = set()
        self._next_idle_sweep = 0.0
        # Requests in flight on a connection, by deadline: (deadline, tie-breaker, connection, its waiter).
        # Finished requests are left in and skipped when their deadline comes.
        self._deadlines: list[tuple[float, int, _KubeletConnection, asyncio.Future[bytes]]] = []
        self._tie_breaker = itertools.count()
        self._deadline_timer: asyncio.TimerHandle | None = None
        self._authorization = ""
        self._authorization_line = b""
        self._closed = False

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
        """Close every connection: gracefully where the kubelet answers close_notify in time, else cut."""
        self._closed = True
        self._idle.clear()
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
            self._deadline_timer = None
        self._deadlines.clear()
        connections = list(self._connections)
        if not connections:
            return
        for connection in connections:
            connection.close()
        await asyncio.wait([connection.wait_closed() for connection in connections], timeout=CLOSE_GRACE_SECONDS)
        for connection in connections:
            connection.abort()
        # Let the transports report connection_lost before the loop may end.
        await asyncio.sleep(0)

    async def get(self, url: URL) -> bytes:
        """The body of a 200 answer; any other outcome raises ScrapeFailure.

        One deadline covers connecting, the TLS handshake and the whole response.
        """
        if self._closed:
            raise ScrapeFailure("connect", "the kubelet client is closed")
        route = self._routes.get(url)
        if route is None:
            route = self._add_route(url)
        token = self._bearer_token
        request = route.request if token is None else self._authorized_request(route, token)
        loop = asyncio.get_running_loop()
        now = loop.time()
        deadline = now + self._timeout
        if now >= self._next_idle_sweep:
            self._close_expired_idle(now)
        connection = self._take_idle(route.key, now)
        try:
            if connection is not None:
                try:
                    body = await self._send(loop, connection, request, deadline)
                    self._put_idle(loop, connection)
                    return body
                except _ClosedWhileIdle:
                    # The kubelet closed the kept-alive connection before our request reached it:
                    # one more try on a new connection, as Go's transport does.
                    pass
            connection = await self._connect(loop, route, deadline)
            body = await self._send(loop, connection, request, deadline)
        except BaseException as err:
            if connection is not None:
                connection.abort()
            if isinstance(err, ScrapeFailure):
                raise
            # A TimeoutError can only come from connecting: later, the deadline fails the request itself.
            if isinstance(err, Exception):
                raise classify_request_error(err, self._timeout, "waiting for the response") from err
            raise
        self._put_idle(loop, connection)
        return body

    def _add_route(self, url: URL) -> _Route:
        route = _route_of(url)
        if len(self._routes) >= ROUTE_CACHE_LIMIT:
            self._routes.clear()
        self._routes[url] = route
        return route

    def _authorized_request(self, route: _Route, token: BearerToken) -> bytes:
        authorization = token.authorization()
        if not authorization:
            return route.request
        if authorization != self._authorization:
            if "\r" in authorization or "\n" in authorization or not authorization.isascii():
                raise ScrapeFailure("connect", f"bearer token in {token.path} is not one line of ASCII text")
            self._authorization_line = f"Authorization: {authorization}\r\n\r\n".encode("ascii")
            self._authorization = authorization
        return route.head + self._authorization_line

    async def _connect(self, loop: asyncio.AbstractEventLoop, route: _Route, deadline: float) -> _KubeletConnection:
        try:
            # New connections are rare (kept alive for several scrapes): the cost of asyncio's timeout
            # matters only per request, which the deadline heap covers.
            async with asyncio.timeout_at(deadline):
                transport, connection = await loop.create_connection(
                    lambda: _KubeletConnection(self, route.key, self._max_body_bytes),
                    route.host,
                    route.port,
                    ssl=self._tls_context,
                    server_hostname=route.host,
                )
        except (ssl.SSLError, TimeoutError):
            raise  # classified as tls, or timeout
        except OSError as err:
            raise ScrapeFailure("connect", f"cannot connect: {err}") from err
        self._connections.add(connection)
        if self._closed:
            connection.abort()
            raise ScrapeFailure("connect", "the kubelet client is closed")
        tcp = transport.get_extra_info("socket")
        if tcp is not None:
            # The request is one small write; never hold it back waiting for an ACK.
            try:
                tcp.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        return connection

    def _send(
        self, loop: asyncio.AbstractEventLoop, connection: _KubeletConnection, request: bytes, deadline: float
    ) -> asyncio.Future[bytes]:
        waiter = connection.send(request)
        deadlines = self._deadlines
        heapq.heappush(deadlines, (deadline, next(self._tie_breaker), connection, waiter))
        timer = self._deadline_timer
        if timer is None:
            self._deadline_timer = loop.call_at(deadline, self._expire_requests, loop)
        elif deadline < timer.when():
            # Only a retry's deadline can precede those of requests started after it.
            timer.cancel()
            self._deadline_timer = loop.call_at(deadline, self._expire_requests, loop)
        return waiter

    def _expire_requests(self, loop: asyncio.AbstractEventLoop) -> None:
        self._deadline_timer = None
        now = loop.time()
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            _, _, connection, waiter = heapq.heappop(deadlines)
            if not waiter.done():
                connection.time_out(waiter, self._timeout)
        if deadlines:
            at = max(deadlines[0][0], now + DEADLINE_CHECK_SECONDS)
            self._deadline_timer = loop.call_at(at, self._expire_requests, loop)

    def _take_idle(self, key: tuple[str, int], now: float) -> _KubeletConnection | None:
        connection = self._idle.pop(key, None)
        if connection is None:
            return None
        if connection.usable and now - connection.idle_since < self._keepalive_seconds:
            return connection
        connection.close()
        return None

    def _put_idle(self, loop: asyncio.AbstractEventLoop, connection: _KubeletConnection) -> None:
        if not connection.keep_alive or self._closed:
            connection.close()
            return
        connection.idle_since = loop.time()
        # Concurrent requests to one kubelet opened more connections; only the latest one is kept.
        previous = self._idle.get(connection.key)
        self._idle[connection.key] = connection
        if previous is not None and previous is not connection:
            previous.close()

    def _close_expired_idle(self, now: float) -> None:
        self._next_idle_sweep = now + self._keepalive_seconds / 4
        expired = [c for c in self._idle.values() if now - c.idle_since >= self._keepalive_seconds]
        for connection in expired:
            del self._idle[connection.key]
            connection.close()

    def connection_gone(self, connection: _KubeletConnection) -> None:
        """A connection is gone (closed by either side): drop it from the pool."""
        self._connections.discard(connection)
        if self._idle.get(connection.key) is connection:
            del self._idle[connection.key]
