"""What the two collectors serve while something changes: a container restarts, and a kubelet fails its
scrapes for about one resolution. Both collectors are watched twice a second through the change; each is
held to metrics-server's rules against its own scrapes (the simulator's log), and the two against each
other. kubemetrics runs with --tolerated-scrape-failures=0 here (its default, 1, would keep serving the
node's last sample through the failure, on purpose)."""

from __future__ import annotations

import json
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

import pytest
from conformance_cluster import METRICS_API, RESOLUTION_SECONDS, Collector, ConformanceBed, print_stderr, wait_for
from conformance_compare import CPU_TOLERANCE_NANOCORES, Served, read_item, scrapes_by
from conformance_layout import FLAKY_NODE, RESTART_NODE, RESTARTS

RESTARTING = "conformance-edge/restarting"
ON_FLAKY_NODE = "conformance-edge/on-flaky-node"
POLL_SECONDS = 0.5


@dataclass
class Sighting:
    at: float
    collector: str
    restarting: Served | None
    flaky_node: Served | None
    on_flaky_node: Served | None


@dataclass
class Watch:
    restart_second: int
    fault_set_at: float
    fault_cleared_at: float
    sightings: list[Sighting]
    failed_scrapes: dict[str, list[float]]  # collector → times of its failed scrapes of FLAKY_NODE

    def of(self, collector: Collector) -> list[Sighting]:
        return [s for s in self.sightings if s.collector == collector.name]


def _served(collector: Collector, path: str) -> Served | None:
    answer = collector.get(path)
    if answer.status == 404:
        return None
    assert answer.status == 200, f"{collector.name} GET {path}: {answer.status} {answer.body[:300]}"
    return read_item(answer.json())


def _sight(bed: ConformanceBed) -> list[Sighting]:
    namespace, name = RESTARTING.split("/")
    flaky_namespace, flaky_name = ON_FLAKY_NODE.split("/")
    sightings = []
    for collector in bed.collectors:
        sightings.append(
            Sighting(
                time.time(),
                collector.name,
                _served(collector, f"{METRICS_API}/namespaces/{namespace}/pods/{name}"),
                _served(collector, f"{METRICS_API}/nodes/{FLAKY_NODE}"),
                _served(collector, f"{METRICS_API}/namespaces/{flaky_namespace}/pods/{flaky_name}"),
            )
        )
    return sightings


def _container_start(bed: ConformanceBed) -> int:
    with urllib.request.urlopen(f"{bed.hollow.control_url}/truth?node={RESTART_NODE}", timeout=10) as response:
        truth: Any = json.loads(response.read())
    (pod,) = [p for p in truth["pods"] if f"{p['namespace']}/{p['name']}" == RESTARTING]
    return int(pod["containers"][0]["start_time"])


@pytest.fixture(scope="module")
def watch(bed: ConformanceBed) -> Watch:
    before = _container_start(bed)
    sightings = _sight(bed)
    namespace, name = RESTARTING.split("/")
    bed.control_plane.kubectl("-n", namespace, "annotate", "pod", name, f"{RESTARTS}.main=1", "--overwrite")
    restart_second = wait_for(
        "the container to restart", lambda: start if (start := _container_start(bed)) != before else None, 10, 0.2
    )
    fault_set_at = time.time()
    bed.hollow.set_faults({FLAKY_NODE: "http500"})

    def failed_scrapes() -> dict[str, list[float]]:
        log = bed.hollow.scrapes()
        return {
            c.name: [s.time for s in scrapes_by(log, c.user_agent).get(FLAKY_NODE, []) if s.status != 200]
            for c in bed.collectors
        }

    fault_cleared_at = 0.0
    deadline = time.time() + 8 * RESOLUTION_SECONDS
    while time.time() < deadline:
        sightings += _sight(bed)
        if not fault_cleared_at and all(failed_scrapes().values()):
            bed.hollow.set_faults({FLAKY_NODE: None})
            fault_cleared_at = time.time()
        recovered = all(
            s.restarting is not None and s.flaky_node is not None and s.on_flaky_node is not None
            for s in sightings[-2:]
        )
        if fault_cleared_at and time.time() > fault_cleared_at + 2.5 * RESOLUTION_SECONDS and recovered:
            break
        time.sleep(POLL_SECONDS)
    if not fault_cleared_at:
        bed.hollow.set_faults({FLAKY_NODE: None})
    failed = failed_scrapes()
    print_stderr(f"restart at {restart_second}; failed scrapes of {FLAKY_NODE}: {failed}")
    return Watch(restart_second, fault_set_at, fault_cleared_at, sightings, failed)


