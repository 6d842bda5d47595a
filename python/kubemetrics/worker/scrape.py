"""One scrape of one node: GET the kubelet, decode the body in Rust, and say what happened.

A failure costs that node's sample and nothing else: every exception is turned into a failed
`ScrapeResult`, logged once per node and cause (a node that keeps failing the same way is not logged
again, so 65k dead kubelets do not flood the log), and a recovery line is logged when it succeeds again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from yarl import URL

from kubemetrics.worker.kubelet_client import KubeletClient, ScrapeFailure, kubelet_url

log = logging.getLogger(__name__)

# (body, node, scrape_time_unix_nanos, max_body_bytes) -> encoded NodeSample; raises ValueError
# (kubemetrics._native.DecodeError) on a payload it cannot decode.
Decoder = Callable[[bytes, str, int, int], bytes]

# Decoding releases the GIL; bodies this large are decoded on a thread so the loop keeps serving
# other nodes' timers and sockets meanwhile. Typical bodies (tens of KiB) decode faster inline than a
# thread hand-off costs.
DECODE_ON_THREAD_BYTES: Final = 1 << 20


@dataclass(frozen=True, slots=True)
class ScrapeTarget:
    """Where to scrape one node (the ingest contract's ScrapeTarget, as plain data)."""

    node: str
    host: str
    port: int
    path: str
    # Used instead of `path` from the first 404 on (--kubelet-endpoint=auto); "" for none.
    fallback_path: str = ""
    url: URL = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError("no host")
        if not 0 < self.port < 65536:
            raise ValueError(f"port {self.port} out of range 1-65535")
        # Built once per target, not per scrape; `encoded=True` keeps the path's query as given.
        object.__setattr__(self, "url", URL(kubelet_url(self.host, self.port, self.path), encoded=True))

    @property
    def is_summary(self) -> bool:
        return self.path.startswith("/stats/summary")

    def with_fallback(self) -> ScrapeTarget:
        return ScrapeTarget(self.node, self.host, self.port, self.fallback_path)


@dataclass(frozen=True, slots=True)
class ScrapeResult:
    """One kubelet request and its sample (None when it failed)."""

    node: str
    sample: bytes | None
    duration_seconds: float
    request_time_unix_nanos: int
    response_bytes: int
    error_kind: str = ""
    error_message: str = ""
    http_status: int = 0

    @property
    def success(self) -> bool:
        return self.sample is not None


class FailureLog:
    """Logs a node's failure when its cause changes, and its recovery; silent otherwise."""

    def __init__(self, logger: logging.Logger = log) -> None:
        self._logger = logger
        self._cause_by_node: dict[str, str] = {}

    def record(self, target: ScrapeTarget, result: ScrapeResult) -> None:
        if result.success:
            previous = self._cause_by_node.pop(target.node, None)
            if previous is not None:
                self._logger.info("Scrape of node recovered node=%s url=%s", _quoted(target.node), _quoted(target.url))
            return
        cause = _cause_key(result)
        if self._cause_by_node.get(target.node) == cause:
            return
        self._cause_by_node[target.node] = cause
        self._logger.error(
            "Failed to scrape node node=%s url=%s kind=%s err=%s",
            _quoted(target.node),
            _quoted(target.url),
            result.error_kind,
            _quoted(result.error_message),
        )

    def forget(self, node: str) -> None:
        """The node is no longer ours: keep nothing about it (memory bounded by current nodes)."""
        self._cause_by_node.pop(node, None)

    def failing_nodes(self) -> frozenset[str]:
        return frozenset(self._cause_by_node)


def _quoted(value: object) -> str:
    # klog's structured form (Go %q): one line per event, whatever the message holds.
    return json.dumps(str(value), ensure_ascii=False)


def _cause_key(result: ScrapeResult) -> str:
    # A different HTTP status is a different cause worth a line; decode errors differ in byte offsets
    # from one scrape to the next while being the same problem, so only their kind counts.
    if result.error_kind == "http_status":
        return f"http_status:{result.error_message}"
    return result.error_kind


class NodeScraper:
    """GET + decode for any node, with the worker's one kubelet client and decoder."""

    def __init__(
        self,
        client: KubeletClient,
        decoder: Decoder,
        max_sample_bytes: int,
        failure_log: FailureLog | None = None,
        resource_decoder: Decoder | None = None,
    ) -> None:
        self._client = client
        self._summary_decoder = decoder
        self._resource_decoder = resource_decoder if resource_decoder is not None else decoder
        self._max_sample_bytes = max_sample_bytes
        self.failure_log = failure_log if failure_log is not None else FailureLog()
        # Targets whose kubelet answered 404 on the primary path: scraped on their fallback path from then
        # on (one wasted request per node and worker, like a kubelet older than 1.19 costs once).
        self._fallen_back: dict[ScrapeTarget, ScrapeTarget] = {}

    async def scrape(self, target: ScrapeTarget) -> ScrapeResult:
        effective = self._fallen_back.get(target, target)
        result = await self._scrape(effective)
        if result.http_status == 404 and effective.fallback_path:
            fallback = effective.with_fallback()
            log.info(
                "Kubelet has no %s; using %s for node=%s",
                effective.path,
                fallback.path,
                _quoted(target.node),
            )
            self._fallen_back[target] = fallback
            effective = fallback
            result = await self._scrape(effective)
        self.failure_log.record(effective, result)
        return result

    def forget(self, target: ScrapeTarget) -> None:
        """The target is no longer ours (or changed): keep nothing about it."""
        self._fallen_back.pop(target, None)

    async def _scrape(self, target: ScrapeTarget) -> ScrapeResult:
        request_time = time.time_ns()
        started = time.perf_counter()
        try:
            body = await self._client.get(target.url)
        except ScrapeFailure as failure:
            return ScrapeResult(
                target.node,
                None,
                time.perf_counter() - started,
                request_time,
                failure.response_bytes,
                failure.kind,
                failure.message,
                http_status=failure.status,
            )
        # The duration is the kubelet request, as metrics_server_kubelet_request_duration_seconds has it.
        duration = time.perf_counter() - started
        try:
            decoder = self._summary_decoder if target.is_summary else self._resource_decoder
            sample = await self._decode(decoder, body, target.node, request_time)
        except Exception as err:  # a decoder bug must cost this node's sample only
            kind = "oversized" if getattr(err, "kind", "") == "oversized" else "decode"
            return ScrapeResult(target.node, None, duration, request_time, len(body), kind, f"decode failed: {err}")
        if len(sample) > self._max_sample_bytes:
            message = f"encoded sample of {len(sample)} bytes exceeds the {self._max_sample_bytes}-byte batch limit"
            return ScrapeResult(target.node, None, duration, request_time, len(body), "oversized", message)
        return ScrapeResult(target.node, sample, duration, request_time, len(body))

    async def _decode(self, decoder: Decoder, body: bytes, node: str, request_time: int) -> bytes:
        limit = self._client.max_body_bytes
        if len(body) >= DECODE_ON_THREAD_BYTES:
            return await asyncio.to_thread(decoder, body, node, request_time, limit)
        return decoder(body, node, request_time, limit)
