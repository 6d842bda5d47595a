"""The worker's side of the ingest contract (proto/kubemetrics/v1/ingest.proto): Attach for the
assignment stream, and one long-lived Push client stream carrying batches of encoded samples and
scrape outcomes.

The worker has no state worth saving: when the front ends or breaks either stream, `FrontGone` is
raised and the worker exits; the front's supervisor starts a new one.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
from collections.abc import AsyncIterator
from typing import Final, NoReturn

import grpc
import grpc.aio

from kubemetrics.v1 import ingest_pb2, ingest_pb2_grpc
from kubemetrics.worker.scrape import ScrapeResult, ScrapeTarget

log = logging.getLogger(__name__)

# A batch is sent when it holds this many samples or bytes, or when its oldest entry is this old.
# 100 ms adds nothing noticeable to a 15 s resolution while keeping messages few and well below
# gRPC's default 4 MiB receive limit.
MAX_BATCH_SAMPLES: Final = 64
MAX_BATCH_BYTES: Final = 2 << 20
FLUSH_INTERVAL_SECONDS: Final = 0.1
# Outcomes are small; the bound keeps a batch of failures (65k dead nodes) within the byte budget.
MAX_BATCH_OUTCOMES: Final = 4096
# One sample alone must fit in a message the front accepts (kubemetrics.ingest sets 256 MiB; gRPC's
# own default would be 4 MiB); a larger one is refused at the worker as oversized rather than breaking
# the stream. Encoded samples are far smaller than the bodies they come from.
MAX_SAMPLE_BYTES: Final = 64 << 20
# Backlog kept while the push stream is blocked (the front reads slower than we scrape).
MAX_PENDING_RESULTS: Final = 100_000
MAX_PENDING_BYTES: Final = 256 << 20
CONNECT_POLL_SECONDS: Final = 0.02
# Rough protobuf size of an outcome apart from its error message, for the byte budget.
_OUTCOME_OVERHEAD_BYTES: Final = 64


class FrontGone(Exception):
    """The front closed or broke a stream, or could not be reached: the worker should exit."""


def scrape_target_from_proto(target: ingest_pb2.ScrapeTarget) -> ScrapeTarget:
    return ScrapeTarget(
        node=target.node, host=target.host, port=target.port, path=target.path, fallback_path=target.fallback_path
    )


def targets_of(assignment: ingest_pb2.Assignment) -> list[ScrapeTarget]:
    """The assignment's targets; one that cannot form a URL is logged and left out, not fatal."""
    targets: list[ScrapeTarget] = []
    for target in assignment.targets:
        try:
            targets.append(scrape_target_from_proto(target))
        except ValueError as err:
            log.error(
                'Ignoring unusable scrape target node="%s" host="%s" port=%d path="%s": %s',
                target.node,
                target.host,
                target.port,
                target.path,
                err,
            )
    return targets


def outcome_to_proto(result: ScrapeResult) -> ingest_pb2.ScrapeOutcome:
    return ingest_pb2.ScrapeOutcome(
        node=result.node,
        success=result.success,
        duration_seconds=result.duration_seconds,
        error_kind=result.error_kind,
        error_message=result.error_message,
        request_time_unix_nanos=result.request_time_unix_nanos,
        response_bytes=result.response_bytes,
    )


class SampleBatcher:
    """Collects scrape results and hands them out as SampleBatch messages: as soon as a batch is
    full, otherwise FLUSH_INTERVAL_SECONDS after the oldest pending result."""

    def __init__(
        self,
        worker_id: str,
        max_samples: int = MAX_BATCH_SAMPLES,
        max_bytes: int = MAX_BATCH_BYTES,
        flush_interval_seconds: float = FLUSH_INTERVAL_SECONDS,
        max_outcomes: int = MAX_BATCH_OUTCOMES,
        max_pending_results: int = MAX_PENDING_RESULTS,
        max_pending_bytes: int = MAX_PENDING_BYTES,
    ) -> None:
        self._worker_id = worker_id
        self._max_samples = max_samples
        self._max_bytes = max_bytes
        self._max_outcomes = max_outcomes
        self._flush_interval = flush_interval_seconds
        self._pending: collections.deque[ScrapeResult] = collections.deque()
        self._pending_samples = 0
        self._pending_bytes = 0
        self._oldest_pending_at = 0.0
        self._changed = asyncio.Event()
        self._closed = False
        self._max_pending_results = max_pending_results
        self._max_pending_bytes = max_pending_bytes
        self._dropped = 0

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def dropped(self) -> int:
        """Results dropped because the front was not taking batches fast enough."""
        return self._dropped

    def add(self, result: ScrapeResult) -> None:
        if not self._pending:
            self._oldest_pending_at = asyncio.get_running_loop().time()
        self._pending.append(result)
        if result.sample is not None:
            self._pending_samples += 1
        self._pending_bytes += _entry_bytes(result)
        while len(self._pending) > 1 and (
            len(self._pending) > self._max_pending_results or self._pending_bytes > self._max_pending_bytes
        ):
            self._drop_oldest()
        if not self._waiting_for_more() or len(self._pending) == 1:
            self._changed.set()

    def _drop_oldest(self) -> None:
        # A front that stalls without closing the stream must not make the worker grow without
        # bound; the newest results matter most (the store keeps only the latest two points).
        oldest = self._pending.popleft()
        if oldest.sample is not None:
            self._pending_samples -= 1
        self._pending_bytes -= _entry_bytes(oldest)
        if self._dropped == 0:
            log.warning("The front is not taking batches; dropping the oldest scrape results")
        self._dropped += 1

    def close(self) -> None:
        """No more results will come: hand out what is pending at once, then end."""
        self._closed = True
        self._changed.set()

    async def next_batch(self) -> ingest_pb2.SampleBatch | None:
        """The next batch to send, or None once closed and drained."""
        loop = asyncio.get_running_loop()
        while True:
            if self._pending and not self._waiting_for_more():
                return self._take()
            if self._pending:
                deadline = self._oldest_pending_at + self._flush_interval
                if loop.time() >= deadline:
                    return self._take()
                self._changed.clear()
                try:
                    async with asyncio.timeout_at(deadline):
                        await self._changed.wait()
                except TimeoutError:
                    return self._take()
                continue
            if self._closed:
                return None
            self._changed.clear()
            await self._changed.wait()

    def _waiting_for_more(self) -> bool:
        full = (
            self._pending_samples >= self._max_samples
            or self._pending_bytes >= self._max_bytes
            or len(self._pending) >= self._max_outcomes
        )
        return not full and not self._closed

    def _take(self) -> ingest_pb2.SampleBatch:
        batch = ingest_pb2.SampleBatch(worker_id=self._worker_id)
        samples = 0
        size = 0
        while self._pending and len(batch.outcomes) < self._max_outcomes:
            result = self._pending[0]
            entry = _entry_bytes(result)
            # Stop before a limit is passed, but always take at least one entry.
            if batch.outcomes and (
                size + entry > self._max_bytes or samples + (result.sample is not None) > self._max_samples
            ):
                break
            self._pending.popleft()
            if result.sample is not None:
                batch.node_samples.append(result.sample)
                samples += 1
            batch.outcomes.append(outcome_to_proto(result))
            size += entry
        self._pending_samples -= samples
        self._pending_bytes -= size
        # Leftovers keep the oldest entry's flush deadline: they go out at the latest when it passes.
        return batch


