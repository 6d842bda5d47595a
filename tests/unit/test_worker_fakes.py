"""Fakes for the worker's tests (no tests here): kubelets that serve a real summary fixture over TLS on
loopback addresses, with switchable faults, and a front implementing the Ingest gRPC service on a unix
socket."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import os
import ssl
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import trustme
from aiohttp import web
from kubemetrics import _native
from kubemetrics.options import KubeletOptions, WorkerOptions
from kubemetrics.v1 import ingest_pb2, ingest_pb2_grpc

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DIR = Path(os.environ.get("KUBEMETRICS_SHARED_DIR", REPO_ROOT.parent / "shared")).resolve()
SUMMARY_FIXTURE = SHARED_DIR / "fixtures" / "kubelet" / "summary" / "minikube-v1.28-nri-datagen.json"
SUMMARY_PATH = "/stats/summary?only_cpu_and_memory=true"

# What a fake kubelet answers with.
OK = "ok"
STATUS_500 = "status_500"
GARBAGE = "garbage"  # 200 with bytes that are not JSON
TRUNCATED_JSON = "truncated_json"  # 200 with a complete HTTP body holding half of the fixture
CUT = "cut"  # Content-Length of the whole fixture, connection closed after half of it
OVERSIZED = "oversized"  # the fixture padded past the worker's --kubelet-max-body-bytes
SLOW = "slow"  # headers never come
GZIP = "gzip"  # the fixture, gzip-compressed
CHUNKED = "chunked"  # the fixture in chunked transfer encoding, so without a Content-Length


def fixture_body() -> bytes:
    return SUMMARY_FIXTURE.read_bytes()


def decode_summary(body: bytes, node: str, scrape_time_unix_nanos: int, max_body_bytes: int) -> bytes:
    return _native.decode_summary(body, node, scrape_time_unix_nanos, max_body_bytes)


def describe(sample: bytes) -> dict[str, Any]:
    return _native.describe_sample(sample)


@dataclass
class KubeletRequest:
    at: float  # time.monotonic()
    path_qs: str
    headers: dict[str, str]
    peer: tuple[str, int]  # the client's address and port: one port per TCP connection
    client_cert: dict[str, Any] | None  # the client certificate, when the server asked for one


@dataclass
class TLSMaterial:
    """A CA, its PEM file (for --kubelet-certificate-authority), and one serving certificate valid for
    every loopback address the tests use."""

    ca: trustme.CA
    ca_file: Path
    server_context: ssl.SSLContext

    @classmethod
    def create(cls, directory: Path, *hosts: str, name: str = "ca") -> TLSMaterial:
        ca = trustme.CA()
        ca_file = directory / f"{name}.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(*hosts).configure_cert(context)
        return cls(ca, ca_file, context)


class FakeKubelet:
    """An HTTPS server on `host` answering every GET according to `mode`, recording each request."""

    def __init__(self, host: str, tls: TLSMaterial, mode: str = OK, body: bytes | None = None) -> None:
        self.host = host
        self.mode = mode
        self.body = body if body is not None else fixture_body()
        self.requests: list[KubeletRequest] = []
        self._tls = tls
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}{SUMMARY_PATH}"

    def target(self, node: str) -> ingest_pb2.ScrapeTarget:
        return ingest_pb2.ScrapeTarget(node=node, host=self.host, port=self.port, path=SUMMARY_PATH)

    def request_times(self) -> list[float]:
        return [request.at for request in self.requests]

    async def start(self) -> FakeKubelet:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0, ssl_context=self._tls.server_context)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        peer = tuple(request.transport.get_extra_info("peername"))
        client_cert = request.transport.get_extra_info("peercert")
        self.requests.append(
            KubeletRequest(time.monotonic(), request.path_qs, dict(request.headers), peer, client_cert)
        )
        if self.mode == OK:
            return web.Response(body=self.body, content_type="application/json")
        if self.mode == GZIP:
            compressed = gzip.compress(self.body)
            return web.Response(body=compressed, content_type="application/json", headers={"Content-Encoding": "gzip"})
        if self.mode == CHUNKED:
            response = web.StreamResponse()
            response.enable_chunked_encoding()
            await response.prepare(request)
            for start in range(0, len(self.body), 8192):
                await response.write(self.body[start : start + 8192])
            await response.write_eof()
            return response
        if self.mode == STATUS_500:
            return web.Response(status=500, text="internal error")
        if self.mode == GARBAGE:
            return web.Response(body=b"\x00\x01 this is not a kubelet summary", content_type="application/json")
        if self.mode == TRUNCATED_JSON:
            return web.Response(body=self.body[: len(self.body) // 2], content_type="application/json")
        if self.mode == OVERSIZED:
            return web.Response(body=self.body + b" " * (len(self.body) + 1), content_type="application/json")
        if self.mode == CUT:
            response = web.StreamResponse(headers={"Content-Length": str(len(self.body))})
            await response.prepare(request)
            await response.write(self.body[: len(self.body) // 2])
            request.transport.close()
            return response
        if self.mode == SLOW:
            await asyncio.sleep(3600)
        raise AssertionError(f"unknown mode {self.mode}")


class SilentServer:
    """Accepts TCP connections and never answers: the TLS handshake itself hangs."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.port = 0
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._hold = asyncio.Event()

    def target(self, node: str) -> ingest_pb2.ScrapeTarget:
        return ingest_pb2.ScrapeTarget(node=node, host=self.host, port=self.port, path=SUMMARY_PATH)

    async def start(self) -> SilentServer:
        self._server = await asyncio.start_server(self._accept, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        with contextlib.suppress(asyncio.CancelledError):
            await self._hold.wait()
        writer.close()

    async def stop(self) -> None:
        self._hold.set()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@dataclass
class ReceivedBatch:
    at: float  # time.monotonic()
    batch: ingest_pb2.SampleBatch


@dataclass
class FakeFront(ingest_pb2_grpc.IngestServicer):
    """The front's Ingest service as far as a worker can tell: it sends the assignment it is told to,
    and records every batch."""

    hellos: list[ingest_pb2.WorkerHello] = field(default_factory=list)
    received: list[ReceivedBatch] = field(default_factory=list)
    push_streams_ended: int = 0
    _assignment: ingest_pb2.Assignment | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _batch_arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def assign(self, *targets: ingest_pb2.ScrapeTarget) -> None:
        generation = self._assignment.generation + 1 if self._assignment is not None else 1
        self._assignment = ingest_pb2.Assignment(generation=generation, targets=list(targets))
        self._changed.set()

    async def Attach(
        self, request: ingest_pb2.WorkerHello, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[ingest_pb2.Assignment]:
        self.hellos.append(request)
        sent = 0
        while True:
            if self._assignment is not None and self._assignment.generation != sent:
                sent = self._assignment.generation
                yield self._assignment
            self._changed.clear()
            await self._changed.wait()

    async def Push(
        self, request_iterator: AsyncIterator[ingest_pb2.SampleBatch], context: grpc.aio.ServicerContext[Any, Any]
    ) -> ingest_pb2.PushSummary:
        batches = samples = 0
        async for batch in request_iterator:
            self.received.append(ReceivedBatch(time.monotonic(), batch))
            batches += 1
            samples += len(batch.node_samples)
            self._batch_arrived.set()
        self.push_streams_ended += 1
        return ingest_pb2.PushSummary(batches=batches, samples=samples)

    def outcomes(self, node: str) -> list[ingest_pb2.ScrapeOutcome]:
        return [outcome for item in self.received for outcome in item.batch.outcomes if outcome.node == node]

    def samples(self) -> list[bytes]:
        return [sample for item in self.received for sample in item.batch.node_samples]

    def samples_of(self, node: str) -> list[dict[str, Any]]:
        return [d for d in (describe(sample) for sample in self.samples()) if d["node"] == node]

    async def wait_for(self, predicate: Any, seconds: float, what: str) -> None:
        deadline = time.monotonic() + seconds
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out after {seconds:g}s waiting for {what}")
            self._batch_arrived.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, 0.05)):
                    await self._batch_arrived.wait()


