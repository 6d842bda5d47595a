"""Per-node scrape slots: spread over the resolution by node name, anchored to the wall clock, one
request per resolution, overruns skip slots, and the scheduler follows the front's assignments."""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Callable

import pytest
from kubemetrics.worker.schedule import (
    MIN_GAP_FRACTION,
    STARTUP_SPACING_SECONDS,
    ScrapeScheduler,
    first_scrape_time,
    next_scrape_time,
    next_slot,
    phase_fraction,
    startup_spread_seconds,
)
from kubemetrics.worker.scrape import FailureLog, ScrapeResult, ScrapeTarget


def test_phases_spread_node_names_evenly_over_the_resolution() -> None:
    phases = [phase_fraction(f"ip-10-0-{i // 256}-{i % 256}.ec2.internal") for i in range(10_000)]
    assert all(0.0 <= phase < 1.0 for phase in phases)
    deciles = [sum(1 for phase in phases if d / 10 <= phase < (d + 1) / 10) for d in range(10)]
    assert all(900 <= count <= 1100 for count in deciles), deciles
    assert abs(statistics.mean(phases) - 0.5) < 0.01


def test_a_nodes_phase_is_the_same_in_every_process() -> None:
    # xxh64 of the UTF-8 name, not Python's per-process salted hash().
    assert phase_fraction("node-a") == phase_fraction("node-a")
    assert phase_fraction("node-a") == 0x5378E2C8885D70B / 2**64


def test_next_slot_is_the_first_time_at_the_phase_not_before_the_given_time() -> None:
    assert next_slot(1000.0, 3.0, 15.0) == 1008.0  # 1008 = 67 × 15 + 3
    assert next_slot(1008.0, 3.0, 15.0) == 1008.0
    assert next_slot(1008.001, 3.0, 15.0) == pytest.approx(1023.0)
    assert next_slot(0.5, 0.0, 1.0) == 1.0


def test_a_node_new_to_a_running_worker_waits_for_its_slot() -> None:
    now = 1_700_000_000.25
    first = first_scrape_time("node-a", now, 15.0, None)
    assert now <= first < now + 15.0
    periods = (first - phase_fraction("node-a") * 15.0) / 15.0
    assert abs(periods - round(periods)) < 1e-6


def test_a_freshly_started_worker_scrapes_within_the_startup_spread() -> None:
    now = 1_700_000_000.0
    spread = startup_spread_seconds(500, 15.0)
    assert spread == pytest.approx(500 * STARTUP_SPACING_SECONDS)
    firsts = [first_scrape_time(f"node-{i}", now, 15.0, spread) - now for i in range(500)]
    assert all(0.0 <= delay <= spread for delay in firsts)
    assert max(firsts) > 0.9 * spread  # spread, not bunched at the start
    assert startup_spread_seconds(100_000, 15.0) == 15.0


def test_scrapes_repeat_every_resolution_from_the_scheduled_start() -> None:
    resolution = 15.0
    slot = first_scrape_time("node-a", 1_700_000_000.0, resolution, None)
    # The scrape took 2 s: the next one is due one resolution after the scheduled start.
    assert next_scrape_time(slot, slot + 2.0, "node-a", resolution) == pytest.approx(slot + resolution)
    # The loop woke 0.3 s late: still no drift.
    assert next_scrape_time(slot, slot + 0.3, "node-a", resolution) == pytest.approx(slot + resolution)


def test_an_overrunning_scrape_skips_the_slots_it_missed() -> None:
    slot = first_scrape_time("node-a", 1_700_000_000.0, 15.0, None)
    assert next_scrape_time(slot, slot + 16.0, "node-a", 15.0) == pytest.approx(slot + 30.0)
    assert next_scrape_time(slot, slot + 44.0, "node-a", 15.0) == pytest.approx(slot + 45.0)


