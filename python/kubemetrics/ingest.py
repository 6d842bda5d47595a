"""The front's gRPC service for workers (proto/kubemetrics/v1/ingest.proto).

Attach: a worker announces itself and holds the stream open; it is live for as long as the stream
lasts. It receives its assignment at once and a new one whenever the plan changes (inventory change,
a worker joining or leaving). When the stream ends (the worker died or was stopped), its nodes are
re-planned to the others at once.

Push: workers stream batches of encoded node samples and scrape outcomes. Samples go to the store as
bytes (decoded in Rust, never per pod in Python); outcomes feed self-metrics and failure handling.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from kubemetrics._native import MetricsStore
from kubemetrics.health import HealthState
from kubemetrics.planner import Assignment, ScrapeTarget, ShardPlanner
from kubemetrics.selfmetrics import SelfMetrics
from kubemetrics.v1 import ingest_pb2, ingest_pb2_grpc
from kubemetrics.worker.schedule import phase_fraction

log = logging.getLogger(__name__)

SOCKET_NAME = "ingest.sock"
# Kinds of scrape failure a worker reports (ingest.proto ScrapeOutcome.error_kind); anything else is
# counted as "other" so a misbehaving worker cannot create unbounded label values.
SCRAPE_ERROR_KINDS = frozenset({"timeout", "connect", "tls", "http_status", "decode", "oversized"})
# One batch may carry many nodes' samples (about 10 kB per 100-pod node); the default 4 MiB is too small.
MAX_MESSAGE_BYTES = 256 * 1024 * 1024
_SERVER_OPTIONS = (
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    # Remote workers (TCP) that vanish without closing the connection are noticed within ~30 s.
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
)
_MALFORMED_LOG_INTERVAL_SECONDS = 60.0
# A worker's timers may fire slightly before the slot they wait for (the event loop's clock has millisecond
# granularity and is not the wall clock), so a request made up to this long before a slot is that slot's.
_SLOT_EARLY_TOLERANCE_SECONDS = 1.0


def socket_address(runtime_dir: str | Path) -> str:
    """The gRPC target of the ingest service inside the front's runtime directory."""
    return f"unix://{Path(runtime_dir).resolve() / SOCKET_NAME}"


def assignment_message(assignment: Assignment) -> ingest_pb2.Assignment:
    return ingest_pb2.Assignment(
        generation=assignment.generation,
        targets=[
            ingest_pb2.ScrapeTarget(node=t.node, host=t.host, port=t.port, path=t.path, fallback_path=t.fallback_path)
            for t in assignment.targets
        ],
    )


# --- workers and their assignments ------------------------------------------------------------


@dataclass(eq=False, slots=True)
class WorkerLease:
    """One Attach stream. A newer Attach with the same worker id supersedes it (the old stream ends)."""

    worker_id: str
    pid: int
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    superseded: bool = False