class FrontServer:
    """A grpc.aio server running a FakeFront on a unix socket."""

    def __init__(self, directory: Path, front: FakeFront | None = None) -> None:
        # sun_path holds 107 bytes; deep pytest tmp paths may not fit.
        socket_dir = directory if len(str(directory)) < 80 else Path(tempfile.mkdtemp(prefix="kmw-"))
        self.socket_path = socket_dir / "ingest.sock"
        self.address = f"unix://{self.socket_path}"
        self.front = front if front is not None else FakeFront()
        self._server = grpc.aio.server()
        ingest_pb2_grpc.add_IngestServicer_to_server(self.front, self._server)

    async def start(self) -> FrontServer:
        self._server.add_insecure_port(self.address)
        await self._server.start()
        return self

    async def stop(self) -> None:
        await self._server.stop(grace=None)


def worker_options(
    front_address: str,
    tls: TLSMaterial | None,
    *,
    resolution: float = 1.0,
    request_timeout: float = 0.5,
    max_body_bytes: int = 1 << 20,
    bearer_token_file: str = "",
    worker_id: str = "w0",
) -> WorkerOptions:
    return WorkerOptions(
        front_address=front_address,
        worker_id=worker_id,
        metric_resolution_seconds=resolution,
        kubelet=KubeletOptions(
            certificate_authority=str(tls.ca_file) if tls is not None else "",
            insecure_tls=tls is None,
            bearer_token_file=bearer_token_file,
            request_timeout_seconds=request_timeout,
            max_body_bytes=max_body_bytes,
        ),
    )
