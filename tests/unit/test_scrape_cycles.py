"""The scrape cycle (metrics_server_manager_tick_duration_seconds, kubemetrics_scrape_cycle_seconds): per
resolution, the longest time from a node's scrape slot to the front storing its sample or failure."""

from __future__ import annotations

import pytest
from kubemetrics._native import MetricsStore
from kubemetrics.ingest import SampleIngestor, ScrapeCycles
from kubemetrics.selfmetrics import SelfMetrics
from kubemetrics.v1 import ingest_pb2

RESOLUTION = 15.0
CYCLE_START = 1_700_000_010.0  # a multiple of the resolution: cycle 113,333,334 starts here
# Where each node's slot falls in the resolution (worker/schedule.py phase_fraction × 15 s).
PHASE_A = 0.3056843644006605  # node-a
PHASE_C = 5.102486390242312  # node-c
PHASE_2 = 12.393617440521222  # node-2
PHASE_B = 14.859705853776612  # node-b


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Recorded:
    def __init__(self) -> None:
        self.cycles: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.cycles.append(seconds)


def cycles_at(clock: FakeClock) -> tuple[ScrapeCycles, Recorded]:
    recorded = Recorded()
    return ScrapeCycles(RESOLUTION, recorded, clock=clock), recorded


def stored(cycles: ScrapeCycles, clock: FakeClock, node: str, requested: float, at: float, **kw: float) -> None:
    clock.now = at
    cycles.note(node, requested, **kw)


def test_an_outcome_belongs_to_the_nodes_latest_slot_at_or_before_its_request() -> None:
    cycles, _ = cycles_at(FakeClock(CYCLE_START))
    assert cycles.slot_of("node-c", CYCLE_START + 5.2) == pytest.approx(CYCLE_START + PHASE_C, abs=1e-6)
    assert cycles.slot_of("node-c", CYCLE_START + 14.9) == pytest.approx(CYCLE_START + PHASE_C, abs=1e-6)
    assert cycles.slot_of("node-c", CYCLE_START + 3.9) == pytest.approx(CYCLE_START - 15 + PHASE_C, abs=1e-6)


def test_a_request_made_a_moment_before_its_slot_belongs_to_that_slot() -> None:
    # The worker's timer fired 0.4 ms early (the event loop's clock has millisecond granularity).
    clock = FakeClock(CYCLE_START)
    cycles, recorded = cycles_at(clock)
    assert cycles.slot_of("node-c", CYCLE_START + PHASE_C - 0.0004) == pytest.approx(CYCLE_START + PHASE_C, abs=1e-6)
    stored(cycles, clock, "node-c", CYCLE_START + PHASE_C - 0.0004, at=CYCLE_START + PHASE_C + 0.2)
    clock.now = CYCLE_START + 30.0
    cycles.close_due()
    assert recorded.cycles == [pytest.approx(0.2, abs=1e-6)], "not 15.2 s, from the slot a resolution earlier"


def test_a_cycle_reports_its_slowest_node_once_a_resolution_has_passed_after_it() -> None:
    clock = FakeClock(CYCLE_START)
    cycles, recorded = cycles_at(clock)
    stored(cycles, clock, "node-a", CYCLE_START + 0.4, at=CYCLE_START + 0.9)
    stored(cycles, clock, "node-c", CYCLE_START + 5.2, at=CYCLE_START + 6.0)
    # node-2's kubelet took 4 s to answer.
    stored(cycles, clock, "node-2", CYCLE_START + 12.5, at=CYCLE_START + 16.5)

    clock.now = CYCLE_START + 29.9
    cycles.close_due()
    assert recorded.cycles == [], "a slot's sample may still be on its way until a resolution after the cycle"

    clock.now = CYCLE_START + 30.0
    cycles.close_due()
    assert recorded.cycles == [pytest.approx(16.5 - PHASE_2, abs=1e-6)]  # 4.106 s
    cycles.close_due()
    assert len(recorded.cycles) == 1, "each cycle is reported once"


def test_a_request_that_started_late_counts_from_its_slot() -> None:
    clock = FakeClock(CYCLE_START)
    cycles, recorded = cycles_at(clock)
    # A busy worker made node-c's request 5.9 s after its slot; the kubelet answered at once.
    stored(cycles, clock, "node-c", CYCLE_START + 11.0, at=CYCLE_START + 11.2)

    clock.now = CYCLE_START + 30.0
    cycles.close_due()
    assert recorded.cycles == [pytest.approx(11.2 - PHASE_C, abs=1e-6)]  # 6.098 s