def test_after_an_early_first_scrape_the_next_is_at_least_half_a_resolution_later() -> None:
    for i in range(200):
        node = f"node-{i}"
        early = 1_700_000_000.0 + phase_fraction(node) * 0.5
        following = next_scrape_time(early, early + 0.05, node, 15.0)
        assert MIN_GAP_FRACTION * 15.0 <= following - early <= (1 + MIN_GAP_FRACTION) * 15.0


def test_a_wall_clock_stepped_back_does_not_repeat_a_slot() -> None:
    slot = first_scrape_time("node-a", 1_700_000_000.0, 15.0, None)
    assert next_scrape_time(slot, slot - 5.0, "node-a", 15.0) == pytest.approx(slot + 15.0)


class RecordingScraper:
    """Stands in for NodeScraper: records which target each scrape used."""

    def __init__(self) -> None:
        self.failure_log = FailureLog()
        self.scraped: list[ScrapeTarget] = []

    async def scrape(self, target: ScrapeTarget) -> ScrapeResult:
        self.scraped.append(target)
        return ScrapeResult(target.node, b"sample", 0.001, 0, 6)

    def forget(self, target: ScrapeTarget) -> None:
        pass


def target(node: str, port: int = 10250) -> ScrapeTarget:
    return ScrapeTarget(node, "127.0.0.1", port, "/stats/summary")


def scheduler_with(clock: Callable[[], float]) -> tuple[ScrapeScheduler, RecordingScraper, list[ScrapeResult]]:
    scraper = RecordingScraper()
    results: list[ScrapeResult] = []
    scheduler = ScrapeScheduler(scraper, results.append, 15.0, clock=clock)  # type: ignore[arg-type]
    return scheduler, scraper, results


async def test_the_scheduler_starts_moves_and_stops_node_loops_as_assignments_change() -> None:
    scheduler, _, _ = scheduler_with(lambda: 1_700_000_000.0)
    change = scheduler.apply([target("a"), target("b")])
    assert (sorted(change.added), change.removed, change.updated) == (["a", "b"], (), ())
    change = scheduler.apply([target("a", port=10251), target("c")])
    assert (change.added, change.removed, change.updated) == (("c",), ("b",), ("a",))
    assert scheduler.nodes == {"a", "c"}
    assert scheduler.target("a") == target("a", port=10251)
    change = scheduler.apply([target("a", port=10251), target("c")])
    assert (change.added, change.removed, change.updated) == ((), (), ())
    await scheduler.stop()
    assert scheduler.nodes == frozenset()


async def test_only_the_first_nodes_a_worker_gets_start_early() -> None:
    now = 1_700_000_000.0
    scheduler, scraper, results = scheduler_with(lambda: now + asyncio.get_running_loop().time() - started)
    started = asyncio.get_running_loop().time()
    scheduler.apply([])  # the front had not listed nodes yet
    scheduler.apply([target("first")])
    await asyncio.sleep(0.05)
    assert [t.node for t in scraper.scraped] == ["first"]
    # A node given later waits for its slot (it may have been scraped by another worker just now),
    # unless its slot happens to be this close.
    late = next(f"late-{i}" for i in range(100) if 1.0 < first_scrape_time(f"late-{i}", now, 15.0, None) - now)
    scheduler.apply([target("first"), target(late)])
    await asyncio.sleep(0.05)
    assert [t.node for t in scraper.scraped] == ["first"]
    assert [r.node for r in results] == ["first"]
    await scheduler.stop()


async def test_a_removed_node_forgets_its_logged_failure() -> None:
    scheduler, scraper, _ = scheduler_with(lambda: 1_700_000_000.0)
    scheduler.apply([target("a")])
    scraper.failure_log.record(target("a"), ScrapeResult("a", None, 0.1, 0, 0, "timeout", "timed out"))
    assert scraper.failure_log.failing_nodes() == {"a"}
    scheduler.apply([])
    assert scraper.failure_log.failing_nodes() == frozenset()
    await scheduler.stop()