class WorkerRegistry:
    """Live workers (those holding an Attach stream) and the plan over them."""

    def __init__(
        self, planner: ShardPlanner, expected_workers: Iterable[str] = (), startup_grace_seconds: float = 5.0
    ) -> None:
        self.planner = planner
        self._leases: dict[str, WorkerLease] = {}
        self.closing = False
        # The first plan waits until every worker the supervisor started has attached (or the grace
        # period ends): planning over the first worker alone and moving most nodes a moment later would
        # scrape them twice in the first resolution and log their failures twice.
        self._expected_workers = frozenset(expected_workers)
        self._startup_deadline = time.monotonic() + startup_grace_seconds
        self._started = asyncio.Event()
        if not self._expected_workers:
            self._started.set()

    async def wait_for_startup(self) -> None:
        """Return once the first plan may be sent (all expected workers attached, or grace over)."""
        if self._started.is_set():
            return
        try:
            await asyncio.wait_for(self._started.wait(), timeout=max(0.0, self._startup_deadline - time.monotonic()))
        except TimeoutError:
            missing = sorted(self._expected_workers - self._leases.keys())
            log.warning("planning without workers %s: not attached within the start-up grace period", missing)
            self._started.set()

    @property
    def live_workers(self) -> frozenset[str]:
        return frozenset(self._leases)

    def set_targets(self, targets: Iterable[ScrapeTarget]) -> None:
        self._notify(self.planner.set_targets(targets))

    def attach(self, worker_id: str, pid: int) -> WorkerLease:
        lease = WorkerLease(worker_id=worker_id, pid=pid)
        previous = self._leases.get(worker_id)
        self._leases[worker_id] = lease
        if previous is not None:
            log.warning(
                "worker %s attached again (pid %d, was pid %d); ending its previous stream",
                worker_id,
                pid,
                previous.pid,
            )
            previous.superseded = True
            previous.changed.set()
            return lease
        self._notify(self.planner.add_worker(worker_id))
        if self._expected_workers <= self._leases.keys():
            self._started.set()
        log.info(
            "worker %s (pid %d) attached: %d of %d nodes, %d workers live",
            worker_id,
            pid,
            len(self.planner.assignment(worker_id).targets),
            self.planner.target_count(),
            len(self._leases),
        )
        return lease

    def detach(self, lease: WorkerLease) -> None:
        if self._leases.get(lease.worker_id) is not lease:
            return  # superseded: the newer stream owns the worker id
        del self._leases[lease.worker_id]
        share = len(self.planner.assignment(lease.worker_id).targets)
        changed = self.planner.remove_worker(lease.worker_id)
        if self.closing:
            return
        self._notify(changed)
        log.warning(
            "worker %s (pid %d) detached; its %d nodes re-planned to %d live workers",
            lease.worker_id,
            lease.pid,
            share,
            len(self._leases),
        )

    def _notify(self, changed: Iterable[str]) -> None:
        for worker_id in changed:
            lease = self._leases.get(worker_id)
            if lease is not None:
                lease.changed.set()


# --- samples and outcomes ---------------------------------------------------------------------


class LatestOutcomes:
    """The request time of each node's most recent scrape outcome, so that a failure reported late
    (by a worker that lost the node, or a slow batch) cannot hide a node that has since succeeded."""

    def __init__(self) -> None:
        self._latest: dict[str, int] = {}

    def note(self, node: str, request_time_unix_nanos: int) -> bool:
        """Record an outcome; True when it is the node's latest one so far."""
        if request_time_unix_nanos < self._latest.get(node, request_time_unix_nanos):
            return False
        self._latest[node] = request_time_unix_nanos
        return True

    def forget(self, nodes: Iterable[str]) -> None:
        for node in nodes:
            self._latest.pop(node, None)

    def __len__(self) -> int:
        return len(self._latest)


