"""The fleet's listeners: one HTTPS listener per simulated node, on the node's own loopback address.

The HTTP/1.1 side is a small asyncio.Protocol rather than a web framework: thousands of listeners
and a request rate of hundreds per second on one core leave no room for per-request framework
overhead. It speaks what a kubelet speaks to a metrics collector: GET (and POST) with keep-alive,
responses framed as Go's net/http frames them (Content-Length for bodies under 2 KiB, chunked
above), ALPN http/1.1 only.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import email.utils
import errno
import functools
import gzip
import ipaddress
import logging
import os
import ssl
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast
from urllib.parse import parse_qs

import orjson

from kubemetrics.simulator.addresses import check_range, node_address
from kubemetrics.simulator.faults import Fault, FaultKind
from kubemetrics.simulator.inventory import INVENTORY_FILE, inventory_document, write_atomically
from kubemetrics.simulator.model import Model
from kubemetrics.simulator.pki import ClusterPki, NodeIdentity
from kubemetrics.simulator.resource import render_resource_metrics
from kubemetrics.simulator.summary import SummaryRenderer

log = logging.getLogger(__name__)

_MAX_HEAD_BYTES = 64 * 1024
_MAX_BODY_BYTES = 1024 * 1024
# Go's net/http buffers this much of a handler's output before it decides between Content-Length
# (the handler finished) and chunked encoding (it did not).
_CHUNKING_THRESHOLD = 2048
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 500: "Internal Server Error"}
# Scrapes remembered per node for the control endpoint's /scrapes (two collectors at a 10 s resolution
# fill it in about 20 minutes).
SCRAPES_KEPT = 256
_SCRAPE_PATHS = frozenset({"/metrics/resource", "/stats/summary"})


@dataclass(frozen=True, slots=True)
class ScrapeRecord:
    """One answered scrape: when (Unix seconds), what, who asked, with what status, and the wall second
    the payload was computed for (the sample time of every object in it, with a 1 s housekeeping
    interval); sample_time is None when no payload was computed (a fault answered instead)."""

    time: float
    path: str
    user_agent: str
    status: int
    sample_time: int | None


@dataclass(slots=True)
class RenderedBody:
    """One node's body for one endpoint and wall second, and its gzip form once a client asked for it."""

    payload: bytes
    gzipped: bytes | None = None

    def gzip(self) -> bytes:
        if self.gzipped is None:
            self.gzipped = gzip.compress(self.payload, compresslevel=1)
        return self.gzipped


class RenderedBodies:
    """Bodies rendered during the current wall second, shared by every request in it.

    A body is a function of the node, the endpoint (and its form), the wall second and, in hollow mode,
    the pods the API gave the fleet: every object in it reports its own last housekeeping tick, and
    the objects' ticks are spread over the interval, so some value moves nearly every second and a body
    cannot be kept longer than its second. The cache is emptied when the second changes, which bounds
    it to the bodies of one second."""

    def __init__(self) -> None:
        self._second: int | None = None
        self._bodies: dict[tuple[int, str, int], RenderedBody] = {}
        self.hits = 0
        self.misses = 0

    def get(
        self, node_index: int, form: str, now: int, revision: int | None, render: Callable[[], bytes]
    ) -> RenderedBody:
        """The cached body, or render it; revision None (pods of an unversioned source) never caches."""
        if revision is None:
            self.misses += 1
            return RenderedBody(render())
        if now != self._second:
            self._second = now
            self._bodies.clear()
        key = (node_index, form, revision)
        body = self._bodies.get(key)
        if body is None:
            self.misses += 1
            body = RenderedBody(render())
            self._bodies[key] = body
        else:
            self.hits += 1
        return body

    def __len__(self) -> int:
        return len(self._bodies)


class FleetError(RuntimeError):
    """The fleet cannot start (an address in use, a range that does not fit); the message says which."""


@dataclass(frozen=True, slots=True)
class FleetSettings:
    out_dir: Path
    address_base: ipaddress.IPv4Address
    port: int = 10250
    # Shortest time between two inventory rewrites (churn events closer than this are batched).
    inventory_min_interval_seconds: float = 5.0
    initial_faults: dict[str, Fault] = field(default_factory=dict)
    # Node indexes [first, last] this process listens for; None: every node. Several processes, each
    # with its own range of the same fleet, hold more connections than one process's open-file limit.
    listen_range: tuple[int, int] | None = None

    def listens_for(self, index: int) -> bool:
        return self.listen_range is None or self.listen_range[0] <= index <= self.listen_range[1]