def _gaps(sightings: list[Sighting], attribute: str) -> list[tuple[float, float]]:
    """(first unseen, first seen again) of each stretch in which the object was not served."""
    gaps, gone = [], None
    for sighting in sightings:
        served = getattr(sighting, attribute)
        if served is None and gone is None:
            gone = sighting.at
        elif served is not None and gone is not None:
            gaps.append((gone, sighting.at))
            gone = None
    if gone is not None:
        gaps.append((gone, float("inf")))
    return gaps


def test_both_collectors_saw_the_restart_and_the_failures(bed: ConformanceBed, watch: Watch) -> None:
    assert watch.fault_cleared_at > 0
    for collector in bed.collectors:
        assert 1 <= len(watch.failed_scrapes[collector.name]) <= 2, watch.failed_scrapes
        assert watch.of(collector)[0].restarting is not None


def test_a_restarted_container_hides_its_pod_for_one_scrape_in_both(bed: ConformanceBed, watch: Watch) -> None:
    """The first scrape after the restart has a start time later than the previous sample: no rate can be
    taken across the restart, and the pod is not served until a second sample of the new instance exists
    (two scrapes if the restart fell on the scrape's own second and its counter read 0)."""
    hidden = {}
    for collector in bed.collectors:
        gaps = _gaps(watch.of(collector), "restarting")
        assert len(gaps) == 1, f"{collector.name}: stretches without {RESTARTING}: {gaps}"
        (gap,) = gaps
        hidden[collector.name] = gap[1] - gap[0]
        assert gap[0] >= watch.restart_second - 1
        assert RESOLUTION_SECONDS - 2 <= hidden[collector.name] <= 2 * RESOLUTION_SECONDS + 2, hidden
    assert abs(hidden[bed.metrics_server.name] - hidden[bed.kubemetrics.name]) <= RESOLUTION_SECONDS + 1, hidden


def test_after_a_restart_the_rate_is_taken_between_two_samples_of_the_new_instance(
    bed: ConformanceBed, watch: Watch
) -> None:
    plan = bed.pod(*RESTARTING.split("/"))
    (container,) = plan.containers
    assert container.cpu_nanocores is not None
    for collector in bed.collectors:
        served = [s.restarting for s in watch.of(collector) if s.restarting is not None]
        after = [p for p in served if p.timestamp >= watch.restart_second]
        assert after, collector.name
        for pod in served:
            (usage,) = pod.containers
            assert abs(usage.cpu_nanocores - container.cpu_nanocores) <= CPU_TOLERANCE_NANOCORES, (collector.name, pod)
            assert usage.memory_bytes == container.memory_bytes
        for pod in after:
            assert pod.timestamp - pod.window >= watch.restart_second, (collector.name, pod)


def test_a_failed_scrape_hides_the_node_and_its_pods_until_two_good_scrapes_in_both(
    bed: ConformanceBed, watch: Watch
) -> None:
    """metrics-server keeps no sample across a failed scrape: the node (and every pod on it) disappears at
    the failure and needs two fresh samples, about (failures + 1) resolutions in all."""
    hidden = {}
    for collector in bed.collectors:
        failures = watch.failed_scrapes[collector.name]
        gaps = {attribute: _gaps(watch.of(collector), attribute) for attribute in ("flaky_node", "on_flaky_node")}
        assert [len(g) for g in gaps.values()] == [1, 1], f"{collector.name}: stretches not served: {gaps}"
        for attribute, (gap,) in gaps.items():
            duration = gap[1] - gap[0]
            expected = (len(failures) + 1) * RESOLUTION_SECONDS
            assert abs(duration - expected) <= RESOLUTION_SECONDS / 2 + 1, (collector.name, attribute, duration)
            assert failures[0] - 1 <= gap[0] <= failures[0] + 2 * RESOLUTION_SECONDS / 3, (collector.name, gap)
            hidden[(collector.name, attribute)] = round(duration, 1)
        returned_at = gaps["flaky_node"][0][1]
        back = next(s.flaky_node for s in watch.of(collector) if s.at >= returned_at and s.flaky_node is not None)
        # The window starts after the last failure: nothing from before it is used.
        assert back.timestamp - back.window > failures[-1] - 1, (collector.name, back)
    print_stderr(f"hidden after the failures: {hidden}")