class ScrapeCycles:
    """kubemetrics' counterpart of metrics-server's tick duration (selfmetrics.py explains the choice).

    Workers scrape each node at fixed slots, one per resolution, at a phase derived from the node name
    (worker/schedule.py), so the front can tell which slot an outcome's request was made for: the node's
    latest slot at or before the request's start (or at most a second after it: timers fire a little
    early). Cycle k holds the slots in [k·r, (k+1)·r); its value is the longest time from a slot to the
    front storing that slot's sample or failure. That counts a request that started late (a busy worker),
    the kubelet's answer, batching and the push.

    A cycle is closed, and reported to `on_cycle`, once a full resolution has passed after its last slot
    could have been. An outcome for a cycle already closed (more than a resolution late) is counted in the
    oldest open cycle, with its own delay, so a collection that falls further behind is never hidden.

    A worker's first requests are spread over a few seconds from its start, ahead of their slots
    (worker/schedule.py first_scrape_time); for requests made within two resolutions of a worker's push
    stream opening, the delay counts from the request's start instead.
    """

    def __init__(
        self,
        resolution_seconds: float,
        on_cycle: Callable[[float], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._resolution = resolution_seconds
        self._on_cycle = on_cycle
        self._clock = clock
        self._longest: dict[int, float] = {}  # open cycle -> longest slot-to-stored delay so far
        self._closed_through: int | None = None

    def slot_of(self, node: str, request_unix: float) -> float:
        """The node's latest slot at or before `request_unix` (unix seconds), give or take a timer firing
        early."""
        phase = phase_fraction(node) * self._resolution
        periods = math.floor((request_unix + _SLOT_EARLY_TOLERANCE_SECONDS - phase) / self._resolution)
        return phase + periods * self._resolution

    def note(self, node: str, request_unix: float, stream_started_unix: float | None = None) -> None:
        """An outcome of a request that started at `request_unix` has just been stored."""
        stored = self._clock()
        if stream_started_unix is not None and request_unix < stream_started_unix + 2 * self._resolution:
            slot = request_unix
        else:
            slot = self.slot_of(node, request_unix)
        cycle = math.floor(slot / self._resolution)
        if self._closed_through is not None and cycle <= self._closed_through:
            cycle = self._closed_through + 1
        # Clocks of remote workers may run a little ahead of the front's.
        delay = max(0.0, stored - slot)
        if delay > self._longest.get(cycle, -1.0):
            self._longest[cycle] = delay

    def close_due(self) -> None:
        """Report every cycle whose last slot is at least a resolution past."""
        # Cycle k's slots end at (k+1)·r: it closes at (k+2)·r.
        last_closable = math.floor(self._clock() / self._resolution) - 2
        for cycle in sorted(c for c in self._longest if c <= last_closable):
            self._on_cycle(self._longest.pop(cycle))
        if self._closed_through is None or last_closable > self._closed_through:
            self._closed_through = last_closable


class SampleIngestor:
    """Applies one SampleBatch: samples into the store, outcomes into self-metrics and failure handling."""

    def __init__(
        self,
        store: MetricsStore,
        self_metrics: SelfMetrics,
        health: HealthState | None = None,
        is_known_node: Callable[[str], bool] = lambda node: True,
        tolerated_failures: int = 0,
        cycles: ScrapeCycles | None = None,
    ) -> None:
        self._store = store
        self.cycles = cycles
        # Consecutive failed scrapes a node may have while its last good points stay served
        # (--tolerated-scrape-failures; 0 is metrics-server's behaviour).
        self._tolerated_failures = tolerated_failures
        self._consecutive_failures: dict[str, int] = {}
        self._self_metrics = self_metrics
        self._health = health
        self._is_known_node = is_known_node
        self.latest_outcomes = LatestOutcomes()
        self._malformed_logged_at: dict[str, float] = {}
        self._malformed_suppressed: dict[str, int] = {}

    def apply(self, batch: ingest_pb2.SampleBatch, stream_started_unix: float | None = None) -> int:
        """Returns how many samples the batch carried. `stream_started_unix`: when the sending worker's
        push stream opened (see ScrapeCycles)."""
        worker_id = batch.worker_id or "unknown"
        samples = list(batch.node_samples)
        if samples:
            try:
                self._store.ingest(samples)
            except ValueError as err:
                self._log_malformed(worker_id, len(samples), err)
        latest_in_batch: dict[str, ingest_pb2.ScrapeOutcome] = {}
        for outcome in batch.outcomes:
            self._record(outcome)
            if self.cycles is not None:
                self.cycles.note(outcome.node, outcome.request_time_unix_nanos / 1e9, stream_started_unix)
            seen = latest_in_batch.get(outcome.node)
            if seen is None or outcome.request_time_unix_nanos >= seen.request_time_unix_nanos:
                latest_in_batch[outcome.node] = outcome
        for node, outcome in latest_in_batch.items():
            if not self._is_known_node(node):
                if not outcome.success:
                    self._store.forget_node(node)
                continue
            if self.latest_outcomes.note(node, outcome.request_time_unix_nanos):
                self._note_latest_outcome(node, outcome.success)
        self._self_metrics.ingested_batches.labels(worker=worker_id).inc()
        if samples:
            self._self_metrics.ingested_samples.labels(worker=worker_id).inc(len(samples))
        if self._health is not None:
            self._health.note_collection_progress()
        if self.cycles is not None:
            self.cycles.close_due()
        return len(samples)

    def _note_latest_outcome(self, node: str, success: bool) -> None:
        if success:
            self._consecutive_failures.pop(node, None)
            return
        failures = self._consecutive_failures.get(node, 0) + 1
        self._consecutive_failures[node] = failures
        # metrics-server keeps no point across a failed scrape: the node (and its pods) disappear
        # until two new points exist (pkg/storage rebuilds last/prev from each tick's batch), a gap of
        # about two resolutions for one lost request (metrics-server #1736). Tolerating failures keeps
        # the last good points, so the next good scrape is served at once.
        if failures > self._tolerated_failures:
            self._store.forget_node(node)

    def forget_nodes(self, nodes: Iterable[str]) -> None:
        """Nodes left the inventory: keep nothing about them."""
        departed = list(nodes)
        self.latest_outcomes.forget(departed)
        for node in departed:
            self._consecutive_failures.pop(node, None)

    def _record(self, outcome: ingest_pb2.ScrapeOutcome) -> None:
        self._self_metrics.record_scrape(
            outcome.node,
            outcome.success,
            outcome.duration_seconds,
            outcome.request_time_unix_nanos / 1e9,
            per_node=self._is_known_node(outcome.node),
        )
        if not outcome.success:
            kind = outcome.error_kind if outcome.error_kind in SCRAPE_ERROR_KINDS else "other"
            self._self_metrics.scrape_errors.labels(kind=kind).inc()

    def _log_malformed(self, worker_id: str, count: int, err: ValueError) -> None:
        # A worker sending garbage would otherwise log on every batch; one line a minute is enough.
        now = time.monotonic()
        last = self._malformed_logged_at.get(worker_id)
        if last is not None and now - last < _MALFORMED_LOG_INTERVAL_SECONDS:
            self._malformed_suppressed[worker_id] = self._malformed_suppressed.get(worker_id, 0) + 1
            return
        suppressed = self._malformed_suppressed.pop(worker_id, 0)
        self._malformed_logged_at[worker_id] = now
        log.error(
            "worker %s sent a malformed sample in a batch of %d (the others were stored): %s%s",
            worker_id,
            count,
            err,
            f" ({suppressed} similar batches not logged)" if suppressed else "",
        )


# --- gRPC ---------------------------------------------------------------------------------------


class IngestService(ingest_pb2_grpc.IngestServicer):
    def __init__(self, registry: WorkerRegistry, ingestor: SampleIngestor, health: HealthState | None = None) -> None:
        self._registry = registry
        self._ingestor = ingestor
        self._health = health

    async def Attach(  # type: ignore[override]
        self,
        request: ingest_pb2.WorkerHello,
        context: grpc.aio.ServicerContext[ingest_pb2.WorkerHello, ingest_pb2.Assignment],
    ) -> None:
        if not request.worker_id:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "WorkerHello.worker_id is required")
        lease = self._registry.attach(request.worker_id, request.pid)
        try:
            await self._registry.wait_for_startup()
            sent_generation = -1
            while not lease.superseded:
                lease.changed.clear()
                assignment = self._registry.planner.assignment(lease.worker_id)
                if assignment.generation != sent_generation:
                    await context.write(assignment_message(assignment))
                    sent_generation = assignment.generation
                    if self._health is not None:
                        self._health.note_collection_progress()
                await lease.changed.wait()
        finally:
            self._registry.detach(lease)

    async def Push(
        self,
        request_iterator: AsyncIterable[ingest_pb2.SampleBatch],
        context: grpc.aio.ServicerContext[ingest_pb2.SampleBatch, ingest_pb2.PushSummary],
    ) -> ingest_pb2.PushSummary:
        batches = samples = 0
        started = time.time()
        async for batch in request_iterator:
            samples += self._ingestor.apply(batch, stream_started_unix=started)
            batches += 1
        return ingest_pb2.PushSummary(batches=batches, samples=samples)


class IngestServer:
    """The gRPC server, listening on a unix socket (local workers) or a TCP address (remote ones)."""

    def __init__(self, registry: WorkerRegistry, ingestor: SampleIngestor, health: HealthState | None = None) -> None:
        self.registry = registry
        self.ingestor = ingestor
        self._server = grpc.aio.server(options=_SERVER_OPTIONS)
        ingest_pb2_grpc.add_IngestServicer_to_server(IngestService(registry, ingestor, health), self._server)
        self.address = ""

    async def start(self, address: str) -> None:
        """`address`: "unix:///path/ingest.sock" or "host:port" (port 0 picks one; see `address`)."""
        port = self._server.add_insecure_port(address)
        self.address = address if address.startswith("unix:") else f"{address.rsplit(':', 1)[0]}:{port}"
        await self._server.start()
        log.debug("ingest service listening on %s", self.address)

    async def stop(self, grace_seconds: float = 1.0) -> None:
        self.registry.closing = True
        await self._server.stop(grace_seconds)