class _DateHeader:
    """The HTTP Date header, formatted once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def get(self) -> str:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._text = email.utils.formatdate(now, usegmt=True)
        return self._text


_DATE = _DateHeader()


class SimulatedKubelet:
    """One node: its listener, its fault, its renderers, its request counters."""

    def __init__(self, fleet: Fleet, index: int, name: str, address: ipaddress.IPv4Address) -> None:
        self.fleet = fleet
        self.index = index
        self.name = name
        self.address = address
        # Issued when the node first listens: a process of a shared fleet (--listen-nodes) signs only its own.
        self._ssl_context: ssl.SSLContext | None = None
        self.fault: Fault | None = None
        self.server: asyncio.Server | None = None
        self.connections: set[KubeletConnection] = set()
        self.requests: Counter[str] = Counter()
        # Bytes written per path (status line, headers, chunk framing and body, before TLS).
        self.response_bytes: Counter[str] = Counter()
        # Made when first needed: a process of a shared fleet (--listen-nodes) models tens of thousands of
        # nodes it never serves, and these take about 1.3 KB per node.
        self._scrapes: collections.deque[ScrapeRecord] | None = None
        self._summary: SummaryRenderer | None = None

    @property
    def url(self) -> str:
        return f"https://{self.address}:{self.fleet.settings.port}"

    @property
    def scrapes(self) -> collections.deque[ScrapeRecord]:
        if self._scrapes is None:
            self._scrapes = collections.deque(maxlen=SCRAPES_KEPT)
        return self._scrapes

    def scrape_records(self) -> list[ScrapeRecord]:
        return list(self._scrapes) if self._scrapes else []

    @property
    def summary(self) -> SummaryRenderer:
        if self._summary is None:
            self._summary = SummaryRenderer(self.fleet.model, self.index)
        return self._summary

    @property
    def ssl_context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            pki = self.fleet.pki
            if pki is None:
                raise FleetError(f"node {self.name}: no certificate before the fleet has started")
            certificate = pki.issue_node(NodeIdentity(self.name, self.address))
            self._ssl_context = _server_context(certificate.cert_file, certificate.key_file)
        return self._ssl_context

    async def listen(self) -> None:
        loop = asyncio.get_running_loop()
        context = self.ssl_context
        try:
            self.server = await loop.create_server(
                lambda: KubeletConnection(self),
                host=str(self.address),
                port=self.fleet.settings.port,
                ssl=context,
                ssl_handshake_timeout=10.0,
                reuse_address=True,
                backlog=128,
            )
        except OSError as err:
            hint = ""
            if err.errno == errno.EADDRINUSE:
                hint = " (another simulator or kubelet is using it: pick another --address-base or --port)"
            elif err.errno == errno.EADDRNOTAVAIL:
                hint = " (this system does not route all of 127.0.0.0/8 to loopback)"
            raise FleetError(
                f"node {self.name}: cannot listen on {self.address}:{self.fleet.settings.port}: "
                f"{err.strerror or err}{hint}"
            ) from err

    def stop_listening(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        for connection in list(self.connections):
            connection.abort()

    # ---- responses ----

    def summary_body(self, full: bool, now: int | None = None) -> bytes:
        return self.summary.render(self.fleet.now() if now is None else now, full=full)

    def resource_body(self, now: int | None = None) -> bytes:
        return render_resource_metrics(self.fleet.model.truth_for(self.index, self.fleet.now() if now is None else now))

    def cached_summary(self, now: int, *, full: bool) -> RenderedBody:
        form = "summary" if full else "summary-cpu-memory"
        render = functools.partial(self.summary_body, full, now)
        return self.fleet.bodies.get(self.index, form, now, self.fleet.pods_revision(), render)

    def cached_resource(self, now: int) -> RenderedBody:
        render = functools.partial(self.resource_body, now)
        return self.fleet.bodies.get(self.index, "resource", now, self.fleet.pods_revision(), render)

    def record_scrape(self, path: str, headers: dict[str, str], status: int, sample_time: int | None) -> None:
        if path in _SCRAPE_PATHS:
            self.scrapes.append(ScrapeRecord(time.time(), path, headers.get("user-agent", ""), status, sample_time))


class KubeletConnection(asyncio.Protocol):
    """One client connection to a simulated kubelet."""

    def __init__(self, kubelet: SimulatedKubelet) -> None:
        self._kubelet = kubelet
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        # A response is being delayed (latency fault): later requests wait in the buffer.
        self._busy = False
        self._hung = False
        # The response said Connection: close (or the request was unusable): nothing more is read.
        self._closing = False
        self._timer: asyncio.TimerHandle | None = None
        # The path of the request being answered, for the per-path byte counts ("" for unparsable ones).
        self._path = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's SSL transport implements asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        self._kubelet.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._kubelet.connections.discard(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._transport = None

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        if self._hung or self._closing:
            return
        self._buffer += data
        self._process()

    def _process(self) -> None:
        while not (self._busy or self._hung or self._closing) and self._transport is not None:
            self._path = ""
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > _MAX_HEAD_BYTES:
                    self._send(400, "text/plain; charset=utf-8", b"400 Bad Request", keep_alive=False)
                return
            head = bytes(self._buffer[:end]).decode("latin-1")
            request_line, _, header_text = head.partition("\r\n")
            parts = request_line.split(" ")
            if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
                self._send(400, "text/plain; charset=utf-8", b"400 Bad Request", keep_alive=False)
                return
            method, target, version = parts
            headers = _parse_headers(header_text)
            try:
                length = int(headers.get("content-length", "0"))
            except ValueError:
                length = -1
            if not 0 <= length <= _MAX_BODY_BYTES or "chunked" in headers.get("transfer-encoding", ""):
                self._send(400, "text/plain; charset=utf-8", b"400 Bad Request", keep_alive=False)
                return
            if len(self._buffer) < end + 4 + length:
                return
            body = bytes(self._buffer[end + 4 : end + 4 + length])
            del self._buffer[: end + 4 + length]
            connection = headers.get("connection", "").lower()
            keep_alive = "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection
            self._handle(method, target, headers, body, keep_alive)

    def _handle(self, method: str, target: str, headers: dict[str, str], body: bytes, keep_alive: bool) -> None:
        kubelet = self._kubelet
        path, _, query = target.partition("?")
        kubelet.requests[path] += 1
        self._path = path
        fault = kubelet.fault
        if fault is not None and fault.kind is not FaultKind.DOWN:
            if fault.kind is FaultKind.HANG:
                self._hung = True
                self._buffer.clear()
                return
            if fault.kind is FaultKind.LATENCY:
                self._busy = True
                loop = asyncio.get_running_loop()
                self._timer = loop.call_later(
                    fault.seconds, self._respond_late, method, path, query, headers, body, keep_alive
                )
                return
            if fault.kind is FaultKind.HTTP500:
                message = f"Internal Error: failed to get node info: simulated fault on node {kubelet.name!r}"
                kubelet.record_scrape(path, headers, 500, None)
                self._send(500, "text/plain; charset=utf-8", message.encode(), keep_alive)
                return
        self._respond(method, path, query, headers, body, keep_alive, fault)

    def _respond_late(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes, keep_alive: bool
    ) -> None:
        self._timer = None
        self._busy = False
        if self._transport is None:
            return
        self._path = path
        self._respond(method, path, query, headers, body, keep_alive, None)
        self._process()

    def _respond(
        self,
        method: str,
        path: str,
        query: str,
        headers: dict[str, str],
        body: bytes,
        keep_alive: bool,
        fault: Fault | None,
    ) -> None:
        kubelet = self._kubelet
        if path == "/stats/summary":
            if method not in ("GET", "POST"):
                self._send(405, "text/plain; charset=utf-8", b"405: Method Not Allowed", keep_alive)
                return
            form = query
            if method == "POST" and "application/x-www-form-urlencoded" in headers.get("content-type", ""):
                form = "&".join(part for part in (query, body.decode("latin-1")) if part)
            # The kubelet honours only_cpu_and_memory only as exactly one value "true".
            only = parse_qs(form, keep_blank_values=True).get("only_cpu_and_memory")
            now = kubelet.fleet.now()
            rendered = kubelet.cached_summary(now, full=only != ["true"])
            kubelet.record_scrape(path, headers, 200, now)
            self._send_payload(rendered, "application/json", keep_alive, fault, gzip_ok=False)
        elif path == "/metrics/resource" and method == "GET":
            accepts_gzip = "gzip" in headers.get("accept-encoding", "")
            now = kubelet.fleet.now()
            rendered = kubelet.cached_resource(now)
            kubelet.record_scrape(path, headers, 200, now)
            content_type = "text/plain; version=0.0.4; charset=utf-8"
            self._send_payload(rendered, content_type, keep_alive, fault, gzip_ok=accepts_gzip)
        elif path == "/healthz" and method == "GET":
            self._send(200, "text/plain; charset=utf-8", b"ok", keep_alive)
        elif path.startswith("/stats/"):
            # Under a go-restful web service root: go-restful's own 404.
            self._send(404, "text/plain; charset=utf-8", b"404: Page Not Found", keep_alive)
        else:
            # Anything else falls through to http.ServeMux's NotFound.
            self._send(404, "text/plain; charset=utf-8", b"404 page not found\n", keep_alive, nosniff=True)

    def _send_payload(
        self, rendered: RenderedBody, content_type: str, keep_alive: bool, fault: Fault | None, *, gzip_ok: bool
    ) -> None:
        kind = fault.kind if fault is not None else None
        payload = rendered.payload
        if kind is FaultKind.GARBAGE:
            self._send(200, content_type, b"\xff" + os.urandom(max(64, len(payload) // 8)), keep_alive)
        elif kind is FaultKind.TRUNCATED:
            self._send(200, content_type, payload[: len(payload) // 2], keep_alive)
        elif kind is FaultKind.DISCONNECT:
            self._send(200, content_type, payload, keep_alive=False, cut_after=len(payload) // 2)
        elif gzip_ok:
            self._send(200, content_type, rendered.gzip(), keep_alive, encoding="gzip")
        else:
            self._send(200, content_type, payload, keep_alive)

    def _send(
        self,
        status: int,
        content_type: str,
        body: bytes,
        keep_alive: bool,
        *,
        nosniff: bool = False,
        encoding: str = "",
        cut_after: int | None = None,
    ) -> None:
        transport = self._transport
        if transport is None:
            return
        lines = [f"HTTP/1.1 {status} {_REASONS.get(status, '')}"]
        if encoding:
            lines.append(f"Content-Encoding: {encoding}")
        lines.append(f"Content-Type: {content_type}")
        lines.append(f"Date: {_DATE.get()}")
        if nosniff:
            lines.append("X-Content-Type-Options: nosniff")
        if not keep_alive:
            lines.append("Connection: close")
        chunked = len(body) > _CHUNKING_THRESHOLD
        if chunked:
            lines.append("Transfer-Encoding: chunked")
        else:
            lines.append(f"Content-Length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        sent = self._kubelet.response_bytes
        if cut_after is not None:
            # Declare the whole body, send part of it, hang up: a broken response, not a short one.
            framing = f"{len(body):x}\r\n".encode() if chunked else b""
            transport.write(head + framing + body[:cut_after])
            sent[self._path] += len(head) + len(framing) + len(body[:cut_after])
            self._closing = True
            transport.close()
            return
        if chunked:
            # One chunk for the whole body, as Go's net/http writes a large single Write.
            framing = f"{len(body):x}\r\n".encode()
            transport.writelines((head, framing, body, b"\r\n0\r\n\r\n"))
            sent[self._path] += len(head) + len(framing) + len(body) + 7
        else:
            transport.writelines((head, body))
            sent[self._path] += len(head) + len(body)
        if not keep_alive:
            self._closing = True
            transport.close()


def _parse_headers(text: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in text.split("\r\n"):
        name, separator, value = line.partition(":")
        if separator:
            headers[name.strip().lower()] = value.strip()
    return headers


def _server_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    # Only HTTP/1.1: an HTTP/2-capable client (Go's) must not negotiate h2 with this server.
    context.set_alpn_protocols(["http/1.1"])
    return context


class Fleet:
    """Every simulated kubelet of the model, plus the inventory file that describes them."""

    def __init__(self, model: Model, settings: FleetSettings, clock: Callable[[], float] = time.time) -> None:
        check_range(settings.address_base, model.params.nodes)
        self.model = model
        self.settings = settings
        self.clock = clock
        self.kubelets: list[SimulatedKubelet] = []
        self._by_name: dict[str, SimulatedKubelet] = {}
        self._inventory_task: asyncio.Task[None] | None = None
        self.pki: ClusterPki | None = None
        # Pods served beside the model's (hollow mode), as inventory pod entries.
        self.extra_inventory_pods: Callable[[], list[dict[str, object]]] | None = None
        self.bodies = RenderedBodies()

    @property
    def inventory_file(self) -> Path:
        return self.settings.out_dir / INVENTORY_FILE

    @property
    def ca_file(self) -> Path:
        return self.settings.out_dir / "ca.crt"

    def now(self) -> int:
        return int(self.clock())

    def pods_revision(self) -> int | None:
        """What, besides the node, the form and the second, a body depends on: the revision of the pods
        from outside the model (0 without any); None when that source keeps no revision."""
        extra = self.model.extra_pods
        if extra is None:
            return 0
        revision = getattr(extra, "revision", None)
        return revision if isinstance(revision, int) else None

    def kubelet(self, name: str) -> SimulatedKubelet:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no simulated node named {name!r}") from None

    async def start(self) -> None:
        settings = self.settings
        settings.out_dir.mkdir(parents=True, exist_ok=True)
        self.pki = ClusterPki(settings.out_dir)
        for index in range(self.model.params.nodes):
            address = node_address(settings.address_base, index)
            kubelet = SimulatedKubelet(self, index, self.model.node_name(index), address)
            self.kubelets.append(kubelet)
            self._by_name[kubelet.name] = kubelet
        for name, fault in settings.initial_faults.items():
            self.kubelet(name).fault = fault
        try:
            for kubelet in self.kubelets:
                if not settings.listens_for(kubelet.index):
                    continue
                if kubelet.fault is None or kubelet.fault.kind is not FaultKind.DOWN:
                    await kubelet.listen()
        except FleetError:
            await self.stop()
            raise
        self.publish_inventory()
        if self.model.churning_slots():
            self._inventory_task = asyncio.get_running_loop().create_task(self._keep_inventory_current())

    async def stop(self) -> None:
        if self._inventory_task is not None:
            self._inventory_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._inventory_task
            self._inventory_task = None
        for kubelet in self.kubelets:
            kubelet.stop_listening()
        # Let aborted transports run their connection_lost callbacks.
        await asyncio.sleep(0)

    async def set_fault(self, name: str, fault: Fault | None) -> None:
        kubelet = self.kubelet(name)
        was_down = kubelet.fault is not None and kubelet.fault.kind is FaultKind.DOWN
        kubelet.fault = fault
        now_down = fault is not None and fault.kind is FaultKind.DOWN
        if now_down and not was_down:
            kubelet.stop_listening()
        elif was_down and not now_down and self.settings.listens_for(kubelet.index):
            await kubelet.listen()

    def faults(self) -> dict[str, Fault]:
        return {k.name: k.fault for k in self.kubelets if k.fault is not None}

    def request_counts(self) -> dict[str, dict[str, int]]:
        return {k.name: dict(k.requests) for k in self.kubelets if k.requests}

    def response_byte_counts(self) -> dict[str, dict[str, int]]:
        """Bytes written per node and path (HTTP framing included, before TLS)."""
        return {k.name: dict(k.response_bytes) for k in self.kubelets if k.response_bytes}

    def scrape_log(self, names: list[str] | None = None) -> dict[str, list[ScrapeRecord]]:
        """The remembered scrapes of the named nodes (default: every node scraped so far), oldest first."""
        kubelets = self.kubelets if names is None else [self.kubelet(name) for name in names]
        return {k.name: records for k in kubelets if (records := k.scrape_records())}

    def publish_inventory(self) -> int:
        """Write inventory.json for now; returns the number of pods written."""
        document = inventory_document(self.model, self.settings.address_base, self.settings.port, self.now())
        pods = document["pods"]
        assert isinstance(pods, list)
        if self.extra_inventory_pods is not None:
            pods.extend(self.extra_inventory_pods())
        write_atomically(self.inventory_file, orjson.dumps(document))
        return len(pods)

    async def _keep_inventory_current(self) -> None:
        last_write = time.monotonic()
        while True:
            upcoming = self.model.next_pod_change_after(self.now())
            if upcoming is None:
                return
            wait = max(
                upcoming - self.clock(), last_write + self.settings.inventory_min_interval_seconds - time.monotonic()
            )
            await asyncio.sleep(max(wait, 0.05))
            try:
                pods = self.publish_inventory()
            except OSError as err:
                log.error("cannot rewrite inventory file %s: %s", self.inventory_file, err)
            else:
                log.debug("inventory rewritten: %d pods", pods)
            last_write = time.monotonic()