def test_an_outcome_later_than_a_resolution_is_counted_in_the_oldest_open_cycle() -> None:
    clock = FakeClock(CYCLE_START)
    cycles, recorded = cycles_at(clock)
    stored(cycles, clock, "node-a", CYCLE_START + 0.4, at=CYCLE_START + 0.9)
    stored(cycles, clock, "node-a", CYCLE_START + 15.4, at=CYCLE_START + 15.9)
    clock.now = CYCLE_START + 30.0
    cycles.close_due()
    assert recorded.cycles == [pytest.approx(0.9 - PHASE_A, abs=1e-6)]
    # node-b's slot was in the cycle just reported; its outcome arrives 16 s after the slot.
    stored(cycles, clock, "node-b", CYCLE_START + 14.9, at=CYCLE_START + 31.0)

    clock.now = CYCLE_START + 45.0
    cycles.close_due()
    assert recorded.cycles == [
        pytest.approx(0.9 - PHASE_A, abs=1e-6),
        pytest.approx(31.0 - PHASE_B, abs=1e-6),  # 16.14 s: above the resolution, collection fell behind
    ]


def test_a_workers_first_requests_count_from_their_start() -> None:
    clock = FakeClock(CYCLE_START)
    cycles, recorded = cycles_at(clock)
    # The worker's push stream opened at +3 s and it made node-b's first request at +4 s, ahead of node-b's
    # slot (+14.86 s); counted from its latest slot (-0.14 s) it would look 4.6 s late.
    stored(cycles, clock, "node-b", CYCLE_START + 4.0, at=CYCLE_START + 4.5, stream_started_unix=CYCLE_START + 3.0)
    # Two resolutions after the stream opened, requests count from their slots again.
    stored(cycles, clock, "node-c", CYCLE_START + 35.2, at=CYCLE_START + 36.0, stream_started_unix=CYCLE_START + 3)

    clock.now = CYCLE_START + 60.0
    cycles.close_due()
    assert recorded.cycles == [pytest.approx(0.5, abs=1e-6), pytest.approx(36.0 - 30 - PHASE_C, abs=1e-6)]


def test_a_worker_clock_ahead_of_the_fronts_gives_no_negative_duration() -> None:
    clock = FakeClock(CYCLE_START)
    cycles, recorded = cycles_at(clock)
    stored(cycles, clock, "node-c", CYCLE_START + 5.2, at=CYCLE_START + 5.0)
    clock.now = CYCLE_START + 30.0
    cycles.close_due()
    assert recorded.cycles == [0.0]


def test_the_ingestor_reports_cycles_of_stored_samples_and_failures_as_tick_durations() -> None:
    clock = FakeClock(CYCLE_START)
    metrics = SelfMetrics(metric_resolution_seconds=RESOLUTION)
    store = MetricsStore(RESOLUTION)
    cycles = ScrapeCycles(RESOLUTION, metrics.observe_scrape_cycle, clock=clock)
    ingestor = SampleIngestor(store, metrics, cycles=cycles)

    def outcome(node: str, requested: float, success: bool = True) -> ingest_pb2.ScrapeOutcome:
        return ingest_pb2.ScrapeOutcome(
            node=node,
            success=success,
            duration_seconds=0.1,
            error_kind="" if success else "timeout",
            request_time_unix_nanos=int(requested * 1e9),
        )

    clock.now = CYCLE_START + 0.6
    ingestor.apply(ingest_pb2.SampleBatch(worker_id="w0", outcomes=[outcome("node-a", CYCLE_START + 0.4)]))
    clock.now = CYCLE_START + 15.5
    ingestor.apply(ingest_pb2.SampleBatch(worker_id="w0", outcomes=[outcome("node-b", CYCLE_START + 14.9, False)]))
    # The next batch after the cycle's closing time reports it.
    clock.now = CYCLE_START + 30.5
    ingestor.apply(ingest_pb2.SampleBatch(worker_id="w0", outcomes=[outcome("node-c", CYCLE_START + 20.2)]))

    def value(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, labels)

    tick = "metrics_server_manager_tick_duration_seconds"
    assert value(f"{tick}_count") == 1.0
    assert value(f"{tick}_bucket", le="0.5") == 0.0
    assert value(f"{tick}_bucket", le="1.0") == 1.0  # node-b: 15.5 - 14.86 = 0.64 s
    assert value(f"{tick}_sum") == pytest.approx(15.5 - PHASE_B, abs=1e-6)
    assert value("kubemetrics_scrape_cycle_seconds") == pytest.approx(15.5 - PHASE_B, abs=1e-6)