def _entry_bytes(result: ScrapeResult) -> int:
    sample_bytes = len(result.sample) if result.sample is not None else 0
    return sample_bytes + len(result.error_message) + _OUTCOME_OVERHEAD_BYTES


class PushStream:
    """The Push client stream. Writes fail with FrontGone once the front has ended it."""

    def __init__(self, stub: ingest_pb2_grpc.IngestAsyncStub) -> None:
        self._call = stub.Push()
        self._ended = asyncio.Event()
        # Awaiting the call from a task that may be cancelled would cancel the RPC; a done callback
        # observes its end without owning it.
        self._call.add_done_callback(lambda _call: self._ended.set())

    async def write(self, batch: ingest_pb2.SampleBatch) -> None:
        try:
            await self._call.write(batch)
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError) as err:
            raise FrontGone(f"push stream broken: {_rpc_error_text(err)}") from err

    async def wait_ended(self) -> NoReturn:
        """Raises FrontGone once the stream has ended, whoever ended it (the front, or a broken
        connection)."""
        await self._ended.wait()
        try:
            summary = await self._call
        except (grpc.aio.AioRpcError, asyncio.CancelledError) as err:
            raise FrontGone(f"push stream broken: {_rpc_error_text(err)}") from err
        raise FrontGone(f"the front ended the push stream after {summary.batches} batches")

    async def finish(self, timeout_seconds: float) -> ingest_pb2.PushSummary | None:
        """Half-close the stream and wait for the front's summary (graceful shutdown)."""
        try:
            async with asyncio.timeout(timeout_seconds):
                await self._call.done_writing()
                return await self._call
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError, TimeoutError) as err:
            log.warning("Push stream did not end cleanly: %s", _rpc_error_text(err))
            return None


def channel_options(address: str) -> list[tuple[str, int]]:
    """A front reached over TCP (a worker in another pod) can vanish without closing the connection;
    keepalive pings notice within half a minute, so the worker exits instead of waiting forever. Over a
    unix socket the kernel tells at once."""
    if address.startswith("unix:"):
        return []
    return [("grpc.keepalive_time_ms", 20_000), ("grpc.keepalive_timeout_ms", 10_000)]


class FrontConnection:
    """The gRPC channel to the front's Ingest service. Create it inside the running event loop
    (gRPC objects must not cross a fork)."""

    def __init__(self, address: str, worker_id: str) -> None:
        self._address = address
        self._worker_id = worker_id
        self._channel = grpc.aio.insecure_channel(address, options=channel_options(address))
        self._stub = ingest_pb2_grpc.IngestStub(self._channel)

    async def wait_ready(self, timeout_seconds: float) -> None:
        # Polling the state rather than awaiting channel_ready(): a cancelled connectivity watch
        # completes later on a loop that may be gone.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_seconds
        while self._channel.get_state(try_to_connect=True) != grpc.ChannelConnectivity.READY:
            if loop.time() >= deadline:
                raise FrontGone(f"cannot reach the front at {self._address} within {timeout_seconds:g}s")
            await asyncio.sleep(CONNECT_POLL_SECONDS)

    async def assignments(self) -> AsyncIterator[ingest_pb2.Assignment]:
        """Each full assignment as the front sends it. Raises FrontGone when the stream ends."""
        hello = ingest_pb2.WorkerHello(worker_id=self._worker_id, pid=os.getpid())
        call = self._stub.Attach(hello)
        try:
            async for assignment in call:
                yield assignment
        except grpc.aio.AioRpcError as err:
            raise FrontGone(f"assignment stream broken: {_rpc_error_text(err)}") from err
        raise FrontGone("the front ended the assignment stream")

    def open_push_stream(self) -> PushStream:
        return PushStream(self._stub)

    async def close(self) -> None:
        await self._channel.close(grace=None)


def _rpc_error_text(err: BaseException) -> str:
    if isinstance(err, grpc.aio.AioRpcError):
        return f"{err.code().name}: {err.details()}"
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
