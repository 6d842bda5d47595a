"""When each node is scraped: one independent loop per node, one request per resolution.

Unlike metrics-server's global tick (every node at once, then wait for the slowest), each node has
its own slots, so a slow or dead kubelet delays only itself. Slots are anchored to the wall clock at a
phase derived from the node name: nodes spread evenly over the resolution, and a node that moves to
another worker (or another replica of the worker process) keeps the same slots, so the move neither
doubles nor skips a request.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

import xxhash

from kubemetrics.worker.scrape import NodeScraper, ScrapeResult, ScrapeTarget

log = logging.getLogger(__name__)

# Kubelet stats only change every few seconds (cAdvisor housekeeping), so two requests closer than
# this fraction of the resolution would add load without adding a point. It also guards against a
# wall clock stepped backwards repeating a slot.
MIN_GAP_FRACTION: Final = 0.5

# A worker's first scrapes each cost a TLS handshake plus a decode, a few milliseconds of CPU; this
# spacing keeps a freshly started worker from handshaking with all its kubelets in the same instant
# (metrics-server staggers its first requests by 8 ms per node up to 4 s for the same reason).
STARTUP_SPACING_SECONDS: Final = 0.004


def phase_fraction(node: str) -> float:
    """Where in the resolution window the node's slots fall, in [0, 1); uniform over node names and
    the same in every process."""
    return xxhash.xxh64_intdigest(node.encode()) / 2.0**64


def next_slot(not_before: float, phase_seconds: float, resolution_seconds: float) -> float:
    """The first time ≥ `not_before` (unix seconds) that is `phase_seconds` past a multiple of the
    resolution."""
    periods = math.ceil((not_before - phase_seconds) / resolution_seconds)
    return phase_seconds + periods * resolution_seconds


def startup_spread_seconds(node_count: int, resolution_seconds: float) -> float:
    """How long a freshly started worker takes to make its first request to every node."""
    return min(resolution_seconds, node_count * STARTUP_SPACING_SECONDS)


def first_scrape_time(node: str, now: float, resolution_seconds: float, startup_spread: float | None) -> float:
    """When to scrape a node that is new to this worker.

    Normally at its next slot. With `startup_spread` (the worker's first assignment: the whole
    deployment starting, or this worker's nodes left unscraped while it restarted), at most that far
    away, spread by the same phase: the first point arrives within seconds instead of up to a
    resolution, and the node joins its regular slots from the second scrape on.
    """
    phase = phase_fraction(node)
    slot = next_slot(now, phase * resolution_seconds, resolution_seconds)
    if startup_spread is None:
        return slot
    return min(slot, now + phase * startup_spread)


def next_scrape_time(previous_start: float, now: float, node: str, resolution_seconds: float) -> float:
    """The slot after a scrape that was due at `previous_start`, counted from that start rather than
    from completion; a scrape that overran its slot skips the slots it missed instead of piling up."""
    not_before = max(now, previous_start + MIN_GAP_FRACTION * resolution_seconds)
    return next_slot(not_before, phase_fraction(node) * resolution_seconds, resolution_seconds)


ResultSink = Callable[[ScrapeResult], None]


class NodeScrapeLoop:
    """Scrapes one node at its slots until cancelled. `target` may be replaced between scrapes (the
    front moved the node to another address or port)."""

    def __init__(
        self,
        target: ScrapeTarget,
        scraper: NodeScraper,
        sink: ResultSink,
        resolution_seconds: float,
        first_time: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.target = target
        self._scraper = scraper
        self._sink = sink
        self._resolution = resolution_seconds
        self._clock = clock
        self.task = asyncio.create_task(self._run(first_time), name=f"scrape node {target.node}")

    async def _run(self, slot: float) -> None:
        node = self.target.node
        while True:
            delay = slot - self._clock()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                self._sink(await self._scraper.scrape(self.target))
            except Exception:
                # Scrape failures are results, not exceptions; this is a bug, and it must not stop
                # the node's loop for good.
                log.exception('Unexpected error in scrape loop node="%s"', node)
            slot = next_scrape_time(slot, self._clock(), node, self._resolution)


@dataclass(frozen=True, slots=True)
class AssignmentChange:
    added: tuple[str, ...]
    removed: tuple[str, ...]
    updated: tuple[str, ...]


class ScrapeScheduler:
    """The set of node loops, kept equal to the front's latest assignment."""

    def __init__(
        self,
        scraper: NodeScraper,
        sink: ResultSink,
        resolution_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._scraper = scraper
        self._sink = sink
        self._resolution = resolution_seconds
        self._clock = clock
        self._loops: dict[str, NodeScrapeLoop] = {}
        self._stopping: set[asyncio.Task[None]] = set()
        # Until this worker has been given a node, every node it gets starts early (first_scrape_time).
        self._started_any = False

    @property
    def nodes(self) -> frozenset[str]:
        return frozenset(self._loops)

    def target(self, node: str) -> ScrapeTarget | None:
        loop = self._loops.get(node)
        return loop.target if loop is not None else None

    def apply(self, targets: Iterable[ScrapeTarget]) -> AssignmentChange:
        """Make the running loops match `targets` (the full assignment; a node listed twice: last wins)."""
        wanted = {target.node: target for target in targets}
        removed = tuple(node for node in self._loops if node not in wanted)
        for node in removed:
            gone = self._loops.pop(node)
            self._cancel(gone)
            self._scraper.failure_log.forget(node)
            self._scraper.forget(gone.target)
        # The first assignment may be empty (the front has not listed its nodes yet): the startup
        # spread applies to the first nodes this worker is given, whenever they come.
        spread = None if self._started_any else startup_spread_seconds(len(wanted), self._resolution)
        now = self._clock()
        added: list[str] = []
        updated: list[str] = []
        for node, target in wanted.items():
            loop = self._loops.get(node)
            if loop is None:
                first = first_scrape_time(node, now, self._resolution, spread)
                self._loops[node] = NodeScrapeLoop(
                    target, self._scraper, self._sink, self._resolution, first, self._clock
                )
                added.append(node)
            elif loop.target != target:
                self._scraper.forget(loop.target)
                loop.target = target
                updated.append(node)
        self._started_any = self._started_any or bool(added)
        return AssignmentChange(tuple(added), removed, tuple(updated))

    async def stop(self) -> None:
        """Cancel every loop (an in-flight request is abandoned) and wait for them to end."""
        for loop in self._loops.values():
            self._cancel(loop)
        self._loops.clear()
        if self._stopping:
            await asyncio.gather(*self._stopping, return_exceptions=True)

    def _cancel(self, loop: NodeScrapeLoop) -> None:
        loop.task.cancel()
        self._stopping.add(loop.task)
        loop.task.add_done_callback(self._stopping.discard)
