"""Batching of scrape results into SampleBatch messages: full batches go at once, partial ones after
the flush interval, limits split large backlogs, and closing drains what is pending."""

from __future__ import annotations

import asyncio

import pytest
from kubemetrics.v1 import ingest_pb2
from kubemetrics.worker.push import SampleBatcher, outcome_to_proto, scrape_target_from_proto, targets_of
from kubemetrics.worker.scrape import ScrapeResult, ScrapeTarget


def success(node: str, size: int = 100) -> ScrapeResult:
    return ScrapeResult(node, b"s" * size, 0.012, 1_700_000_000_000_000_000, size)


def failure(node: str) -> ScrapeResult:
    return ScrapeResult(node, None, 0.5, 1_700_000_000_000_000_001, 0, "timeout", "request timed out after 0.5s")


def test_outcomes_carry_every_field_of_the_result() -> None:
    assert outcome_to_proto(failure("n1")) == ingest_pb2.ScrapeOutcome(
        node="n1",
        success=False,
        duration_seconds=0.5,
        error_kind="timeout",
        error_message="request timed out after 0.5s",
        request_time_unix_nanos=1_700_000_000_000_000_001,
        response_bytes=0,
    )
    ok = outcome_to_proto(success("n2", 42))
    assert (ok.success, ok.error_kind, ok.response_bytes) == (True, "", 42)


def test_targets_from_the_front_become_plain_targets_with_their_url() -> None:
    target = scrape_target_from_proto(ingest_pb2.ScrapeTarget(node="n", host="fd00::1", port=10250, path="/p?q=1"))
    assert target == ScrapeTarget("n", "fd00::1", 10250, "/p?q=1")
    assert str(target.url) == "https://[fd00::1]:10250/p?q=1"


async def test_a_partial_batch_goes_after_the_flush_interval() -> None:
    batcher = SampleBatcher("w0", flush_interval_seconds=0.1)
    loop = asyncio.get_running_loop()
    batcher.add(success("a"))
    batcher.add(failure("b"))
    started = loop.time()
    batch = await batcher.next_batch()
    waited = loop.time() - started
    assert batch is not None
    assert 0.09 <= waited < 0.3
    assert batch.worker_id == "w0"
    assert list(batch.node_samples) == [b"s" * 100]
    assert [(o.node, o.success) for o in batch.outcomes] == [("a", True), ("b", False)]
    assert batcher.pending == 0


async def test_a_full_batch_goes_at_once_and_the_rest_waits_for_the_next() -> None:
    batcher = SampleBatcher("w0", max_samples=64, flush_interval_seconds=5.0)
    for i in range(70):
        batcher.add(success(f"n{i}"))
    batch = await asyncio.wait_for(batcher.next_batch(), 0.05)
    assert batch is not None
    assert len(batch.node_samples) == 64
    assert [o.node for o in batch.outcomes] == [f"n{i}" for i in range(64)]
    assert batcher.pending == 6


async def test_a_batch_stops_before_the_byte_limit_but_always_holds_one_sample() -> None:
    batcher = SampleBatcher("w0", max_bytes=1000, flush_interval_seconds=5.0)
    for node in ("a", "b", "c"):
        batcher.add(success(node, 400))
    batcher.add(success("huge", 5000))
    sizes = []
    for _ in range(3):
        batch = await asyncio.wait_for(batcher.next_batch(), 0.05)
        assert batch is not None
        sizes.append([o.node for o in batch.outcomes])
    assert sizes == [["a", "b"], ["c"], ["huge"]]


async def test_a_waiting_batcher_wakes_as_soon_as_the_batch_fills() -> None:
    batcher = SampleBatcher("w0", max_samples=3, flush_interval_seconds=5.0)
    pending = asyncio.create_task(batcher.next_batch())
    batcher.add(success("a"))
    await asyncio.sleep(0.02)
    assert not pending.done()
    batcher.add(success("b"))
    batcher.add(success("c"))
    batch = await asyncio.wait_for(pending, 0.05)
    assert batch is not None
    assert len(batch.node_samples) == 3


async def test_closing_hands_out_what_is_pending_then_ends() -> None:
    batcher = SampleBatcher("w0", flush_interval_seconds=5.0)
    batcher.add(failure("a"))
    batcher.close()
    batch = await asyncio.wait_for(batcher.next_batch(), 0.05)
    assert batch is not None
    assert [o.error_kind for o in batch.outcomes] == ["timeout"]
    assert await asyncio.wait_for(batcher.next_batch(), 0.05) is None


async def test_a_stalled_front_costs_the_oldest_results_not_unbounded_memory() -> None:
    batcher = SampleBatcher("w0", flush_interval_seconds=5.0, max_pending_results=5, max_pending_bytes=10_000)
    for i in range(8):
        batcher.add(success(f"n{i}"))
    assert (batcher.pending, batcher.dropped) == (5, 3)
    batcher.add(success("big", 9_900))
    assert (batcher.pending, batcher.dropped) == (1, 8)
    batcher.close()
    batch = await asyncio.wait_for(batcher.next_batch(), 0.05)
    assert batch is not None
    assert [o.node for o in batch.outcomes] == ["big"]


def test_a_target_that_cannot_form_a_url_is_left_out_of_the_assignment(caplog: pytest.LogCaptureFixture) -> None:
    assignment = ingest_pb2.Assignment(
        generation=3,
        targets=[
            ingest_pb2.ScrapeTarget(node="bad", host="10.0.0.1", port=70000, path="/stats/summary"),
            ingest_pb2.ScrapeTarget(node="good", host="10.0.0.2", port=10250, path="/stats/summary"),
            ingest_pb2.ScrapeTarget(node="no-address", host="", port=10250, path="/stats/summary"),
        ],
    )
    assert [target.node for target in targets_of(assignment)] == ["good"]
    assert 'Ignoring unusable scrape target node="bad" host="10.0.0.1" port=70000' in caplog.text
    assert "port 70000 out of range 1-65535" in caplog.text
    assert 'node="no-address" host="" port=10250 path="/stats/summary": no host' in caplog.text
